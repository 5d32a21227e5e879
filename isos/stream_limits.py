"""Fair use of the downloads: how many ISOs stream at once, per user and per worker.

Per user (``ISO_MAX_STREAMS_PER_USER``), counted across every worker and server from the
audit's ``streaming`` records: a 429. Per worker (``ISO_MAX_STREAMS``, never more than the
worker's file descriptors allow): a 503. Both carry ``Retry-After`` and are audited as
refusals (docs/operations.md, "Many downloads at once").
"""

from __future__ import annotations

import errno
import os
import resource
import threading
from dataclasses import dataclass

from django.conf import settings

from isos.attempt import Attempt
from isos.audit import record_attempt
from isos.models import IsoBuild

# Seconds a refused client is asked to wait: about how long a short download takes.
RETRY_AFTER_SECONDS = 30
# Descriptors kept for everything but the streams: short requests, the database, the
# log, a layout's child process. A stream holds its client, the source file it sends and
# the folders from the source's root down to that file, and for a moment a database
# connection and the folders from / down to the root: a dozen is a generous reckoning.
RESERVED_DESCRIPTORS = 128
DESCRIPTORS_PER_STREAM = 12
# Fewer left than this when a download would start: it is refused, whatever the bound says.
LAST_DESCRIPTORS = 32
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
OUT_OF_DESCRIPTORS_TEXT = "the server has no file descriptors left for another ISO; try again shortly"


@dataclass
class StreamRefused(Exception):
    """A download refused for want of capacity; already audited. ``status`` is 429 or 503."""

    status: int
    message: str
    retry_after: int = RETRY_AFTER_SECONDS


def open_file_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


def descriptor_bound() -> int:
    """The most streams this process's file descriptors hold (its soft RLIMIT_NOFILE)."""
    return max(1, (open_file_limit() - RESERVED_DESCRIPTORS) // DESCRIPTORS_PER_STREAM)


def descriptors_left() -> int | None:
    """How many more files this process may open now (None where /proc does not say)."""
    try:
        return open_file_limit() - len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class WorkerStreams:
    """This worker's count of open downloads (threads or greenlets alike)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)


worker_streams = WorkerStreams()


def refuse(attempt: Attempt, status: int, message: str) -> StreamRefused:
    """Audit a capacity refusal; the caller raises what this returns."""
    record_attempt(attempt, IsoBuild.Outcome.REFUSED, message)
    return StreamRefused(status, message)


def user_streams(attempt: Attempt) -> int:
    """The attempt's user's downloads streaming now, on every worker and server."""
    return IsoBuild.objects.filter(user_id=attempt.user.pk or 0, outcome=IsoBuild.Outcome.STREAMING).count()


def take_stream_slot(attempt: Attempt) -> None:
    """Reserve one of this worker's streams for the attempt, or raise StreamRefused (audited).

    The caller gives it back (``worker_streams.give_back``) when the download closes, or at
    once if the download never starts.
    """
    per_user = settings.ISO_MAX_STREAMS_PER_USER
    if per_user and attempt.user.is_authenticated and user_streams(attempt) >= per_user:
        raise refuse(
            attempt,
            429,
            f"too many ISO downloads at once: at most {per_user} per user; "
            "try again when one of yours has finished",
        )
    busy = take_worker_slot()
    if busy is not None:
        raise refuse(attempt, 503, busy)


def take_worker_slot() -> str | None:
    """Take one of this worker's streams (any download: a POST's, an ISO URL's), or say why
    not, in the words of the 503: as many as ``ISO_MAX_STREAMS`` or the descriptors allow
    stream already, or fewer than LAST_DESCRIPTORS are left."""
    limit = min(settings.ISO_MAX_STREAMS, descriptor_bound())
    if not worker_streams.take(limit):
        return f"the server is sending as many ISOs as it can ({limit} at once); try again shortly"
    left = descriptors_left()
    if left is not None and left < LAST_DESCRIPTORS:
        # Deeper trees than reckoned, or other files held: the bound was not enough.
        worker_streams.give_back()
        return OUT_OF_DESCRIPTORS_TEXT
    return None


def out_of_descriptors(attempt: Attempt) -> StreamRefused:
    """The refusal when opening the ISO ran out of file descriptors (audited)."""
    return refuse(attempt, 503, OUT_OF_DESCRIPTORS_TEXT)
