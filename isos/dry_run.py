"""``POST isos/validate``: a ``POST isos`` body checked by the same rules, building nothing.

The same session, CSRF rule, body limits and permissions (ISO:GENERATE, ISO:READ) as
``POST isos``, and the same serializer against this user's OS versions; no ISO is laid
out, nothing is audited (it is no attempt), and the answer lists each field's messages
so a form can show them as the operator types (docs/api.md, "Checking a request").
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from isos.generation import iso_filename, request_serializer
from isos.models import PERMISSION_LABELS
from isos.serializers import IsoRequestSerializer
from osversions.catalog import CatalogError, usable_catalog
from portal.trafficops.alerts import INTERNAL_ERROR_TEXT, alert_response, alerts_body
from portal.trafficops.json_body import json_object
from portal.trafficops.log_text import log_text
from portal.trafficops.openapi import (
    ALERTS_SERIALIZER,
    INTERNAL_ERROR,
    UNAUTHORIZED,
    forbidden,
    schema_common,
)
from portal.trafficops.permissions import requires_permissions

logger = logging.getLogger(__name__)

VALID_TEXT = "valid: POST isos would build this ISO"

VERDICT = inline_serializer(
    "IsoRequestVerdict",
    {
        "alerts": ALERTS_SERIALIZER.fields["alerts"],
        "response": inline_serializer(
            "IsoRequestVerdictResponse",
            {
                "valid": serializers.BooleanField(),
                "errors": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()),
                    help_text="Each refused field's messages (POST isos' texts), by its key.",
                ),
                "fileName": serializers.CharField(
                    required=False, help_text="The ISO's file name, when the request is valid."
                ),
            },
            # A body that is not a JSON object gets the alert only.
            required=False,
        ),
    },
)


@method_decorator(sensitive_post_parameters("rootPass", "rootpass", "confirmRootPass"), name="dispatch")
class ValidateIsoRequestView(APIView):
    """Checks an ISO request by the rules of POST isos, without building anything."""

    name = "Check an ISO request"
    permission_classes = [requires_permissions(PERMISSION_LABELS)]

    @extend_schema(
        summary="Check a POST isos body by the same rules, building nothing",
        request={"application/json": IsoRequestSerializer},
        responses={
            (200, "application/json"): OpenApiResponse(
                VERDICT,
                description="The request is valid: POST isos would build this ISO.",
                examples=[
                    OpenApiExample(
                        "valid",
                        value={
                            "alerts": [{"text": VALID_TEXT, "level": "success"}],
                            "response": {
                                "valid": True,
                                "errors": {},
                                "fileName": "edge1.cdn.example-centos72.iso",
                            },
                        },
                        response_only=True,
                    )
                ],
            ),
            (400, "application/json"): OpenApiResponse(
                VERDICT,
                description="A rule is broken (the alert POST isos would answer, and each "
                "field's messages), or the body is not a JSON object (an alert only).",
                examples=[
                    OpenApiExample(
                        "refused",
                        value={
                            "alerts": [
                                {
                                    "text": "validating: ipAddress must be a valid IPv4 address",
                                    "level": "error",
                                }
                            ],
                            "response": {
                                "valid": False,
                                "errors": {"ipAddress": ["ipAddress must be a valid IPv4 address"]},
                            },
                        },
                        response_only=True,
                    )
                ],
            ),
            (401, "application/json"): UNAUTHORIZED,
            (403, "application/json"): forbidden("ISO:GENERATE", "ISO:READ"),
            (500, "application/json"): INTERNAL_ERROR,
        },
        **schema_common(),
    )
    @method_decorator(sensitive_variables("body", "serializer"))
    def post(self, request: Request, version: str) -> HttpResponseBase:
        body = json_object(request)
        try:
            catalog = usable_catalog(request.user)
        except CatalogError as error:
            logger.error("POST isos/validate: %s", log_text(error))
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
        serializer = request_serializer(body, catalog)
        if not serializer.is_valid():
            verdict: dict[str, Any] = {
                **alerts_body(serializer.alert_text),
                "response": {
                    "valid": False,
                    "errors": {
                        name: [str(m) for m in messages] for name, messages in serializer.errors.items()
                    },
                },
            }
            return Response(verdict, status=status.HTTP_400_BAD_REQUEST)
        filename = iso_filename(serializer.iso_request())
        return Response(
            {
                **alerts_body(VALID_TEXT, level="success"),
                "response": {"valid": True, "errors": {}, "fileName": filename},
            }
        )
