"""``manage.py sync_osversions``: mirror osversions.json into rows now, and say what changed.

Requests sync on their own; this is for an operator who just edited the file (or a
deploy script) and wants to see the result, or a non-zero exit when the file is unusable.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from osversions.catalog import CatalogError, sync_catalog
from osversions.signals import catalog_synced


class Command(BaseCommand):
    help = (
        "Sync osversions.json into the OS version rows; print what was added, updated, "
        "marked unavailable, and each bad entry skipped."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = sync_catalog()
        except CatalogError as error:
            raise CommandError(str(error)) from error
        for label, names in (
            ("added", report.added),
            ("updated", report.updated),
            ("marked unavailable", report.unavailable),
        ):
            for name in names:
                self.stdout.write(f"{label}: {name}")
        for entry in report.skipped:
            self.stdout.write(f"skipped: {entry}")
        counts = (
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unavailable)} marked unavailable"
        )
        self.stdout.write(f"{counts}, {len(report.skipped)} skipped" if report.skipped else counts)
        # What other apps say of the sources (isos: boot modes a vendor ISO would lose).
        for _, lines in catalog_synced.send(sender=self.__class__):
            for line in lines or ():
                self.stdout.write(f"warning: {line}")
