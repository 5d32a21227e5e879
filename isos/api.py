"""The Traffic Ops ISO routes: ``GET osversions``, and ``POST isos`` (the ISO, streamed; or
with ``"stream": "no"`` a URL for virtual media, :mod:`isos.media`).

The road (docs/design.md): session → ISO:GENERATE + ISO:READ → serializer rules → the
user's OS versions → kickstart files → builder layout → ``StreamingHttpResponse`` with
the exact Content-Length. The steps are shared with the page and the command
(``isos.generation``), walked with this request's :class:`~isos.attempt.Attempt`; this
view only turns their refusals and failures into Traffic Ops alerts (docs/api.md).
Everything that can fail is tried before the first byte, so it can still be a JSON
alert; after it, a failure cuts the stream short.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.serializer_helpers import ReturnDict
from rest_framework.views import APIView

from isos.attempt import Attempt, Road
from isos.audit import record_attempt
from isos.generation import (
    GenerationFailed,
    audit_permissions,
    catalog_for_attempt,
    checked_request,
    failures_audited,
    iso_download_response,
)
from isos.media import MediaRefused, base_url, media_url_response, stream_choice
from isos.models import PERMISSION_LABELS, READ_ISO, IsoBuild
from isos.openapi import ISO_SCHEMA
from isos.renderers import BINARY_RENDERERS, IsoFormBrowsableAPIRenderer
from isos.serializers import IsoRequestSerializer
from isos.stream_limits import StreamRefused
from osversions.catalog import CatalogError, usable_catalog
from portal.trafficops.alerts import INTERNAL_ERROR_TEXT, alert_response, alerts_body
from portal.trafficops.json_body import json_object
from portal.trafficops.log_text import log_text
from portal.trafficops.openapi import INTERNAL_ERROR, UNAUTHORIZED, forbidden, schema_common
from portal.trafficops.permissions import requires_permissions

logger = logging.getLogger(__name__)


# Error reports (DEBUG pages, admin mails) must never show the root password.
@method_decorator(sensitive_post_parameters("rootPass", "rootpass", "confirmRootPass"), name="dispatch")
class GenerateIsoView(APIView):
    """Builds and streams a per-host installer ISO."""

    # The browsable API's title and line of text (plain text: DRF would render markup).
    name = "Generate ISO"
    description = "Fill in the form and post it: the answer is the host's installer ISO, downloaded."

    # Anonymous: 401 from DRF. The ISO permissions are the road's own check (check_permissions).
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, IsoFormBrowsableAPIRenderer, *BINARY_RENDERERS]
    # This request's attempt; the view lives as long as its request.
    attempt: Attempt | None = None

    def get_serializer(self, *args: Any, **kwargs: Any) -> IsoRequestSerializer:
        """Used by the browsable API to draw its form."""
        return IsoRequestSerializer(*args, **kwargs)

    def attempt_of(self, request: Request) -> Attempt:
        """This request's attempt, begun at its permission check, when DRF knows the user."""
        if self.attempt is None:
            self.attempt = Attempt.from_request(request._request, Road.API)
        return self.attempt

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)
        message = audit_permissions(self.attempt_of(request))
        if message is not None:
            self.permission_denied(request, message)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        # (DRF's stubs say Response; the ISO's StreamingHttpResponse passes through too.)
        # Alerts go out as JSON even to a client that asked only for an ISO.
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), BINARY_RENDERERS
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        """GET in a browser is the browsable API's form page; to any other client, 405."""
        if request.method == "GET" and isinstance(
            getattr(request, "accepted_renderer", None), IsoFormBrowsableAPIRenderer
        ):
            return Response({"form": "POST it: the answer is the ISO"})
        return super().http_method_not_allowed(request, *args, **kwargs)

    @extend_schema(**ISO_SCHEMA)
    @method_decorator(sensitive_variables("body", "serializer"))
    def post(self, request: Request, version: str) -> HttpResponseBase:
        attempt = self.attempt_of(request)
        try:
            body = json_object(request)
        except Exception as error:
            record_attempt(attempt, IsoBuild.Outcome.REFUSED, f"decoding: {error}")
            raise
        try:
            with failures_audited(attempt):
                catalog = catalog_for_attempt(attempt)
                as_url, stream_problems = stream_choice(body)
                serializer = checked_request(attempt, body, catalog, stream_problems)
                if not serializer.is_valid() or stream_problems:
                    # The same alert as JSON; the serializer rides along so that the
                    # browsable API can show each message beside its field.
                    texts = [serializer.alert_text] if not serializer.is_valid() else []
                    alert = ReturnDict(alerts_body(", ".join(texts + stream_problems)), serializer=serializer)
                    return Response(alert, status=status.HTTP_400_BAD_REQUEST)
                if as_url:
                    base = base_url(request._request)
                    try:
                        return media_url_response(attempt, serializer.iso_request(), base)
                    except MediaRefused as refusal:  # audited as refused already
                        return alert_response(status.HTTP_400_BAD_REQUEST, str(refusal))
                return iso_download_response(attempt, serializer.iso_request())
        except StreamRefused as refusal:
            response = alert_response(refusal.status, refusal.message)
            response["Retry-After"] = str(refusal.retry_after)
            return response
        except GenerationFailed:
            # The reason is in the log and the audit record, never in the response.
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)


class OsVersionsView(APIView):
    """``{"response": {"<display name>": "<directory>", ...}}``."""

    name = "OS versions"
    description = "The ISO sources you may generate from: display name to directory."

    permission_classes = [requires_permissions({READ_ISO: PERMISSION_LABELS[READ_ISO]})]

    @extend_schema(
        summary="The ISO sources this user may generate from",
        responses={
            200: inline_serializer(
                "OsVersions",
                {
                    "response": serializers.DictField(
                        child=serializers.CharField(),
                        help_text='Display name to directory, e.g. {"CentOS 7.2": "centos72"}.',
                    )
                },
            ),
            401: UNAUTHORIZED,
            403: forbidden("ISO:READ"),
            500: INTERNAL_ERROR,
        },
        **schema_common(),
    )
    def get(self, request: Request, version: str) -> Response:
        try:
            catalog = usable_catalog(request.user)
        except CatalogError as error:
            logger.error("GET osversions: %s", log_text(error))
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
        return Response({"response": catalog})
