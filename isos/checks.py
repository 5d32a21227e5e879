"""System checks of the isos app's own settings (``manage.py check``; docs/operations.md).

The portal's settings already refuse a bad environment value at start-up; these checks
hold for any project that installs the app and sets the values itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from isos.engine.boot_plan import VOLUME_ID, VOLUME_ID_RULE
from isos.media_base import MEDIA_BASE_URL, MEDIA_BASE_URL_RULE
from isos.passwords import HASH_SCHEMES


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


# Each setting the app reads: the test its value must pass, and what it must be.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "KICKSTART_FILES_LOCATION": (lambda value: isinstance(value, str | Path) and bool(str(value)), "a path"),
    "ROOT_PASSWORD_HASH": (lambda value: value in HASH_SCHEMES, "one of " + ", ".join(HASH_SCHEMES)),
    "ISO_VOLUME_ID": (
        lambda value: isinstance(value, str) and bool(VOLUME_ID.fullmatch(value)),
        VOLUME_ID_RULE,
    ),
    "ISO_NAMESERVERS": (lambda value: isinstance(value, list | tuple), "a list of addresses"),
    "RESOLV_CONF": (lambda value: isinstance(value, str | Path), "a path"),
    "ISO_LAYOUT_CACHE_ENTRIES": (lambda value: _is_count(value, 0), "a whole number, at least 0"),
    "ISO_LAYOUT_CACHE_MB": (lambda value: _is_count(value, 0), "a whole number of MB, at least 0"),
    "ISO_STREAM_CHUNK_KB": (lambda value: _is_count(value, 4), "a whole number of KB, at least 4"),
    "ISO_HOOK_TIMEOUT": (_is_seconds, "a number of seconds above 0"),
    "ISO_SEND_TIMEOUT": (lambda value: _is_count(value, 1), "a whole number of seconds, at least 1"),
    "ISO_MAX_STREAMS_PER_USER": (lambda value: _is_count(value, 0), "a whole number, at least 0 (no limit)"),
    "ISO_MAX_STREAMS": (lambda value: _is_count(value, 1), "a whole number, at least 1"),
    "ISO_MEDIA_BASE_URL": (
        lambda value: isinstance(value, str) and bool(MEDIA_BASE_URL.fullmatch(value)),
        MEDIA_BASE_URL_RULE,
    ),
    "ISO_MEDIA_TTL": (lambda value: _is_count(value, 60), "a whole number of seconds, at least 60"),
}


@register(Tags.compatibility)
def check_iso_settings(**kwargs: Any) -> list[CheckMessage]:
    """Each setting present and of the kind it takes; the kickstart location readable."""
    problems: list[CheckMessage] = []
    for number, (name, (is_valid, takes)) in enumerate(RULES.items(), start=1):
        if not hasattr(settings, name):
            problems.append(Error(f"{name} is not set", hint=f"It must be {takes}.", id=f"isos.E{number:03}"))
        elif not is_valid(getattr(settings, name)):
            problems.append(
                Error(
                    f"{name} = {getattr(settings, name)!r}",
                    hint=f"It must be {takes}.",
                    id=f"isos.E{number:03}",
                )
            )
    location = getattr(settings, "KICKSTART_FILES_LOCATION", None)
    if isinstance(location, str | Path) and not os.access(location, os.R_OK | os.X_OK):
        # A warning: the location may be mounted after start; requests and /healthz say so too.
        problems.append(
            Warning(
                f"KICKSTART_FILES_LOCATION {str(location)!r} is not a readable directory",
                hint="Mount or create it, with osversions.json inside (docs/sources-and-booting.md).",
                id="isos.W001",
            )
        )
    return problems
