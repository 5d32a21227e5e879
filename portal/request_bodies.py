"""Request bodies at the door: their size, framing and type, before anything reads them.

Every route that reads a body (the API, the login page, the Generate ISO page, logout, the
admin) sits behind this middleware (docs/api.md, "Request bodies"):

- a Content-Length over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``REQUEST_BODY_MAX_KB``) is a 413
  before a byte is read; one that is not a number is a 400;
- a body without a Content-Length (``Transfer-Encoding: chunked``, which gunicorn dechunks
  and marks with ``wsgi.input_terminated``) is read as the server hands it, up to the
  limit (a 413 past it), and then looks to Django like any other body; a server that does
  not dechunk gets a 411;
- pages read only ``application/x-www-form-urlencoded`` (415 otherwise), parsed here, so
  that Django's refusals (too many fields, a form that is not UTF-8) are a polite 400 and
  not a traceback; the API's types are its parsers' (``portal.trafficops.json_body``).

Answers are Traffic Ops alerts under ``/api/`` and the portal's pages elsewhere. Nothing
of the request is logged: a client cannot fill the log.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, UnreadablePostError

from portal.trafficops.alerts import too_large_text, unreadable_body_reason
from portal.trafficops.json_body import FORM_MEDIA_TYPE, media_type_of
from portal.views import is_api_path, refusal_response

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# What the portal's pages (the login, Generate ISO and logout forms, the admin) post.
PAGE_MEDIA_TYPES = frozenset({FORM_MEDIA_TYPE})
READ_CHUNK = 64 * 1024


class BodyRefused(Exception):
    """A body refused with ``status`` and ``text`` before the view sees it."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def read_up_to(stream: IO[bytes], limit: int | None) -> bytes:
    """Everything ``stream`` holds, or a 413 as soon as it holds more than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyRefused(413, too_large_text(limit))
        chunks.append(chunk)


def content_length_header(request: HttpRequest) -> int | None:
    """Content-Length as a number, None when absent; a 400 when it is not one."""
    header = request.META.get("CONTENT_LENGTH")
    if header in (None, ""):
        return None
    text = str(header).strip()
    if not text.isascii() or not text.isdigit():
        raise BodyRefused(400, "the Content-Length header is not a number")
    return int(text)


def frame_body(request: HttpRequest) -> None:
    """Refuse a body over the limit; read one that comes without a Content-Length."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    length = content_length_header(request)
    if length is not None:
        if limit is not None and length > limit:
            raise BodyRefused(413, too_large_text(limit))
        return
    if request.method in SAFE_METHODS:
        return  # nothing reads a GET's body; the server discards it
    if not request.META.get("wsgi.input_terminated"):
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            raise BodyRefused(411, "a request body needs a Content-Length (this server does not dechunk)")
        return  # no body (Django reads none without a Content-Length)
    # The server hands the body over whole (gunicorn dechunks): read it as it comes.
    body = read_up_to(request.META["wsgi.input"], limit)
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]


def check_page_body(request: HttpRequest) -> None:
    """A page's body: a url-encoded form (415 otherwise), parsed now (400 if unreadable)."""
    if request.method in SAFE_METHODS or not int(request.META.get("CONTENT_LENGTH") or 0):
        return
    media_type = media_type_of(request)
    if media_type not in PAGE_MEDIA_TYPES:
        raise BodyRefused(415, f'unsupported media type "{media_type}": forms are sent as {FORM_MEDIA_TYPE}')
    try:
        request.POST  # noqa: B018  (parsed here, where its refusals are answered quietly)
    except RequestDataTooBig:
        raise BodyRefused(413, too_large_text(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)) from None
    except (SuspiciousOperation, BadRequest, UnreadablePostError) as error:
        reason = unreadable_body_reason(error) or "the form could not be read"
        raise BodyRefused(400, reason) from None


class RequestBodyMiddleware:
    """Refuses (or frames) a body before any other middleware or view reads it.

    Its place in MIDDLEWARE only decides which headers its answers get: every
    middleware's ``process_view`` (CsrfViewMiddleware reads the form there) runs after
    every middleware's request phase, this one's included.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            frame_body(request)
            if not is_api_path(request):
                check_page_body(request)
        except BodyRefused as refused:
            logger.info("request body refused with %d", refused.status)
            return refusal_response(request, refused.status, refused.text)
        return self.get_response(request)
