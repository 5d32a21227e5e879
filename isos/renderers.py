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
