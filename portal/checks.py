"""System checks of the host project's settings (``manage.py check``; docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security)
def check_secret_key(**kwargs: Any) -> list[CheckMessage]:
    # Django's own checks say nothing of an empty key; the first request would fail.
    try:
        settings.SECRET_KEY  # noqa: B018  (raises when empty)
    except ImproperlyConfigured:
        return [
            Error(
                "SECRET_KEY is not set",
                hint=(
                    "Set the SECRET_KEY environment variable (the same on every server), or run "
                    f"`manage.py demo` once, which keeps a laptop's key in {settings.DATA_DIR}."
                ),
                id="portal.E001",
            )
        ]
    return []


@register(Tags.database)
def check_sqlite_folder(**kwargs: Any) -> list[CheckMessage]:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return []
    folder = Path(database["NAME"]).parent
    if folder.is_dir():
        return []
    return [
        Error(
            f"the SQLite database's folder {str(folder)!r} does not exist",
            hint="Create it (PORTAL_DATA_DIR), run `manage.py demo`, or set DATABASE_URL.",
            id="portal.E002",
        )
    ]
