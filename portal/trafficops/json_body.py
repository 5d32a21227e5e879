"""Decoding a request body the way Traffic Ops does, but with a 400 for every mistake.

One JSON object (form data from the browsable API becomes the same flat object); ``null``,
``[]``, a NUL character or an unpaired surrogate anywhere are refused (docs/api.md).
"""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict
from rest_framework.request import Request

from portal.trafficops.alerts import decoding_error

# A NUL (PostgreSQL's text refuses it) or a surrogate (a Python str holds one only unpaired:
# JSON decoding joins pairs; it has no UTF-8 form).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
NUL_CHARACTER = "a NUL character"

JSON_TYPE_NAMES = {
    type(None): "null",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def json_object(request: Request) -> dict[str, Any]:
    """The body as a dict, or a 400 ``decoding: ...`` alert."""
    if int(request.META.get("CONTENT_LENGTH") or 0) <= 0:
        raise decoding_error("the request body is empty; expected a JSON object")
    data = request.data  # DRF's parsers raise ParseError for malformed JSON
    if isinstance(data, QueryDict):
        data = {key: data.get(key) for key in data}
    if not isinstance(data, dict):
        kind = JSON_TYPE_NAMES.get(type(data), type(data).__name__)
        raise decoding_error(f"expected a JSON object, got {kind}")
    if (problem := unusable_text(data)) is not None:
        raise decoding_error(f"the request body holds {problem}")
    return data


def unstorable_character(text: str) -> str | None:
    """What in ``text`` no database column or file can hold, in words, or None."""
    if "\x00" in text:
        return NUL_CHARACTER
    return "an unpaired UTF-16 surrogate" if UNSTORABLE.search(text) else None


def unusable_text(value: Any) -> str | None:
    """What makes a string in ``value`` (keys included, at any depth) unusable, or None."""
    if isinstance(value, str):
        return unstorable_character(value)
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((problem for item in items if (problem := unusable_text(item)) is not None), None)
