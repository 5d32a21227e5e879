"""The audit trail: one IsoBuild record per attempt, closed when its stream ends, and one
``isos.requests`` line made only from the record (docs/design.md, "One attempt, three
callers"; docs/operations.md, "Request log").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.utils import timezone

from isos.attempt import Attempt
from isos.engine import IsoStream
from isos.models import IsoBuild
from isos.orphans import ProgressRecorder, close_orphaned_streams_if_due
from portal.trafficops.json_body import UNSTORABLE
from portal.trafficops.log_text import log_text, log_traceback, log_value

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("isos.requests")


def storable(value: Any) -> Any:
    """``value`` with every string made storable in any database's text or JSON column.

    The API refuses NUL characters and unpaired surrogates before any rule (portal.trafficops.json_body),
    but a web form or a script may still bring them, and a refusal must be recorded all the
    same: each such character becomes U+FFFD.
    """
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def log_request_line(build: IsoBuild, bytes_sent: int, started: float) -> None:
    """The one ``isos.requests`` line of an attempt that has ended (each value through
    ``log_value``: client text never ends the line)."""
    fields = {
        "build": build.pk,
        "user": build.username,
        "fqdn": build.fqdn,
        "osversion_dir": build.osversion_dir,
        "outcome": build.outcome,
        "bytes_sent": bytes_sent,
        "iso_size": build.iso_size,
        "duration_ms": round((time.monotonic() - started) * 1000),
        "client": build.client_address,
    }
    request_logger.info(" ".join(f"{key}={log_value(value)}" for key, value in fields.items()))


def record_attempt(
    attempt: Attempt,
    outcome: IsoBuild.Outcome,
    detail: str = "",
    iso_size: int | None = None,
    boot: str = "",
) -> IsoBuild:
    """Create the record of one attempt, with the request settings it holds (no password)."""
    settings = storable(dict(attempt.settings))
    host, domain = settings.get("hostName"), settings.get("domainName")
    fqdn = f"{host}.{domain}" if isinstance(host, str) and isinstance(domain, str) else ""
    directory = settings.get("osversionDir")
    user = attempt.user if attempt.user.is_authenticated else None
    if outcome == IsoBuild.Outcome.STREAMING:
        close_orphaned_streams_if_due()  # cheap: at most once a minute per process
    build = IsoBuild.objects.create(
        user=user,
        username=user.get_username() if user else "",
        fqdn=fqdn[:253],
        osversion_dir=directory[:1024] if isinstance(directory, str) else "",
        outcome=outcome,
        detail=storable(detail),
        iso_size=iso_size,
        boot=boot[:500],
        client_address=attempt.client_address,
        request_settings=settings,
        finished_at=None if outcome == IsoBuild.Outcome.STREAMING else timezone.now(),
    )
    if outcome == IsoBuild.Outcome.STREAMING:
        logger.info("ISO build %s started: %s", build.pk, log_text(build))
    else:
        # The detail quotes the client's values (a refusal names them): one line all the same.
        logger.info("ISO build %s %s: %s (%s)", build.pk, outcome, log_text(build), log_text(detail))
        log_request_line(build, 0, attempt.started)
    attempt.record = build
    return build


class AuditedStream:
    """Wraps the ISO's byte chunks, counting them and closing the audit record."""

    def __init__(self, chunks: IsoStream, build: IsoBuild, started: float | None = None) -> None:
        self._chunks = chunks
        self._build = build
        self._started = time.monotonic() if started is None else started
        self._bytes_sent = 0
        self._closed = False
        self._save_progress = ProgressRecorder(build.pk)
        self._when_closed: list[Callable[[], None]] = []

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the server closes the stream (e.g. to free its slot)."""
        self._when_closed.append(callback)

    @property
    def size(self) -> int:
        """The ISO's exact size, known before the first byte."""
        return self._build.iso_size or 0

    def fail(self, reason: str) -> None:
        """Close the record as failed for a reason on the receiving side (e.g. a full disk)."""
        self._finish(IsoBuild.Outcome.FAILED, f"failed after {self._bytes_sent} bytes: {reason}")

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._chunks:
                # Counted when handed to the server: what a client that goes away got.
                self._bytes_sent += len(chunk)
                self._save_progress(self._bytes_sent)  # so a dead worker's stream can be told
                yield chunk
        except Exception as error:
            # The traceback's messages may quote a source's paths: each on one line.
            logger.error("ISO build %s failed mid-stream\n%s", self._build.pk, log_traceback(error))
            self._finish(IsoBuild.Outcome.FAILED, f"failed after {self._bytes_sent} bytes: {error}")
            raise
        self._finish(IsoBuild.Outcome.BUILT, self._build.change_log_message)

    def close(self) -> None:
        """Called by the WSGI server when it is done with the response, finished or not."""
        try:
            if not self._closed:
                self._finish(IsoBuild.Outcome.CLIENT_WENT_AWAY, f"closed after {self._bytes_sent} bytes")
        finally:
            # The files and the slot are freed even if the record could not be closed.
            try:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
            finally:
                callbacks, self._when_closed = self._when_closed, []
                for callback in callbacks:
                    callback()

    def _finish(self, outcome: IsoBuild.Outcome, detail: str) -> None:
        if self._closed:
            return
        self._closed = True
        IsoBuild.objects.filter(pk=self._build.pk).update(
            outcome=outcome, detail=detail, bytes_sent=self._bytes_sent, finished_at=timezone.now()
        )
        self._build.outcome = outcome
        logger.info(
            "ISO build %s %s: %s, %d of %s bytes sent",
            self._build.pk,
            outcome,
            log_text(self._build),
            self._bytes_sent,
            self._build.iso_size,
        )
        log_request_line(self._build, self._bytes_sent, self._started)
