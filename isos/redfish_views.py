"""Mount an ISO URL on a BMC: ``POST isos/urls/<id>/mount`` (API) and the page's form.

Its owner or an admin gives the URL (the portal keeps only its token's hash), a BMC
address, username and password; isos.redfish does the steps. Each request is audited
(``RedfishMount``: who, which URL, which BMC, each step), never with the password or the
token (docs/api.md, "Mounting an ISO URL on a BMC (Redfish)").
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from isos.media import base_url, live_media, media_path, token_from_url, token_hash
from isos.models import IsoMedia, RedfishMount
from isos.redfish import POWER_CHOICES, BadAddress, MountResult, Power, mount
from portal.trafficops.alerts import alert_response, alerts_body
from portal.trafficops.json_body import json_object
from portal.trafficops.log_text import log_value
from portal.trafficops.openapi import ALERTS_SERIALIZER, UNAUTHORIZED, alerts, schema_common

logger = logging.getLogger(__name__)

NOT_FOUND_TEXT = "no such ISO URL"
MOUNTED_TEXT = "Mounted on the BMC: the server boots from it next (once)."
MAX_LENGTHS = {"isoURL": 2048, "bmc": 300, "username": 150, "password": 256, "system": 128}
SENSITIVE = ("password", "isoURL")


@dataclass(frozen=True)
class MountFields:
    iso_url: str
    bmc: str
    username: str
    password: str
    insecure: bool
    power: Power
    system: str | None


@sensitive_variables("data")
def mount_fields(data: Mapping[str, Any], *, from_form: bool = False) -> tuple[MountFields | None, list[str]]:
    """The request's fields, or every broken rule (``from_form``: a checkbox's "on")."""
    problems: list[str] = []
    text: dict[str, str] = {}
    for name in ("isoURL", "bmc", "username", "password", "system"):
        value = data.get(name)
        if value is None or value == "":
            if name != "system":
                problems.append(f"{name} is required")
            continue
        if not isinstance(value, str):
            problems.append(f"{name} must be a string")
        elif len(value) > MAX_LENGTHS[name]:
            problems.append(f"{name} must be at most {MAX_LENGTHS[name]} characters")
        elif name != "password" and any(ord(c) < 32 or ord(c) == 127 for c in value):
            problems.append(f"{name} must hold no control characters")
        else:
            text[name] = value
    insecure = data.get("insecure", False)
    if from_form:
        insecure = insecure in ("on", "true", True)
    elif not isinstance(insecure, bool):
        problems.append("insecure must be true or false")
    power: Power = "none"
    chosen = data.get("power") or "none"
    if chosen in POWER_CHOICES:
        power = chosen
    else:
        problems.append(f"power must be one of {', '.join(POWER_CHOICES)}")
    if problems:
        return None, problems
    fields = MountFields(
        iso_url=text["isoURL"],
        bmc=text["bmc"],
        username=text["username"],
        password=text["password"],
        insecure=bool(insecure),
        power=power,
        system=text.get("system"),
    )
    return fields, []


def _token_of(record: IsoMedia, iso_url: str) -> str | None:
    """The URL's token if it is this record's (compared as hashes, in constant time)."""
    token = token_from_url(iso_url)
    if token is None or not hmac.compare_digest(token_hash(token), record.token_hash):
        return None
    return token


@dataclass(frozen=True)
class Outcome:
    status: int
    text: str
    result: MountResult | None
    audit: RedfishMount | None


@sensitive_variables("fields", "token", "url")
def mount_media(request: HttpRequest, record: IsoMedia, fields: MountFields) -> Outcome:
    """Check the URL is this record's, mount it on the BMC, audit and log the request."""
    token = _token_of(record, fields.iso_url)
    if token is None:
        return Outcome(400, "isoURL is not the URL made for this id", None, None)
    url = base_url(request) + media_path(token, record.iso_name)
    user = request.user
    audit = RedfishMount(
        user=user if user.is_authenticated else None,
        username=user.get_username(),
        media=record,
        iso_name=record.iso_name,
        bmc=fields.bmc,
        bmc_username=fields.username,
        insecure=fields.insecure,
        power=fields.power,
        client_address=request.META.get("REMOTE_ADDR") or None,
    )
    try:
        result = mount(
            url,
            fields.bmc,
            fields.username,
            fields.password,
            insecure=fields.insecure,
            ca_bundle=getattr(settings, "REDFISH_CA_BUNDLE", "") or None,
            power=fields.power,
            system_id=fields.system,
            timeout=float(getattr(settings, "REDFISH_TIMEOUT", 120)),
        )
    except BadAddress as error:
        audit.outcome, audit.detail = RedfishMount.Outcome.REFUSED, str(error)
        outcome = Outcome(400, str(error), None, audit)
    else:
        audit.bmc = result.bmc
        audit.steps = result.steps_as_dicts()
        if result.ok:
            audit.outcome, audit.detail = RedfishMount.Outcome.MOUNTED, MOUNTED_TEXT
            outcome = Outcome(200, MOUNTED_TEXT, result, audit)
        else:
            audit.outcome, audit.detail = RedfishMount.Outcome.FAILED, result.message
            audit.failure = result.failure.value if result.failure else ""
            outcome = Outcome(502, result.message, result, audit)
    audit.finished_at = timezone.now()
    audit.save()
    logger.info(
        "Redfish mount %s by %s: ISO URL %s on %s: %s%s",
        audit.pk,
        log_value(audit.username),
        record.pk,
        log_value(audit.bmc),
        audit.outcome,
        f" ({audit.failure})" if audit.failure else "",
    )
    return outcome


