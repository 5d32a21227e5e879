"""The external tools (and Debian files) a test needs, and what happens without them.

A test that needs a tool skips where it is not installed, so the suite runs on any
machine. CI installs every one of them (``.ci/run``) and sets ``ISOPORTAL_REQUIRE_TOOLS``:
there a missing tool fails the test instead, so it never passes as a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_TOOLS_ENV = "ISOPORTAL_REQUIRE_TOOLS"


def tools_required() -> bool:
    """True when a missing tool must fail the test (``ISOPORTAL_REQUIRE_TOOLS`` is set)."""
    return bool(os.environ.get(REQUIRE_TOOLS_ENV))


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for ``reason``, or fail it when tools are required."""
    if tools_required():
        pytest.fail(f"{reason}, and {REQUIRE_TOOLS_ENV} is set")
    pytest.skip(reason)


def require_tool(tool: str) -> str:
    """The tool's path; without it, the calling test skips (or fails, see ``unavailable``)."""
    path = shutil.which(tool)
    if path is None:
        unavailable(f"{tool} is not installed")
    return path


def require_file(path: Path, package: str) -> Path:
    """A file a Debian package installs; without it, as ``unavailable``."""
    if not path.is_file():
        unavailable(f"{path} is missing (apt-get install {package})")
    return path
