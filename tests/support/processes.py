"""What the processes a test starts are doing, read from /proc, and waiting for it.

A streaming worker or a killed hook finishes a moment after the client sees its last byte:
``poll`` waits for such a condition instead of sleeping a fixed time. ``child_pids`` finds
gunicorn's workers, ``RssSampler`` follows a worker's memory, and ``open_descriptor_targets``
and ``open_write_files`` show what a process holds open.
"""

from __future__ import annotations

import contextlib
import os
import threading
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


def open_write_files(pid: int, allowed: tuple[str, ...]) -> list[str]:
    """Regular files the process holds open for writing, but for the allowed prefixes."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        writable = flags & (os.O_WRONLY | os.O_RDWR)
        if writable and not target.startswith(tuple(allowed)) and Path(target).is_file():
            found.append(target)
    return found


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid`` (gunicorn's workers, for its master), from /proc.

    Read from every thread of the process (a child belongs to the thread that made it); a
    process that is gone has none.
    """
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                found += [
                    int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return sorted(found)


class RssSampler:
    """Samples a process's resident memory every few milliseconds while running."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
