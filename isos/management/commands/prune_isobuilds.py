"""``manage.py prune_isobuilds --older-than DAYS``: the one way audit records leave.

The admin never deletes an audit record (isos.admin); this retention command deletes
finished records started more than DAYS days ago, never a ``streaming`` one, and logs
what it removed: how many, their date range, by outcome (docs/operations.md, "Audit").
Without ``--older-than`` it deletes nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from isos.models import IsoBuild

logger = logging.getLogger("isos.audit")

FINISHED = [outcome for outcome in IsoBuild.Outcome if outcome != IsoBuild.Outcome.STREAMING]


def positive_days(value: str) -> int:
    days = int(value)
    if days < 1:
        raise ValueError(value)
    return days


class Command(BaseCommand):
    help = (
        "Delete finished ISO build audit records started more than DAYS days ago "
        "(never a streaming one), and log what was removed. Nothing happens without --older-than."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=positive_days,
            metavar="DAYS",
            help="delete finished records started more than DAYS days ago (a whole number, at least 1)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int | None = options["older_than"]
        if days is None:
            raise CommandError("nothing deleted: say how old a record must be with --older-than DAYS")
        cutoff = timezone.now() - timedelta(days=days)
        old = IsoBuild.objects.filter(started_at__lt=cutoff, outcome__in=FINISHED)
        with transaction.atomic():
            span = old.aggregate(first=Min("started_at"), last=Max("started_at"))
            if options["dry_run"]:
                counts = {outcome.value: old.filter(outcome=outcome).count() for outcome in FINISHED}
            else:
                counts = {outcome.value: old.filter(outcome=outcome).delete()[0] for outcome in FINISHED}
        total = sum(counts.values())
        verb = "would delete" if options["dry_run"] else "deleted"
        line = f"prune_isobuilds: {verb} {total} ISO build records started more than {days} days ago"
        if total:
            by_outcome = " ".join(f"{outcome}={count}" for outcome, count in counts.items() if count)
            first, last = (span[end].isoformat(timespec="seconds") for end in ("first", "last"))
            line += f" (started {first} to {last}): {by_outcome}"
        logger.info(line)
        self.stdout.write(line)
