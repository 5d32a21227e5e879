"""An ISO URL's fetch counts: tallied in each worker's memory, written to its record soon.

A BMC reads a URL in thousands of small ranges, and one UPDATE each cost more than the
range itself (docs/performance.md, "Ranges"): each worker writes a URL's tally at most once
a second and at its exit. The sums are exact, only late.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Case, DateTimeField, F, GenericIPAddressField, Q, Value, When
from django.utils import timezone

from isos.models import IsoMedia

logger = logging.getLogger(__name__)

# Seconds from a URL's first unwritten fetch to the timer that writes it (a greenlet under
# gevent, a thread otherwise).
COUNT_EVERY = 1.0


@dataclass
class _Tally:
    fetches: int = 0
    bytes_served: int = 0
    last_client: str | None = None
    last_fetched_at: datetime | None = None

    def merge(self, other: _Tally) -> None:
        self.fetches += other.fetches
        self.bytes_served += other.bytes_served
        if other.last_fetched_at is not None and (
            self.last_fetched_at is None or other.last_fetched_at >= self.last_fetched_at
        ):
            self.last_client, self.last_fetched_at = other.last_client, other.last_fetched_at


class FetchCounts:
    """One worker's fetch counts not yet written, per URL's record id.

    ``every``: seconds from a URL's first unwritten fetch to the timer that writes it;
    None writes only when :meth:`flush` is called (the tests, in-process).
    """

    def __init__(self, every: float | None = COUNT_EVERY) -> None:
        self.every = every
        self._lock = threading.Lock()
        # By (database, record id): a test run swaps databases under the process, and a
        # tally counted on one is never written to another's row of the same id.
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._timer: threading.Timer | None = None

    def add(self, media_id: int, bytes_served: int, client: str | None, at: datetime) -> None:
        key = (str(connection.settings_dict["NAME"]), media_id)
        with self._lock:
            self._tallies.setdefault(key, _Tally()).merge(_Tally(1, bytes_served, client, at))
            self._schedule()

    def _schedule(self) -> None:
        """Start the timer if none is pending (the lock held)."""
        if self._timer is None and self.every is not None:
            self._timer = threading.Timer(self.every, self._flush_from_timer)
            self._timer.daemon = True
            self._timer.start()

    def _flush_from_timer(self) -> None:
        try:
            self.flush(retry_later=True)
        finally:
            # The timer's own connection (Django keeps one per thread or greenlet).
            connection.close()

    def flush(self, *, retry_later: bool = False) -> None:
        """Write every tally now: one UPDATE per URL. One that cannot be written (the
        database away) is kept for the next timer if ``retry_later``, else logged lost."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()  # when called by the timer itself: a no-op
        database = str(connection.settings_dict["NAME"])
        unwritten: dict[tuple[str, int], _Tally] = {}
        for key, tally in tallies.items():
            counted_on, media_id = key
            if counted_on != database:
                continue
            try:
                _write_tally(media_id, tally)
            except Exception as error:  # the database away: never a failure of the worker
                unwritten[key] = tally
                later = " yet" if retry_later else ""
                logger.warning(
                    "ISO URL %s: %s fetches not counted%s (%s)", media_id, tally.fetches, later, error
                )
        if unwritten and retry_later:
            with self._lock:
                for key, tally in unwritten.items():
                    self._tallies.setdefault(key, _Tally()).merge(tally)
                self._schedule()


def _write_tally(media_id: int, tally: _Tally) -> None:
    # Workers write in any order: the last client and time are the newest of any worker's.
    newer = Q(last_fetched_at__isnull=True) | Q(last_fetched_at__lte=tally.last_fetched_at)
    IsoMedia.objects.filter(pk=media_id).update(
        fetch_count=F("fetch_count") + tally.fetches,
        bytes_served=F("bytes_served") + tally.bytes_served,
        last_client=Case(
            When(newer, then=Value(tally.last_client)),
            default=F("last_client"),
            output_field=GenericIPAddressField(null=True),
        ),
        last_fetched_at=Case(
            When(newer, then=Value(tally.last_fetched_at)),
            default=F("last_fetched_at"),
            output_field=DateTimeField(null=True),
        ),
    )


fetch_counts = FetchCounts()
atexit.register(lambda: fetch_counts.flush())


def count_fetch(record: IsoMedia, bytes_served: int, client: str | None) -> None:
    """One request served from this URL: its counts, last client and time (written soon)."""
    fetch_counts.add(record.pk, bytes_served, client, timezone.now())


def flush_fetch_counts() -> None:
    """Write this worker's unwritten fetch counts (gunicorn's worker_exit hook)."""
    fetch_counts.flush()