def _response_body(outcome: Outcome) -> dict[str, Any]:
    level = "success" if outcome.status == 200 else "error"
    body: dict[str, Any] = alerts_body(outcome.text, level=level)
    if outcome.result is not None:
        result = outcome.result
        body["response"] = {
            "bmc": result.bmc,
            "mounted": result.ok,
            "failure": result.failure.value if result.failure else None,
            "steps": result.steps_as_dicts(),
        }
    return body


STEP = inline_serializer(
    "RedfishStep",
    {
        "step": serializers.ChoiceField(
            choices=["connect", "system", "virtual media", "eject", "insert", "boot override", "power"]
        ),
        "status": serializers.ChoiceField(choices=["done", "skipped", "failed"]),
        "detail": serializers.CharField(),
    },
)
MOUNT_RESULT = inline_serializer(
    "RedfishMountResult",
    {
        "alerts": ALERTS_SERIALIZER.fields["alerts"],
        "response": inline_serializer(
            "RedfishMountResultResponse",
            {
                "bmc": serializers.CharField(help_text="The BMC's base URL, as called."),
                "mounted": serializers.BooleanField(),
                "failure": serializers.ChoiceField(
                    choices=[
                        "unreachable",
                        "tls",
                        "bad credentials",
                        "no virtual media",
                        "media type refused",
                        "action not allowed",
                        "bmc error",
                    ],
                    allow_null=True,
                ),
                "steps": serializers.ListField(child=STEP),
            },
        ),
    },
)
MOUNT_REQUEST = inline_serializer(
    "RedfishMountRequest",
    {
        "isoURL": serializers.CharField(help_text="The URL made for this id (POST isos, stream no)."),
        "bmc": serializers.CharField(
            help_text="host, host:port, or https://host:port (http:// only with insecure)."
        ),
        "username": serializers.CharField(),
        "password": serializers.CharField(
            help_text="Used for this call only: never stored, logged or audited."
        ),
        "insecure": serializers.BooleanField(
            required=False, default=False, help_text="No TLS verification (labs)."
        ),
        "power": serializers.ChoiceField(choices=list(POWER_CHOICES), required=False, default="none"),
        "system": serializers.CharField(
            required=False, help_text="The system's Id, when the BMC has several."
        ),
    },
)


@method_decorator(sensitive_post_parameters(*SENSITIVE), name="dispatch")
class MountMediaView(APIView):
    """Mounts an ISO URL on a BMC through Redfish, and sets a one-time boot from it."""

    name = "Mount an ISO URL on a BMC"
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Mount an ISO URL on a BMC (Redfish): eject, insert, boot once from CD, power",
        request={"application/json": MOUNT_REQUEST},
        responses={
            (200, "application/json"): OpenApiResponse(
                MOUNT_RESULT,
                description="Mounted: every step done or skipped.",
                examples=[
                    OpenApiExample(
                        "mounted",
                        value={
                            "alerts": [{"text": MOUNTED_TEXT, "level": "success"}],
                            "response": {
                                "bmc": "https://10.0.0.5",
                                "mounted": True,
                                "failure": None,
                                "steps": [
                                    {
                                        "step": "insert",
                                        "status": "done",
                                        "detail": "inserted, write-protected",
                                    }
                                ],
                            },
                        },
                        response_only=True,
                    )
                ],
            ),
            (400, "application/json"): alerts(
                "A field is missing or wrong, the BMC address cannot be used, or isoURL is not this id's.",
                "password is required",
                "isoURL is not the URL made for this id",
            ),
            (401, "application/json"): UNAUTHORIZED,
            (403, "application/json"): alerts(
                "Refused by the CSRF rule: a cross-origin request, or a body that is not JSON "
                "without a CSRF token (docs/api.md).",
                "CSRF Failed: CSRF token missing.",
            ),
            (404, "application/json"): alerts(
                "No live URL of this id that you may use (expired and revoked alike).", NOT_FOUND_TEXT
            ),
            (502, "application/json"): OpenApiResponse(
                MOUNT_RESULT,
                description="The BMC failed a step: unreachable, TLS, bad credentials, no virtual media, "
                "media type refused, action not allowed, or another BMC error; the steps say which.",
            ),
        },
        **schema_common(),
    )
    @method_decorator(sensitive_variables("body", "fields"))
    def post(self, request: Request, version: str, media_id: str) -> Response:
        record = live_media(media_id, request.user)
        if record is None:
            return alert_response(status.HTTP_404_NOT_FOUND, NOT_FOUND_TEXT)
        body = json_object(request)
        fields, problems = mount_fields(body)
        if fields is None:
            return Response(alerts_body(*problems), status=status.HTTP_400_BAD_REQUEST)
        outcome = mount_media(request._request, record, fields)
        return Response(_response_body(outcome), status=outcome.status)


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters(*SENSITIVE)
def mount_media_page(request: HttpRequest, media_id: int) -> HttpResponse:
    """The page's "Mount on a BMC": the form (GET, from the history), or the same steps as
    the API's, shown one per line (POST)."""
    record = live_media(media_id, request.user)
    if record is None:
        context: dict[str, Any] = {"problems": ["No such live ISO URL that you may use."], "record": None}
        return render(request, "isos/redfish_mount.html", context, status=404)
    if request.method == "GET":
        media = {"record": record, "url": ""}
        return render(request, "isos/redfish_mount.html", {"record": record, "media": media})
    fields, problems = mount_fields(request.POST, from_form=True)
    if fields is None:
        return render(
            request, "isos/redfish_mount.html", {"problems": problems, "record": record}, status=400
        )
    outcome = mount_media(request, record, fields)
    context = {
        "record": record,
        "outcome": outcome,
        "problems": [outcome.text] if outcome.result is None else [],
        "bmc": fields.bmc,
    }
    response = render(request, "isos/redfish_mount.html", context, status=outcome.status)
    response["Cache-Control"] = "no-store"
    return response
