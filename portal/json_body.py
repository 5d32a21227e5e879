"""Decoding a request body the way Traffic Ops does, but with 400s for every mistake.

Traffic Ops reads the body as one JSON object. ``null`` and ``[]`` parse fine as JSON
but are not objects: they must be refused here, before a serializer sees them (Traffic
Ops itself answers 500 for ``null``). HTML forms (the browsable API) send form data,
which is turned into the same flat object.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from rest_framework.request import Request

from portal.alerts import decoding_error

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
        return {key: data.get(key) for key in data}
    if not isinstance(data, dict):
        kind = JSON_TYPE_NAMES.get(type(data), type(data).__name__)
        raise decoding_error(f"expected a JSON object, got {kind}")
    return data
