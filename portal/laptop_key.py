"""The secret key of a laptop or demo portal, kept in the data directory.

Production sets ``SECRET_KEY`` (the same on every server). A laptop should not need to,
yet its sessions must survive a restart: ``manage.py demo`` makes this file once; the
settings only read it, so importing them never writes a file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = ".secret_key"


def read_laptop_key(data_dir: Path) -> str:
    """The key kept in ``data_dir``, or "" when there is none."""
    try:
        return (data_dir / FILE_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


def make_laptop_key(data_dir: Path) -> str:
    """The key kept in ``data_dir``, made (mode 0600) when there is none yet."""
    key = read_laptop_key(data_dir)
    if key:
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # O_EXCL: two demos started at once keep the first one's key.
    try:
        descriptor = os.open(data_dir / FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_laptop_key(data_dir)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key
