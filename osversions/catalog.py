"""The catalog of ISO sources: reading ``osversions.json``, syncing rows, resolving sources.

``osversions.json`` lives in the kickstart files location and maps a display name to a
directory under it (``{"CentOS 7.2": "centos72"}``), or to a vendor ``.iso`` file under
it (``{"Rocky 9": "rocky9/Rocky-9.4-x86_64-minimal.iso"}``). It is read on every request that
needs it (it is small, and operators edit it by hand), mirrored into ``OsVersion`` rows,
and filtered by what the user may use: the global permission ``use_osversion`` (admin
and operations have it) or a guardian grant on the row itself.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from osversions.models import USE_OSVERSION, OsVersion

logger = logging.getLogger(__name__)

CATALOG_FILE_NAME = "osversions.json"
# The columns an entry must fit (OsVersion.name and .directory), in characters.
NAME_MAX_LENGTH = OsVersion._meta.get_field("name").max_length or 255
DIRECTORY_MAX_LENGTH = OsVersion._meta.get_field("directory").max_length or 1024
# A catalog is a few lines: a bigger file is a mistake, never read into memory whole.
CATALOG_MAX_BYTES = 1 << 20
# Control characters (NUL included) and unpaired surrogates: no column may hold a NUL or
# a surrogate, and no name or directory needs a control character.
UNUSABLE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# How much of a bad name or directory the log quotes.
QUOTED_LENGTH = 80


class CatalogError(Exception):
    """osversions.json is missing or malformed; the message says why (for the log)."""


def kickstart_files_location() -> Path:
    """Where osversions.json and the source directories live (a setting)."""
    return Path(settings.KICKSTART_FILES_LOCATION)


def unsafe_directory_reason(directory: str) -> str | None:
    """Why a directory value may not be used, or None when it is a plain relative path."""
    if not directory or directory.strip() != directory:
        return "empty or padded with spaces"
    if "\x00" in directory or "\\" in directory:
        return "holds a NUL or backslash"
    path = PurePosixPath(directory)
    if path.is_absolute():
        return "is an absolute path"
    if any(part in {"..", "."} for part in directory.split("/")):
        return "holds a '.' or '..' component"
    if any(part == "" for part in directory.split("/")):
        return "holds an empty component"
    return None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members in file order, duplicates kept (json's object_pairs_hook)."""


def quoted(value: object) -> str:
    """``value`` for a log line: its repr (escapes, never a raw surrogate), shortened."""
    text = repr(value)
    return text if len(text) <= QUOTED_LENGTH else text[: QUOTED_LENGTH - 3] + "..."


def unusable_text_reason(text: str, max_length: int) -> str | None:
    """Why a name or directory cannot be stored or used, or None."""
    if not text.strip():
        return "is empty"
    if len(text) > max_length:
        return f"is longer than {max_length} characters"
    match = UNUSABLE_CHARACTERS.search(text)
    if match is not None:
        character = match.group()
        if character == "\x00":
            return "holds a NUL character"
        if "\ud800" <= character <= "\udfff":
            return "holds an unpaired UTF-16 surrogate"
        return "holds a control character"
    return None


def entry_problem(name: str, directory: object) -> str | None:
    """Why one ``name: directory`` entry of osversions.json is skipped, or None."""
    reason = unusable_text_reason(name, NAME_MAX_LENGTH)
    if reason is not None:
        return f"the name {reason}"
    if not isinstance(directory, str):
        return f"the directory is a JSON {type(directory).__name__}, not a string"
    reason = unusable_text_reason(directory, DIRECTORY_MAX_LENGTH) or unsafe_directory_reason(directory)
    if reason is not None:
        return f"the directory {quoted(directory)} {reason}"
    return None


@dataclass
class CatalogFile:
    """osversions.json as read: the usable entries, and why each other entry was skipped."""

    entries: dict[str, str]
    skipped: list[str] = field(default_factory=list)


