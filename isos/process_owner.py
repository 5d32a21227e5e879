"""Which server process owns a streaming audit record, and whether that process still lives.

Several workers on several servers share one database, so "the process died" can only be
judged on the owner's own machine: a record names its owner by host name, pid and a
token of the boot, the pid namespace and the process's start time (Linux's
``/proc``). Another process on the same host, same boot and same pid namespace can tell
for sure whether that owner is gone, a pid reused since included; anywhere else, only the
record's age can (docs/operations.md, "Audit").
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessOwner:
    host: str
    pid: int
    # "<boot id> <pid namespace> <start time in clock ticks>", "" where /proc cannot say.
    token: str

    @property
    def machine(self) -> str:
        """The token without the start time: same machine, same boot, same pid namespace."""
        return self.token.rsplit(" ", 1)[0] if self.token else ""


def process_start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (when the process started), or None when it is gone
    (a zombie nobody reaped yet is gone too)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in {"Z", "X", "x"}:
        return None
    return fields[19]


def machine_token() -> str:
    """This boot of this machine and this pid namespace, or "" without /proc."""
    try:
        boot_id = (PROC / "sys/kernel/random/boot_id").read_text().strip()
        pid_namespace = os.readlink(PROC / "self/ns/pid")
    except OSError:
        return ""
    return f"{boot_id} {pid_namespace}"


_current: ProcessOwner | None = None


def current_owner() -> ProcessOwner:
    """This process (computed again after a fork: gunicorn forks its workers)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        machine, started = machine_token(), process_start_ticks(pid)
        token = f"{machine} {started}" if machine and started else ""
        _current = ProcessOwner(host=socket.gethostname()[:255], pid=pid, token=token)
    return _current


def owner_host() -> str:
    """The model's default for ``IsoBuild.owner_host``."""
    return current_owner().host


def owner_pid() -> int:
    """The model's default for ``IsoBuild.owner_pid``."""
    return current_owner().pid


def owner_token() -> str:
    """The model's default for ``IsoBuild.owner_token``."""
    return current_owner().token


def owner_is_gone(owner: ProcessOwner) -> bool | None:
    """True when ``owner`` surely no longer runs, False when it surely does, None when this
    process cannot tell (another machine, boot or pid namespace, or no /proc)."""
    here = current_owner()
    if not owner.token or not here.token or owner.host != here.host or owner.machine != here.machine:
        return None
    started = process_start_ticks(owner.pid)
    return started is None or f"{owner.machine} {started}" != owner.token
