"""The API's messages in the page's words: each field named by its label, not its JSON key.

The API keeps Traffic Ops' texts (``ipAddress must be a valid IPv4 address``); the Generate
ISO page says ``IPv4 address must be a valid IPv4 address``. The same phrases and labels go
to the page's script (``page_wording()``), so a message checked as the operator types reads
exactly as the one the server renders without JavaScript (docs/operations.md, "The pages").
"""

from __future__ import annotations

import re
from typing import Any

from isos.serializers import FIELD_ATTRIBUTES, IsoRequestSerializer

CONFIRM_FIELD = "confirmRootPass"
CONFIRM_LABEL = "Confirm root password"
MISMATCH_MESSAGE = f"{CONFIRM_FIELD} must be the same as rootPass"

FIELD_LABELS: dict[str, str] = {
    **{
        name: str(field.label)
        for name, field in IsoRequestSerializer().fields.items()
        if name in FIELD_ATTRIBUTES
    },
    "dhcp": "Use DHCP",  # the page's switch
    CONFIRM_FIELD: CONFIRM_LABEL,
}

# Whole phrases first (in this order), then every remaining JSON key becomes its label.
PHRASES: list[tuple[str, str]] = [
    (MISMATCH_MESSAGE, "The two root passwords differ"),
    (" is required if DHCP is no", " is required without DHCP"),
    (" is required when mgmtIpAddress is provided", " is required with a management IP address"),
    ("the FQDN hostName.domainName must be", "the full name (host name and domain name) must be"),
    (
        "mgmtIpGateway must be of the same IP family as mgmtIpAddress",
        "mgmtIpGateway must be of the same IP family (IPv4 or IPv6) as the management IP address",
    ),
    ("invalid OS version directory: ", "this OS version is not offered to you: "),
]
KEYS = re.compile(r"\b(" + "|".join(sorted(FIELD_LABELS, key=len, reverse=True)) + r")\b")


def page_message(message: str) -> str:
    """``message`` (the API's text) as the page shows it."""
    for api_text, page_text in PHRASES:
        message = message.replace(api_text, page_text)
    message = KEYS.sub(lambda match: FIELD_LABELS[match.group(1)], message)
    return message[:1].upper() + message[1:]


def page_wording() -> dict[str, Any]:
    """What the page's script needs to word a message as :func:`page_message` does."""
    return {"phrases": PHRASES, "labels": FIELD_LABELS, "keys": KEYS.pattern, "mismatch": MISMATCH_MESSAGE}
