"""``POST isos``: validate, render the host's files, and stream the ISO.

The road (DESIGN.md): session → ISO:GENERATE + ISO:READ → serializer rules → the
user's OS versions → kickstart files → builder layout → ``StreamingHttpResponse`` with
the exact Content-Length. Everything that can fail is tried before the first byte, so
it can still be a JSON alert; after it, a failure cuts the stream short.
"""

from __future__ import annotations

import logging
import re
from typing import Any, NoReturn
from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from rest_framework import status
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from isos.audit import AuditedStream, record_attempt
from isos.builder import SourceError, build_iso, describe_boot
from isos.kickstart import IsoRequest, nameservers_from_resolv_conf, render_ks_scripts
from isos.models import PERMISSION_LABELS, IsoBuild
from isos.renderers import BINARY_RENDERERS
from isos.serializers import IsoRequestSerializer
from osversions.catalog import CatalogError, resolve_source_directory, usable_catalog
from portal.alerts import INTERNAL_ERROR_TEXT, alert_response
from portal.json_body import json_object
from portal.permissions import requires_permissions

logger = logging.getLogger(__name__)

PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9._+@=,-]+$")


def iso_filename(iso_request: IsoRequest) -> str:
    """``<fqdn>-<osversionDir>.iso`` with every ``/`` replaced by ``_`` (API.md)."""
    return f"{iso_request.fqdn}-{iso_request.osversion_dir}.iso".replace("/", "_")


def content_disposition(filename: str) -> str:
    """The attachment header; names outside plain ASCII also get an RFC 6266 form."""
    if PLAIN_FILENAME.match(filename):
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r"[^A-Za-z0-9._+@=,-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def nameservers() -> list[str]:
    """The nameservers for network.cfg: the setting, or the host's resolv.conf."""
    return list(settings.ISO_NAMESERVERS) or nameservers_from_resolv_conf(settings.RESOLV_CONF)


# Error reports (DEBUG pages, admin mails) must never show the root password.
@method_decorator(sensitive_post_parameters("rootPass", "rootpass", "confirmRootPass"), name="dispatch")
class GenerateIsoView(APIView):
    """Builds and streams a per-host installer ISO."""

    permission_classes = [requires_permissions(PERMISSION_LABELS)]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, *BINARY_RENDERERS]

    def get_serializer(self, *args: Any, **kwargs: Any) -> IsoRequestSerializer:
        """Used by the browsable API to draw its form."""
        return IsoRequestSerializer(*args, **kwargs)

    def permission_denied(
        self, request: Request, message: str | None = None, code: str | None = None
    ) -> NoReturn:
        if request.user.is_authenticated:
            reason = str(message or "permission denied")
            record_attempt(request._request, IsoBuild.Outcome.REFUSED, reason)
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

    @method_decorator(sensitive_variables("body", "serializer", "iso_request", "files"))
    def post(self, request: Request, version: str) -> HttpResponseBase:
        django_request = request._request
        try:
            body = json_object(request)
        except Exception as error:
            record_attempt(django_request, IsoBuild.Outcome.REFUSED, f"decoding: {error}")
            raise
        try:
            catalog = usable_catalog(request.user)
        except CatalogError as error:
            return self.failure(request, f"osversions: {error}", {})

        serializer = IsoRequestSerializer(data=body, context={"offered_directories": set(catalog.values())})
        safe_settings = serializer.safe_settings()
        if not serializer.is_valid():
            record_attempt(django_request, IsoBuild.Outcome.REFUSED, serializer.alert_text, safe_settings)
            return alert_response(status.HTTP_400_BAD_REQUEST, serializer.alert_text)
        iso_request = serializer.iso_request()

        try:
            source = resolve_source_directory(iso_request.osversion_dir)
            files = render_ks_scripts(
                iso_request,
                nameservers(),
                settings.ROOT_PASSWORD_HASH,
                describe_boot(source),
            )
            image = build_iso(source, files, volume_id=settings.ISO_VOLUME_ID)
        except (CatalogError, SourceError) as error:
            return self.failure(request, str(error), safe_settings)

        build = record_attempt(
            django_request, IsoBuild.Outcome.STREAMING, settings=safe_settings, iso_size=image.size
        )
        response = StreamingHttpResponse(AuditedStream(image, build), content_type="application/download")
        response["Content-Length"] = str(image.size)
        response["Content-Disposition"] = content_disposition(iso_filename(iso_request))
        response["Cache-Control"] = "no-store"
        return response

    def failure(self, request: Request, reason: str, safe_settings: dict[str, Any]) -> Response:
        """A 500 alert for our side's fault; the reason goes to the log and the audit only."""
        logger.error("POST isos failed before streaming: %s", reason)
        record_attempt(request._request, IsoBuild.Outcome.FAILED, reason, safe_settings)
        return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
