"""Audit records left ``streaming`` by a server process that died: found and closed as
``interrupted``, with the request-log line the stream never wrote (docs/operations.md,
"Audit").

A streaming record is orphaned when its owner (``isos.process_owner``) ran on this
machine, this boot, this pid namespace and is gone, or when it has not progressed for
``STALLED_STREAM_LIMIT`` (the only sign a process on another server can see). A live
stream saves its progress about every ``PROGRESS_INTERVAL`` while it hands out bytes.

Closing runs at a worker's first request and then at most once a minute (``isos.apps``),
whenever the admin lists records or the history page is read, and before a new stream's
record is made; each close is one conditional UPDATE, so two workers closing the same
record at once log it once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Q, QuerySet
from django.utils import timezone

from isos.connections import close_while_streaming
from isos.models import IsoBuild
from isos.process_owner import ProcessOwner, owner_is_gone

logger = logging.getLogger("isos.audit")

# A stream that handed out no byte for this long is taken for dead, wherever it ran.
STALLED_STREAM_LIMIT = timedelta(hours=1)
# How often a live stream saves its progress (bytes_sent, progressed_at).
PROGRESS_INTERVAL = 60.0
# How often each worker looks for orphans on its own (besides the reads that always do).
SWEEP_INTERVAL = 60.0

_sweep_lock = threading.Lock()
_last_sweep: tuple[int, float] | None = None  # (pid, monotonic time)


def orphan_reason(build: IsoBuild, now: datetime) -> str | None:
    """Why a streaming record's stream is surely over, or None while it may still run."""
    if build.owner_pid is not None:
        owner = ProcessOwner(host=build.owner_host, pid=build.owner_pid, token=build.owner_token)
        if owner_is_gone(owner):
            return f"its server process ({build.owner_host} pid {build.owner_pid}) is gone"
    last_progress = build.progressed_at or build.started_at
    if now - last_progress > STALLED_STREAM_LIMIT:
        return f"no progress since {last_progress.isoformat(timespec='seconds')}"
    return None


def orphan_candidates(now: datetime) -> QuerySet[IsoBuild]:
    """The streaming records that may be orphans: those of owners gone (each owner judged
    once: a few processes own a thousand streams) or not progressed for the stall limit."""
    streaming = IsoBuild.objects.filter(outcome=IsoBuild.Outcome.STREAMING)
    owners = (
        streaming.exclude(owner_pid=None).values_list("owner_host", "owner_pid", "owner_token").distinct()
    )
    gone = Q(pk__in=[])
    for host, pid, token in owners:
        if pid is not None and owner_is_gone(ProcessOwner(host=host, pid=pid, token=token)):
            gone |= Q(owner_host=host, owner_pid=pid, owner_token=token)
    stalled = now - STALLED_STREAM_LIMIT
    quiet = Q(progressed_at__lt=stalled) | Q(progressed_at=None, started_at__lt=stalled)
    return streaming.filter(gone | quiet).order_by("id")


def close_orphaned_streams() -> list[IsoBuild]:
    """Close every orphaned streaming record as ``interrupted``; the records closed here."""
    from isos.audit import log_request_line

    now = timezone.now()
    closed = []
    for build in orphan_candidates(now):
        reason = orphan_reason(build, now)
        if reason is None:
            continue
        last_progress = build.progressed_at or build.started_at
        detail = f"interrupted: {reason}; {build.bytes_sent} bytes sent by its last saved progress"
        # Conditional: only one closer wins, and a stream that just ended keeps its outcome.
        won = IsoBuild.objects.filter(pk=build.pk, outcome=IsoBuild.Outcome.STREAMING).update(
            outcome=IsoBuild.Outcome.INTERRUPTED, detail=detail, finished_at=last_progress
        )
        if not won:
            continue
        build.outcome, build.detail, build.finished_at = IsoBuild.Outcome.INTERRUPTED, detail, last_progress
        logger.warning("ISO build %s interrupted: %s", build.pk, detail)
        # duration_ms: from the start to the last progress seen (the end is not known better).
        duration = (last_progress - build.started_at).total_seconds()
        log_request_line(build, build.bytes_sent, time.monotonic() - max(duration, 0.0))
        closed.append(build)
    return closed


def close_orphaned_streams_if_due() -> None:
    """:func:`close_orphaned_streams` at this process's first call, then at most once per
    ``SWEEP_INTERVAL``; never raises (a request must not fail for it)."""
    global _last_sweep
    pid, now = os.getpid(), time.monotonic()
    if _last_sweep is not None and _last_sweep[0] == pid and now - _last_sweep[1] < SWEEP_INTERVAL:
        return
    if not _sweep_lock.acquire(blocking=False):
        return  # another thread of this worker is at it
    try:
        _last_sweep = (pid, now)
        close_orphaned_streams()
    except Exception as error:
        # E.g. before migrate, or the database away: the request goes on, and the next
        # call after SWEEP_INTERVAL tries again.
        logger.warning("could not look for interrupted streams: %s: %s", type(error).__name__, error)
    finally:
        _sweep_lock.release()


class ProgressRecorder:
    """Saves a live stream's progress at most once per ``PROGRESS_INTERVAL``."""

    def __init__(self, build_pk: int) -> None:
        self._pk = build_pk
        self._saved = time.monotonic()

    def __call__(self, bytes_sent: int) -> None:
        now = time.monotonic()
        if now - self._saved < PROGRESS_INTERVAL:
            return
        self._saved = now
        try:
            IsoBuild.objects.filter(pk=self._pk, outcome=IsoBuild.Outcome.STREAMING).update(
                bytes_sent=bytes_sent, progressed_at=timezone.now()
            )
        except DatabaseError as error:
            # The download goes on; the record is closed at its end all the same.
            logger.warning("ISO build %s: could not save progress: %s", self._pk, error)
        close_while_streaming()
