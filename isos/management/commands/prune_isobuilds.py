"""``manage.py prune_isobuilds --older-than DAYS``: the one way audit records leave.

The admin never deletes an audit record (isos.admin); this retention command, on each run:

- empties the stored ks_scripts files (the root password's crypt hash among them) of every
  ISO URL no longer live (expired or revoked), whatever its age: only its bytes needed them;
- deletes the ISO URL records (``IsoMedia``) whose expiry or revocation is more than DAYS
  days ago, never a live one;
- deletes the Redfish mount records started more than DAYS days ago;
- deletes finished ISO build records started more than DAYS days ago, never a
  ``streaming`` one.

Each is logged in one line: how many, their date range and kinds (docs/operations.md,
"Audit"); never a token (records hold only its hash, and no line names it). A young record
that points at a deleted one keeps itself with the link emptied (the foreign keys are
``SET_NULL``). ``--dry-run`` says what would happen and changes nothing. Without
``--older-than`` nothing happens.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Max, Min, Q, QuerySet, When
from django.utils import timezone

from isos.media import live_at
from isos.models import IsoBuild, IsoMedia, RedfishMount

logger = logging.getLogger("isos.audit")

FINISHED = [outcome for outcome in IsoBuild.Outcome if outcome != IsoBuild.Outcome.STREAMING]


def positive_days(value: str) -> int:
    days = int(value)
    if days < 1:
        raise ValueError(value)
    return days


def details(span: dict[str, datetime | None], word: str, counts: dict[str, int]) -> str:
    """What a line adds of the records it counts: `` (WORD FIRST to LAST): kind=N ...``, or
    nothing when there were none."""
    if not any(counts.values()):
        return ""
    first, last = (span[end].isoformat(timespec="seconds") for end in ("first", "last"))  # type: ignore[union-attr]
    kinds = " ".join(f"{kind}={count}" for kind, count in counts.items() if count)
    return f" ({word} {first} to {last}): {kinds}"


def ended_urls(now: datetime) -> QuerySet[IsoMedia]:
    """The URLs no longer live (revoked, or expired by ``now``), each with ``ended``: when it
    stopped being live (its revocation if that came first, else its expiry)."""
    return IsoMedia.objects.exclude(live_at(now)).annotate(
        ended=Case(
            When(revoked_at__lt=F("expires_at"), then=F("revoked_at")),
            default=F("expires_at"),
            output_field=DateTimeField(),
        )
    )


def url_kinds(urls: QuerySet[IsoMedia]) -> dict[str, int]:
    return {
        "expired": urls.filter(revoked_at__isnull=True).count(),
        "revoked": urls.filter(revoked_at__isnull=False).count(),
    }


class Command(BaseCommand):
    help = (
        "Retention of the audit records: empty the stored ks_scripts files of every ISO URL no "
        "longer live (expired or revoked); delete ISO URL records expired or revoked more than "
        "DAYS days ago (never a live one), Redfish mount records and finished ISO build records "
        "(never a streaming one) started more than DAYS days ago; log what was done. Nothing "
        "happens without --older-than."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=positive_days,
            metavar="DAYS",
            help="delete records older than DAYS days (a whole number, at least 1): builds and "
            "Redfish mounts started, ISO URLs expired or revoked, that long ago",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be emptied and deleted, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int | None = options["older_than"]
        if days is None:
            raise CommandError("nothing deleted: say how old a record must be with --older-than DAYS")
        dry_run: bool = options["dry_run"]
        now = timezone.now()
        cutoff = now - timedelta(days=days)
        with transaction.atomic():
            lines = [
                self.builds(cutoff, days, dry_run),
                self.wipe_urls(now, dry_run),
                self.old_urls(now, cutoff, days, dry_run),
                self.mounts(cutoff, days, dry_run),
            ]
        for line in lines:
            logger.info(line)
            self.stdout.write(line)

    def builds(self, cutoff: datetime, days: int, dry_run: bool) -> str:
        old = IsoBuild.objects.filter(started_at__lt=cutoff, outcome__in=FINISHED)
        span = old.aggregate(first=Min("started_at"), last=Max("started_at"))
        if dry_run:
            counts = {outcome.value: old.filter(outcome=outcome).count() for outcome in FINISHED}
        else:
            # A URL or mount pointing at a deleted build keeps itself, its link emptied (SET_NULL).
            counts = {
                outcome.value: old.filter(outcome=outcome).delete()[1].get(IsoBuild._meta.label, 0)
                for outcome in FINISHED
            }
        total = sum(counts.values())
        verb = "would delete" if dry_run else "deleted"
        return (
            f"prune_isobuilds: {verb} {total} ISO build records started more than {days} days ago"
            + details(span, "started", counts)
        )

    def wipe_urls(self, now: datetime, dry_run: bool) -> str:
        """Empty the stored files of every URL no longer live, whatever its age."""
        holding = ended_urls(now).exclude(files={})
        span = holding.aggregate(first=Min("ended"), last=Max("ended"))
        counts = url_kinds(holding)
        total = sum(counts.values())
        if not dry_run and total:
            # By id: an UPDATE cannot carry the annotation.
            IsoMedia.objects.filter(pk__in=list(holding.values_list("pk", flat=True))).update(files={})
        verb = "would empty" if dry_run else "emptied"
        return (
            f"prune_isobuilds: {verb} the stored ks_scripts files of {total} ISO URLs no longer live"
            + details(span, "ended", counts)
        )

    def old_urls(self, now: datetime, cutoff: datetime, days: int, dry_run: bool) -> str:
        """Delete the URLs whose expiry or revocation is more than DAYS days ago (never a live
        one: ``ended_urls`` holds only URLs no longer live)."""
        # Expired or revoked before the cutoff: the same as having ended before it.
        old = ended_urls(now).filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff))
        span = old.aggregate(first=Min("ended"), last=Max("ended"))
        counts = url_kinds(old)
        total = sum(counts.values())
        if not dry_run and total:
            # A mount pointing at a deleted URL keeps itself, its link emptied (SET_NULL).
            IsoMedia.objects.filter(pk__in=list(old.values_list("pk", flat=True))).delete()
        verb = "would delete" if dry_run else "deleted"
        return (
            f"prune_isobuilds: {verb} {total} ISO URL records expired or revoked more than {days} days ago"
            + details(span, "ended", counts)
        )

    def mounts(self, cutoff: datetime, days: int, dry_run: bool) -> str:
        old = RedfishMount.objects.filter(started_at__lt=cutoff)
        span = old.aggregate(first=Min("started_at"), last=Max("started_at"))
        counts = {outcome.value: old.filter(outcome=outcome).count() for outcome in RedfishMount.Outcome}
        total = old.count()
        if not dry_run and total:
            old.delete()
        verb = "would delete" if dry_run else "deleted"
        return (
            f"prune_isobuilds: {verb} {total} Redfish mount records started more than {days} days ago"
            + details(span, "started", counts)
        )
