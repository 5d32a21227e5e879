"""The Traffic Ops ISO routes: ``GET osversions``, and ``POST isos`` (the ISO, streamed).

The road (DESIGN.md): session → ISO:GENERATE + ISO:READ → serializer rules → the
user's OS versions → kickstart files → builder layout → ``StreamingHttpResponse`` with
the exact Content-Length. The steps are shared with the web form (``isos.generation``);
this view only turns their refusals and failures into Traffic Ops alerts. Everything
that can fail is tried before the first byte, so it can still be a JSON alert; after
it, a failure cuts the stream short.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from django.http import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.serializer_helpers import ReturnDict
from rest_framework.views import APIView

from isos.audit import record_attempt
from isos.generation import GenerationFailed, catalog_for_attempt, checked_request, iso_download_response
from isos.models import PERMISSION_LABELS, READ_ISO, IsoBuild
from isos.openapi import ISO_SCHEMA
from isos.renderers import BINARY_RENDERERS, IsoFormBrowsableAPIRenderer
from isos.serializers import IsoRequestSerializer
from osversions.catalog import CatalogError, usable_catalog
from portal.trafficops.alerts import INTERNAL_ERROR_TEXT, alert_response, alerts_body
from portal.trafficops.json_body import json_object
from portal.trafficops.openapi import INTERNAL_ERROR, UNAUTHORIZED, forbidden, schema_common
from portal.trafficops.permissions import requires_permissions

logger = logging.getLogger(__name__)

# Set on the Django request once its refusal is audited: the browsable API checks the
# permissions a second time to decide whether to draw its form.
REFUSAL_RECORDED = "_iso_refusal_recorded"


# Error reports (DEBUG pages, admin mails) must never show the root password.
@method_decorator(sensitive_post_parameters("rootPass", "rootpass", "confirmRootPass"), name="dispatch")
class GenerateIsoView(APIView):
    """Builds and streams a per-host installer ISO."""

    permission_classes = [requires_permissions(PERMISSION_LABELS)]
    renderer_classes = [JSONRenderer, IsoFormBrowsableAPIRenderer, *BINARY_RENDERERS]

    def get_serializer(self, *args: Any, **kwargs: Any) -> IsoRequestSerializer:
        """Used by the browsable API to draw its form."""
        return IsoRequestSerializer(*args, **kwargs)

    def permission_denied(
        self, request: Request, message: str | None = None, code: str | None = None
    ) -> NoReturn:
        django_request = request._request
        if request.user.is_authenticated and not getattr(django_request, REFUSAL_RECORDED, False):
            setattr(django_request, REFUSAL_RECORDED, True)
            reason = str(message or "permission denied")
            record_attempt(django_request, IsoBuild.Outcome.REFUSED, reason)
        super().permission_denied(request, message, code)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        # (DRF's stubs say Response; the ISO's StreamingHttpResponse passes through too.)
        # Alerts go out as JSON even to a client that asked only for an ISO.
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), BINARY_RENDERERS
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(**ISO_SCHEMA)
    @method_decorator(sensitive_variables("body", "serializer"))
    def post(self, request: Request, version: str) -> HttpResponseBase:
        django_request = request._request
        try:
            body = json_object(request)
        except Exception as error:
            record_attempt(django_request, IsoBuild.Outcome.REFUSED, f"decoding: {error}")
            raise
        try:
            catalog = catalog_for_attempt(django_request)
            serializer = checked_request(django_request, body, catalog)
            if not serializer.is_valid():
                # The same alert as JSON; the serializer rides along so that the browsable
                # API can show each message beside its field.
                alert = ReturnDict(alerts_body(serializer.alert_text), serializer=serializer)
                return Response(alert, status=status.HTTP_400_BAD_REQUEST)
            return iso_download_response(django_request, serializer.iso_request(), serializer.safe_settings())
        except GenerationFailed:
            # The reason is in the log and the audit record, never in the response.
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)


class OsVersionsView(APIView):
    """``{"response": {"<display name>": "<directory>", ...}}``."""

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
            logger.error("GET osversions: %s", error)
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
        return Response({"response": catalog})
