"""Serving an ISO URL to a BMC (GET and HEAD, no session, Range requests), and revoking one.

The HTTP rules (RFC 9110: ranges, If-Range, 416, HEAD) and what a URL answers after it
expired, was revoked or its source changed: docs/api.md, "ISO URLs for virtual media".
The token never reaches a log line: each request's line names the record's id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from isos.connections import close_while_streaming
from isos.engine.layout_cache import SourceChanged, layout_cache
from isos.engine.stream import IsoImage
from isos.fetch_counts import count_fetch
from isos.generation import content_disposition, limit_send_time
from isos.media import files_of, live_media, live_media_for_token, pin_of, revoke
from isos.models import IsoMedia
from isos.stream_limits import RETRY_AFTER_SECONDS, take_worker_slot, worker_streams
from portal.trafficops.alerts import alert_response
from portal.trafficops.log_text import log_traceback, log_value
from portal.trafficops.openapi import UNAUTHORIZED, alerts, schema_common

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("isos.media.fetches")

GONE_TEXT = "the ISO source changed after this URL was made; generate a new one"
NOT_FOUND_TEXT = "Not Found"
BUSY_TEXT = "the server is sending as many ISOs as it can; try again shortly"
SINGLE_RANGE = re.compile(r"bytes=(?:(\d+)-(\d*)|-(\d+))")


def _plain(status_code: int, text: str) -> HttpResponse:
    response = HttpResponse(f"{text}\n", status=status_code, content_type="text/plain; charset=utf-8")
    # Django's request logger would write the path, token and all: this module logs the id.
    response._has_been_logged = True  # type: ignore[attr-defined]
    response["Cache-Control"] = "no-store"
    return response


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The one range a ``Range`` header asks for, as (first, last) inclusive; "unsatisfiable";
    or None for the whole (no header, another unit, a syntax error, or several ranges:
    RFC 9110 lets a server ignore those, and this one answers them with the whole 200)."""
    if header is None:
        return None
    match = SINGLE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        count = int(suffix)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(size - count, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: the header is ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


def if_range_holds(header: str | None, etag: str, last_modified: int) -> bool:
    """Whether a Range may be honoured: no ``If-Range``, or one naming this very ISO (its
    strong ETag, or exactly its Last-Modified date)."""
    if header is None:
        return True
    value = header.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return parse_http_date_safe(value) == last_modified


class _MediaBody:
    """A response body that counts what went out, and at close counts the fetch, logs its
    line and frees its stream slot and image."""

    def __init__(
        self,
        image: IsoImage | None,
        chunks: Iterator[bytes],
        record: IsoMedia,
        request: HttpRequest,
        line: dict[str, Any],
    ) -> None:
        self._image = image
        self._chunks = chunks
        self._record = record
        self._client = request.META.get("REMOTE_ADDR") or None
        self._line = line
        self._started = time.monotonic()
        self._sent = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._chunks:
                self._sent += len(chunk)
                yield chunk
        except Exception as error:
            self._line["outcome"] = "failed"
            logger.error("ISO URL %s failed mid-stream\n%s", self._record.pk, log_traceback(error))
            raise
        else:
            self._line.setdefault("outcome", "served")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._line.setdefault(
                "outcome", "client_went_away" if self._sent < self._line["length"] else "served"
            )
            if self._image is not None:
                self._image.close()
                worker_streams.give_back()
            count_fetch(self._record, self._sent, self._client)
        finally:
            log_fetch(self._record.pk, self._line, self._sent, self._started, self._client)


def log_fetch(
    media_id: int | None, line: dict[str, Any], sent: int, started: float, client: str | None
) -> None:
    """The one ``isos.media.fetches`` line of a request to a URL (never its token)."""
    fields = {
        "media": media_id,
        **line,
        "bytes_sent": sent,
        "duration_ms": round((time.monotonic() - started) * 1000),
        "client": client,
    }
    request_logger.info(" ".join(f"{key}={log_value(value)}" for key, value in fields.items()))


def _refused(
    status_code: int, text: str, media_id: int | None, request: HttpRequest, outcome: str
) -> HttpResponse:
    log_fetch(
        media_id,
        {"method": request.method, "status": status_code, "range": "-", "length": 0, "outcome": outcome},
        0,
        time.monotonic(),
        request.META.get("REMOTE_ADDR") or None,
    )
    return _plain(status_code, text)


@csrf_exempt
def media_file(request: HttpRequest, token: str = "", name: str = "") -> HttpResponseBase:
    """``GET``/``HEAD`` of an ISO URL (or its ``.sha256``), by its token alone."""
    if request.method not in ("GET", "HEAD"):
        response = _plain(405, "Method Not Allowed")
        response["Allow"] = "GET, HEAD"
        return response
    record = live_media_for_token(token)
    checksum = record is not None and name == f"{record.iso_name}.sha256"
    if record is None or (name != record.iso_name and not checksum):
        return _refused(404, NOT_FOUND_TEXT, None, request, "not_found")
    if checksum:
        response = HttpResponse(
            f"{record.sha256}  {record.iso_name}\n", content_type="text/plain; charset=utf-8"
        )
        response["Cache-Control"] = "private, no-transform"
        log_fetch(
            record.pk,
            {"method": request.method, "status": 200, "range": "sha256", "length": 0, "outcome": "served"},
            0,
            time.monotonic(),
            request.META.get("REMOTE_ADDR") or None,
        )
        return response
    return _serve(request, record)


def _serve(request: HttpRequest, record: IsoMedia) -> HttpResponseBase:
    size = record.size
    etag = f'"{record.sha256}"'
    last_modified = int(record.created_at.timestamp())
    wanted = parse_range(request.headers.get("Range"), size) if request.method == "GET" else None
    if wanted is not None and not if_range_holds(request.headers.get("If-Range"), etag, last_modified):
        wanted = None
    if wanted == "unsatisfiable":
        response = _refused(416, "Range Not Satisfiable", record.pk, request, "unsatisfiable")
        response["Content-Range"] = f"bytes */{size}"
        return response
    if take_worker_slot() is not None:
        response = _refused(503, BUSY_TEXT, record.pk, request, "busy")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    try:
        image = layout_cache.pinned_image(
            pin_of(record), files_of(record), chunk_size=settings.ISO_STREAM_CHUNK_KB * 1024
        )
    except SourceChanged as change:
        worker_streams.give_back()
        logger.warning("ISO URL %s: %s", record.pk, change)
        return _refused(410, GONE_TEXT, record.pk, request, "source_changed")
    except BaseException:
        worker_streams.give_back()
        raise
    if image.size != size:  # the digest matched: never, but never mixed bytes either
        image.close()
        worker_streams.give_back()
        return _refused(410, GONE_TEXT, record.pk, request, "source_changed")
    first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
    length = last - first + 1 if size else 0
    line: dict[str, Any] = {
        "method": request.method,
        "status": 206 if wanted else 200,
        "range": f"{first}-{last}" if wanted else "whole",
        "length": length if request.method == "GET" else 0,
    }
    chunks: Iterator[bytes] = image.iter_range(first, length) if request.method == "GET" else iter(())
    body = _MediaBody(image, chunks, record, request, line)
    answer = StreamingHttpResponse(
        body, status=206 if wanted else 200, content_type="application/octet-stream"
    )
    answer["Content-Length"] = str(length)
    if wanted:
        answer["Content-Range"] = f"bytes {first}-{last}/{size}"
    answer["Accept-Ranges"] = "bytes"
    answer["ETag"] = etag
    answer["Last-Modified"] = http_date(last_modified)
    answer["Content-Disposition"] = content_disposition(record.iso_name)
    answer["Cache-Control"] = "private, no-transform"
    socket = request.META.get("gunicorn.socket")
    if socket is not None:
        limit_send_time(socket, settings.ISO_SEND_TIMEOUT)
    close_while_streaming()  # the pool's connection goes back while the bytes go out
    return answer


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under the URLs' prefix: the same 404, logged without the path."""
    return _refused(404, NOT_FOUND_TEXT, None, request, "not_found")


class MediaUrlView(APIView):
    """``DELETE isos/urls/<id>``: revoke an ISO URL (its owner or an admin)."""

    name = "ISO URL"
    permission_classes = [IsAuthenticated]
    # Scripts send DELETE with no body; a browser sends DELETE to another origin only after a
    # CORS preflight, which the portal never answers, and a cross-origin request is refused
    # all the same (docs/api.md, "Scripts need no CSRF token").
    csrf_token_exempt = True

    @extend_schema(
        summary="Revoke an ISO URL made with stream no (its owner, or an admin)",
        responses={
            200: alerts("Revoked: the URL answers 404 from now on.", "ISO URL revoked.", level="success"),
            401: UNAUTHORIZED,
            404: alerts(
                "No live URL of this id that you may revoke (expired and revoked alike).", "no such ISO URL"
            ),
        },
        **schema_common(),
    )
    def delete(self, request: Request, version: str, media_id: str) -> Response:
        record = live_media(media_id, request.user)
        if record is None or not revoke(record, request.user.get_username()):
            return alert_response(status.HTTP_404_NOT_FOUND, "no such ISO URL")
        logger.info("ISO URL %s revoked by %s", record.pk, log_value(request.user.get_username()))
        return alert_response(status.HTTP_200_OK, "ISO URL revoked.", level="success")
