"""``manage.py check_sources``: per source of osversions.json, the boot modes of the
source and of the ISO the portal makes from it, both read back (docs/operations.md).

Exit 0 when every source's ISO keeps every mode of its source, 1 otherwise.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from isos.source_modes import check_sources
from osversions.catalog import CatalogError


class Command(BaseCommand):
    help = (
        "List, per source of osversions.json, the boot modes (BIOS CD, BIOS disk/USB, UEFI CD, "
        "UEFI disk/USB) of the source and of the portal's ISO made from it, reading both back."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = 0
        try:
            for report in check_sources():
                for line in report.lines():
                    self.stdout.write(line)
                problems += report.problem is not None
        except CatalogError as error:
            raise CommandError(str(error)) from error
        if problems:
            raise CommandError(f"{problems} source(s) cannot keep every boot mode", returncode=1)
