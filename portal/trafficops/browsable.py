"""DRF's browsable API with its HTML forms posted url-encoded, the one form type the API reads.

DRF's template writes ``enctype="multipart/form-data"`` on every form; the API never parses
multipart (docs/api.md, "Request bodies"), and no form of the API has a file field, so the
forms say ``application/x-www-form-urlencoded`` instead, which the browser then sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer

MULTIPART_FORM = 'enctype="multipart/form-data"'
URLENCODED_FORM = 'enctype="application/x-www-form-urlencoded"'


class UrlEncodedFormsBrowsableAPIRenderer(BrowsableAPIRenderer):
    """The browsable API, its forms posted as ``application/x-www-form-urlencoded``."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> Any:
        page = super().render(data, accepted_media_type, renderer_context)
        return page.replace(MULTIPART_FORM, URLENCODED_FORM) if isinstance(page, str) else page
