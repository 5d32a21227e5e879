"""``manage.py serve`` (``iso-portal serve``): the portal's production server, gunicorn with
the portal's settings (portal/gunicorn_conf.py: gevent workers; docs/operations.md,
"Running in production"). Other gunicorn options come from ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

SETTINGS = "python:portal.gunicorn_conf"


def gunicorn_command(bind: str | None, workers: int | None) -> list[str]:
    """gunicorn's command line for the portal, with the portal's settings."""
    command = [sys.executable, "-m", "gunicorn", "-c", SETTINGS, "portal.wsgi"]
    if bind:
        command += ["--bind", bind]
    if workers:
        command += ["--workers", str(workers)]
    return command


class Command(BaseCommand):
    help = "Serve the portal with gunicorn and the portal's production settings (gevent workers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind", help="Address to listen on (default: ISO_PORTAL_BIND, else 127.0.0.1:8001)."
        )
        parser.add_argument("--workers", type=int, help="Worker processes (default 2: one per core).")

    def handle(self, *args: Any, **options: Any) -> None:
        # gunicorn replaces this process: its signals (HUP to reload, TERM to stop) are the server's.
        command = gunicorn_command(options["bind"], options["workers"])
        os.execv(command[0], command)  # noqa: S606 (no shell: gunicorn itself)
