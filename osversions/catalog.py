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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from osversions.models import USE_OSVERSION, OsVersion

logger = logging.getLogger(__name__)

CATALOG_FILE_NAME = "osversions.json"


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


def read_catalog_file(location: Path | None = None) -> dict[str, str]:
    """The name → directory mapping of osversions.json, unsafe entries left out.

    Raises CatalogError when the file is missing, unreadable or not a JSON object of
    strings. An entry whose directory is unsafe is skipped with a warning, so one bad
    line does not take every source down.
    """
    path = (location or kickstart_files_location()) / CATALOG_FILE_NAME
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise CatalogError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise CatalogError(f"{path} must hold a JSON object of name: directory")
    catalog: dict[str, str] = {}
    for name, directory in data.items():
        if not isinstance(directory, str):
            raise CatalogError(f"{path}: the directory of {name!r} is not a string")
        reason = unsafe_directory_reason(directory)
        if reason is not None:
            logger.warning("%s: skipping %r: directory %r %s", path, name, directory, reason)
            continue
        catalog[name] = directory
    return catalog


@dataclass
class SyncReport:
    """What one sync changed, by display name (``manage.py sync_osversions`` prints it)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


def sync_catalog(location: Path | None = None) -> SyncReport:
    """Mirror osversions.json into OsVersion rows (only writing what changed).

    Raises CatalogError when the file cannot be used; rows are left as they were then.
    """
    catalog = read_catalog_file(location)
    rows = {row.name: row for row in OsVersion.objects.all()}
    report = SyncReport()
    with transaction.atomic():
        for name, directory in catalog.items():
            row = rows.get(name)
            if row is None:
                try:
                    with transaction.atomic():
                        OsVersion.objects.create(name=name, directory=directory)
                    report.added.append(name)
                except IntegrityError:
                    # Another worker created it a moment ago; fall through to update it.
                    OsVersion.objects.filter(name=name).update(directory=directory, available=True)
                    report.updated.append(name)
            elif row.directory != directory or not row.available:
                row.directory, row.available = directory, True
                row.save(update_fields=["directory", "available", "last_synced"])
                report.updated.append(name)
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
