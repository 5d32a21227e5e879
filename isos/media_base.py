"""What ``ISO_MEDIA_BASE_URL`` may be: a scheme and host (and port), nothing after; empty for
the request's own. Free of Django, so the settings can check it when they load."""

from __future__ import annotations

import re
from typing import Final

MEDIA_BASE_URL: Final = re.compile(
    r"(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)?/?"
)
MEDIA_BASE_URL_RULE: Final = (
    "empty, or a scheme and host a BMC can reach, e.g. https://portal.example.net or http://192.0.2.5:8000"
)
