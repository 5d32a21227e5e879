"""Renderers of ``POST isos``: binary types for clients that ask for an ISO, and the browsable API.

DRF negotiates the response format before it checks permissions: a client sending
``Accept: application/download`` (or ``application/x-iso9660-image``) would get 406 unless
a renderer claims the type. The ISO itself is a ``StreamingHttpResponse`` that DRF does
not render; the binary renderers only ever see alerts, which go out as JSON (see
``GenerateIsoView.finalize_response``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer, JSONRenderer

from isos.browsable_form import form_serializer
from isos.serializers import IsoRequestSerializer
from osversions.catalog import CatalogError, usable_catalog
from portal.trafficops.browsable import UrlEncodedFormsBrowsableAPIRenderer


class IsoDownloadRenderer(BaseRenderer):
    media_type = "application/download"
    format = "iso"
    charset = None
    render_style = "binary"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return JSONRenderer().render(data)


class Iso9660Renderer(IsoDownloadRenderer):
    media_type = "application/x-iso9660-image"


class OctetStreamRenderer(IsoDownloadRenderer):
    media_type = "application/octet-stream"


BINARY_RENDERERS = (IsoDownloadRenderer, Iso9660Renderer, OctetStreamRenderer)


class IsoFormBrowsableAPIRenderer(UrlEncodedFormsBrowsableAPIRenderer):
    """The browsable API with only its HTML form, which a browser submits natively (url-encoded).

    The "Raw data" tab posts through JavaScript (XMLHttpRequest) and, getting something
    that is not HTML back, throws the ISO away and reloads the page; a native form
    submission lets the browser save the attachment and show its download progress.
    """

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> None:
        return None

    def render_form_for_serializer(self, serializer: Any) -> Any:
        """The request's form with the OS version and DHCP as selects and the MTU filled in
        (isos.browsable_form), bound to what was posted so each message shows at its field."""
        request = getattr(self, "renderer_context", {}).get("request")
        if isinstance(serializer, IsoRequestSerializer) and request is not None:
            try:
                catalog = usable_catalog(request.user)
            except CatalogError:
                catalog = {}  # the answer already says why; the form stays usable
            serializer = form_serializer(catalog, getattr(serializer, "initial_data", None))
        return super().render_form_for_serializer(serializer)