def load_catalog_file(location: Path | None = None) -> CatalogFile:
    """The usable name → directory entries of osversions.json, and the skipped ones.

    Raises CatalogError when the file is missing, unreadable, too big, not JSON, nested too
    deeply or not a JSON object. One bad entry (a name or directory that is not a string,
    empty, too long for its column, holding a NUL, a control character or an unpaired
    surrogate, or an unsafe directory) is skipped with a warning, so it does not take
    every source down; a name given twice keeps its last directory, as JSON readers do.
    """
    path = (location or kickstart_files_location()) / CATALOG_FILE_NAME
    try:
        with path.open("rb") as file:
            raw = file.read(CATALOG_MAX_BYTES + 1)
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror or error}") from error
    if len(raw) > CATALOG_MAX_BYTES:
        raise CatalogError(f"{path} is larger than {CATALOG_MAX_BYTES} bytes")
    try:
        data = json.loads(raw, object_pairs_hook=_Pairs)
    except RecursionError as error:
        raise CatalogError(f"{path} is not valid JSON: arrays or objects nested too deeply") from error
    except (UnicodeDecodeError, ValueError) as error:
        raise CatalogError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, _Pairs):
        raise CatalogError(f"{path} must hold a JSON object of name: directory")
    catalog = CatalogFile(entries={})

    def skip(name: str, problem: str) -> None:
        logger.warning("%s: skipping the entry %s: %s", path, quoted(name), problem)
        catalog.skipped.append(f"{quoted(name)}: {problem}")

    for name, directory in data:
        problem = entry_problem(name, directory)
        if problem is not None:
            skip(name, problem)
            continue
        if name in catalog.entries:
            skip(name, f"the name is given more than once: {quoted(catalog.entries[name])} is replaced")
        catalog.entries[name] = directory
    return catalog


def read_catalog_file(location: Path | None = None) -> dict[str, str]:
    """The usable name → directory entries of osversions.json (:func:`load_catalog_file`)."""
    return load_catalog_file(location).entries


@dataclass
class SyncReport:
    """What one sync changed, by display name (``manage.py sync_osversions`` prints it)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    # Entries of the file left out, each "name: why" (names quoted, safe to print).
    skipped: list[str] = field(default_factory=list)


def sync_catalog(location: Path | None = None) -> SyncReport:
    """Mirror osversions.json into OsVersion rows (only writing what changed).

    Raises CatalogError when the file cannot be used; rows are left as they were then. A
    bad entry is skipped (:func:`load_catalog_file`), and so is one the database refuses
    all the same, each in its own savepoint, so the others are synced.
    """
    catalog_file = load_catalog_file(location)
    catalog = dict(catalog_file.entries)
    rows = {row.name: row for row in OsVersion.objects.all()}
    report = SyncReport(skipped=list(catalog_file.skipped))
    with transaction.atomic():
        for name, directory in catalog_file.entries.items():
            row = rows.get(name)
            try:
                if row is None:
                    try:
                        with transaction.atomic():
                            OsVersion.objects.create(name=name, directory=directory)
                        report.added.append(name)
                    except IntegrityError:
                        # Another worker created it a moment ago; fall through to update it.
                        with transaction.atomic():
                            OsVersion.objects.filter(name=name).update(directory=directory, available=True)
                        report.updated.append(name)
                elif row.directory != directory or not row.available:
                    with transaction.atomic():
                        row.directory, row.available = directory, True
                        row.save(update_fields=["directory", "available", "last_synced"])
                    report.updated.append(name)
            except (DatabaseError, ValueError) as error:
                # What the checks above did not foresee (psycopg raises ValueError for a NUL).
                logger.warning("skipping the entry %s: the database refused it: %s", quoted(name), error)
                report.skipped.append(f"{quoted(name)}: the database refused it")
                del catalog[name]
        vanished = [name for name, row in rows.items() if row.available and name not in catalog]
        if vanished:
            OsVersion.objects.filter(name__in=vanished).update(available=False)
            report.unavailable = sorted(vanished)
    return report


def usable_versions(user: AbstractBaseUser | AnonymousUser) -> QuerySet[OsVersion]:
    """Available OS versions this user may generate from: global or per-row grant."""
    available = OsVersion.objects.filter(available=True)
    return get_objects_for_user(user, USE_OSVERSION, klass=available, accept_global_perms=True)


def usable_catalog(user: AbstractBaseUser | AnonymousUser) -> dict[str, str]:
    """Sync from osversions.json, then the name → directory mapping this user may use."""
    sync_catalog()
    return dict(usable_versions(user).values_list("name", "directory"))


def resolve_source(directory: str, location: Path | None = None) -> Path:
    """The real path of a source (a directory, or a vendor ``.iso`` file), refused if it
    leaves the location.

    Symlinks inside the location are allowed only when they stay inside it.
    """
    reason = unsafe_directory_reason(directory)
    if reason is not None:
        raise CatalogError(f"directory {directory!r} {reason}")
    root = (location or kickstart_files_location()).resolve()
    candidate = (root / directory).resolve()
    if not candidate.is_relative_to(root):
        raise CatalogError(f"directory {directory!r} resolves outside {root}")
    if candidate.is_dir():
        return candidate
    # A vendor ISO: a regular file (after resolving) whose name ends in .iso.
    if candidate.suffix.lower() == ".iso" and candidate.is_file():
        return candidate
    raise CatalogError(f"source directory or .iso file {candidate} does not exist")
