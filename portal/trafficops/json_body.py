"""Decoding a request body the way Traffic Ops does, but with a 400 for every mistake.

One JSON object (form data from the browsable API becomes the same flat object); ``null``,
``[]``, a NUL character or an unpaired surrogate anywhere are refused; JSON nesting deeper
than ``MAX_JSON_DEPTH`` is refused before anything recurses into it; a body of another
media type is a 415, one over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` a 413 (docs/api.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, QueryDict
from django.http.request import RawPostDataException
from rest_framework import exceptions, parsers
from rest_framework.request import Request

from portal.trafficops.alerts import body_too_large, decoding_error, unsupported_media_type_text

# A NUL (PostgreSQL's text refuses it) or a surrogate (a Python str holds one only unpaired:
# JSON decoding joins pairs; it has no UTF-8 form).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
NUL_CHARACTER = "a NUL character"

# Arrays and objects inside one another, at most (docs/api.md). A Traffic Ops body is one
# flat object; the limit keeps every recursion (json's own, the checks below) shallow.
MAX_JSON_DEPTH = 32
# A JSON string (skipped whole, escapes included; an unterminated one runs to the end) or
# a bracket. Possessive, and every string start matches: linear whatever the bytes (a
# pattern that can fail on an unterminated string retries at each quote, quadratically).
JSON_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
OPENING = frozenset(b"[{")

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# What the API reads: JSON, and the browsable API's HTML form (never multipart).
API_MEDIA_TYPES = (JSON_MEDIA_TYPE, FORM_MEDIA_TYPE)

JSON_TYPE_NAMES = {
    type(None): "null",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def media_type_of(request: HttpRequest) -> str:
    """The body's media type, lower case, without parameters ("" when none was sent)."""
    return str(request.META.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()


def declared_length(request: HttpRequest) -> int:
    """The body's length as Content-Length says (0 when absent or not a number)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def check_media_type(request: HttpRequest, accepted: tuple[str, ...] = API_MEDIA_TYPES) -> None:
    """A 415 alert when a body is sent as a type the API does not read."""
    if declared_length(request) > 0 and media_type_of(request) not in accepted:
        raise unsupported_media_type(media_type_of(request))


def unsupported_media_type(media_type: str) -> exceptions.UnsupportedMediaType:
    return exceptions.UnsupportedMediaType(media_type, unsupported_media_type_text(media_type))


def json_nesting_problem(body: bytes) -> str | None:
    """Why ``body`` nests too deep to decode, or None: one linear scan, no recursion.

    Brackets inside strings do not count; a malformed body may be miscounted, which only
    changes which ``decoding:`` alert refuses it.
    """
    depth = 0
    for match in JSON_STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if len(token) != 1:
            continue
        if token[0] in OPENING:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels"
        else:
            depth -= 1
    return None


def refuse_non_finite(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def decode_json(body: bytes) -> Any:
    """``body`` decoded as strict JSON (UTF-8, no NaN, nesting checked first), or a 400."""
    if (problem := json_nesting_problem(body)) is not None:
        raise decoding_error(problem)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise decoding_error("the request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=refuse_non_finite)
    except RecursionError:  # cannot happen below MAX_JSON_DEPTH; never a 500 if it did
        raise decoding_error(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError, or an integer of too many digits
        raise decoding_error(str(error)) from None


def read_bounded(stream: IO[bytes]) -> bytes:
    """Read a body, refusing it (413) as soon as it passes DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(body) > limit:
        raise body_too_large(limit)
    return bytes(body)


class TrafficOpsJSONParser(parsers.JSONParser):
    """DRF's JSON parser with this module's rules: bounded, UTF-8, no NaN, shallow."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        return decode_json(read_bounded(stream))


def json_object(request: Request) -> dict[str, Any]:
    """The body as a dict, or a 400 ``decoding: ...`` alert (415, 413 as above)."""
    django_request: HttpRequest = request._request
    check_media_type(django_request)
    if declared_length(django_request) <= 0:
        raise decoding_error("the request body is empty; expected a JSON object")
    # Read here, bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (DRF's parsers read unbounded), and
    # JSON's nesting checked, so that a host keeping DRF's own parsers is as safe.
    try:
        raw = django_request.body
    except RequestDataTooBig:
        raise body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) from None
    except RawPostDataException:
        raw = b""  # already read by the parsers (this project's JSON parser checks the same)
    if media_type_of(django_request) == JSON_MEDIA_TYPE and (problem := json_nesting_problem(raw)):
        raise decoding_error(problem)
    data = request.data  # the parsers raise ParseError for malformed JSON
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
    """What makes a string in ``value`` (keys included, at any depth) unusable, or None.

    Iterative, so no body can make it recurse (JSON's nesting is bounded anyway).
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if (problem := unstorable_character(item)) is not None:
                return problem
        elif isinstance(item, dict):
            pending.extend(reversed([*item.keys(), *item.values()]))
        elif isinstance(item, list):
            pending.extend(reversed(item))
    return None
