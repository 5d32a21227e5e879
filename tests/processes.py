"""Test helper: what processes the tests start are doing, read from /proc, and waiting for it.

A streaming worker or a killed hook finishes a moment after the client sees its last byte:
``poll`` waits for such a condition instead of sleeping a fixed time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def poll(condition: Callable[[], bool], wait: float = 15.0) -> bool:
    """True as soon as ``condition()`` is; False after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie nobody reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def open_descriptor_targets(pid: int | str = "self") -> list[str]:
    """What a process (this one by default) holds open: the targets of its /proc fd links.

    A file unlinked while open shows as its old path with `` (deleted)``; a process that is
    gone holds nothing.
    """
    targets = []
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return []
    for fd in descriptors:
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return targets
