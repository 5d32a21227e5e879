"""The boot modes of each source of osversions.json and of the portal's ISO of it
(``manage.py check_sources``, and what ``manage.py sync_osversions`` reports).

A vendor ISO whose modes the portal's ISO cannot all keep is refused at generation
("vendor ISO layout not supported: ..."); these say so before anyone asks for an ISO.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isos.engine import SourceError, describe_boot, is_vendor_iso
from isos.engine.check import check_source
from isos.engine.hook import find_generate_hook
from isos.kickstart import KS_SCRIPTS_DIR
from osversions.catalog import CatalogError, kickstart_files_location, read_catalog_file, resolve_source

# The per-host files every ISO gets (isos.kickstart.render_ks_scripts), as placeholders.
EXTRA_NAMES = tuple(
    f"{KS_SCRIPTS_DIR}/{name}"
    for name in ("disk.cfg", "mgmt_network.cfg", "network.cfg", "password.cfg", "state.out")
)


@dataclass(frozen=True)
class SourceReport:
    name: str
    directory: str
    kind: str  # "vendor ISO", "directory", "generate hook"
    source_modes: tuple[str, ...] | None  # None: a directory (or hook) source
    iso_modes: tuple[str, ...] | None  # None: not built (hook, or refused)
    problem: str | None  # why the portal refuses it, or which modes it would lose

    def lines(self) -> list[str]:
        def modes(found: tuple[str, ...] | None) -> str:
            return "n/a" if found is None else ", ".join(found) or "none"

        text = [f"{self.name} ({self.directory}, {self.kind})"]
        text.append(f"  source: {modes(self.source_modes)}")
        text.append(f"  portal's ISO: {modes(self.iso_modes)}")
        if self.problem:
            text.append(f"  problem: {self.problem}")
        return text


def check_sources(location: Path | None = None) -> Iterator[SourceReport]:
    """Each source's report, building (and reading back) the portal's ISO of it.

    Raises CatalogError when osversions.json cannot be used.
    """
    root = location or kickstart_files_location()
    for name, directory in read_catalog_file(root).items():
        try:
            source = resolve_source(directory, root)
        except CatalogError as exc:
            yield SourceReport(name, directory, "missing", None, None, str(exc))
            continue
        if source.is_dir() and find_generate_hook(source, root) is not None:
            yield SourceReport(name, directory, "generate hook", None, None, None)
            continue
        kind = "vendor ISO" if is_vendor_iso(source) else "directory"
        try:
            found = check_source(source, EXTRA_NAMES)
        except SourceError as exc:
            yield SourceReport(name, directory, kind, None, None, str(exc))
            continue
        problem = f"the portal's ISO would not boot {', '.join(found.lost)}" if found.lost else None
        yield SourceReport(name, directory, kind, found.source, found.iso, problem)


def vendor_iso_problems(location: Path | None = None, **kwargs: Any) -> list[str]:
    """Vendor ISO sources whose boot modes cannot all be kept, one line each; cheap (each
    vendor ISO's catalog and system area, no build). For ``sync_osversions``."""
    root = location or kickstart_files_location()
    lines = []
    for name, directory in read_catalog_file(root).items():
        try:
            source = resolve_source(directory, root)
        except CatalogError:
            continue  # sync itself says nothing of missing sources; check_sources does
        if not is_vendor_iso(source):
            continue
        try:
            describe_boot(source)
        except SourceError as exc:
            lines.append(f"cannot keep every boot mode of {name} ({directory}): {exc}")
    return lines
