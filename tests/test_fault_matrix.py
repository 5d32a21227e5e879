"""A fault matrix, one case per fault, against the real portal under gunicorn.

Each case starts the portal on loopback (``serve_portal()``), logs in an ``operations``
user with ``requests``, injects one fault and checks four things of every fault:

1. what the client sees: a Traffic Ops JSON alert (no traceback, no server path) when the
   fault is there before the first byte, or a connection cut short of Content-Length
   when it strikes after it;
2. the newest ``IsoBuild`` says what happened (outcome, reason, bytes sent);
3. nothing leaks: no gunicorn worker holds a descriptor into the source tree or the
   server's temporary directory, and no worker has a child process left (a hanging hook
   is killed with everything it started);
4. the portal keeps serving: once the fault is repaired, the very next request downloads
   a complete ISO whose ``network.cfg`` is right.

Making a mid-stream fault deterministic: the source holds a big sparse file,
``images/big.img``, which comes right before ``images/install.img`` in the image's disk
order. The client reads the first chunk (the metadata, sent before any source file is
opened) and stops; the server then blocks in the middle of ``big.img`` once the socket
buffers are full (a few MiB, far below the file's size), so ``install.img`` is not opened
yet when the fault strikes. The builder checks a file's size when it opens it (fstat
against the layout) and sees a short read while reading it; the layout cache's per-request
fingerprint only looks at directories, so it is the stream that catches these faults.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import requests
from django.contrib.auth.models import User

from isos.models import IsoBuild
from tests.support.api import EXPECTED_NETWORK_CFG, static_request
from tests.support.isoread import ks_script
from tests.support.processes import child_pids, open_descriptor_targets, poll, process_gone
from tests.support.serving import Gunicorn, logged_in_session, serve_portal
from tests.support.sources import CATALOG, make_source_tree, pseudo_random_bytes

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ISOS = "/api/5.0/isos"
ALERT_500 = {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
SOURCE_DIR = "centos72"
# big.img sorts before install.img in images/, and the builder lays files out in that
# order: the server is still reading big.img when install.img is touched. 64 MiB is well
# above what loopback socket buffers hold (tcp_wmem's 4 MiB plus the receiver's window).
BIG = "images/big.img"
BIG_SIZE = 64 << 20
TARGET = "images/install.img"
TARGET_BYTES = pseudo_random_bytes("install.img", 256 * 1024)  # what make_source_tree writes
HOOK_TIMEOUT = "1.5"

# Linux capabilities (linux/capability.h) and prctl's PR_CAPBSET_DROP (linux/prctl.h).
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
PR_CAPBSET_DROP = 24

# Faults injected and HTTP requests made, counted and printed at the end of the module.
FIGURES: Counter[str] = Counter()


@dataclass
class Scene:
    """Everything a fault may touch: the location, the source, the server and its client."""

    location: Path
    server_temp: Path
    notes: Path
    server: Gunicorn
    session: requests.Session

    @property
    def source(self) -> Path:
        return self.location / SOURCE_DIR


Phase = Literal["before", "mid-stream"]


@dataclass(frozen=True)
class Fault:
    """One row of the matrix."""

    name: str
    phase: Phase  # injected before the request, or after the first chunk arrived
    inject: Callable[[Scene], None]
    repair: Callable[[Scene], None]
    outcome: str  # IsoBuild.Outcome value
    detail: str  # regular expression the audit record's detail must match
    check: Callable[[Scene], None] = lambda scene: None  # anything else this fault must leave right


# --------------------------------------------------------------------------------------
# The source tree, and faults and repairs
# --------------------------------------------------------------------------------------


def make_faultable_source(source: Path) -> None:
    """The fixture's realistic tree plus the big sparse file that holds the stream open."""
    make_source_tree(source)
    with (source / BIG).open("wb") as sparse:
        sparse.truncate(BIG_SIZE)


def nothing(scene: Scene) -> None:
    """No repair needed (the fault left the source as it was)."""


def unlink_target(scene: Scene) -> None:
    (scene.source / TARGET).unlink()


def restore_target(scene: Scene) -> None:
    (scene.source / TARGET).write_bytes(TARGET_BYTES)
    (scene.source / TARGET).chmod(0o644)


def shrink_big(scene: Scene) -> None:
    os.truncate(scene.source / BIG, 1 << 20)


def restore_big(scene: Scene) -> None:
    os.truncate(scene.source / BIG, BIG_SIZE)


def grow_target(scene: Scene) -> None:
    with (scene.source / TARGET).open("ab") as target:
        target.write(b"appended while streaming" * 100)


def swap_target_for_symlink(scene: Scene) -> None:
    """install.img swapped for a same-size symlink to a file outside the location, its
    folder's time put back (so no directory time tells the layout cache)."""
    outside = scene.notes / "outside.img"
    outside.write_bytes(pseudo_random_bytes("outside the location", len(TARGET_BYTES)))
    target = scene.source / TARGET
    before = os.stat(target.parent)
    target.unlink()
    target.symlink_to(outside)
    os.utime(target.parent, ns=(before.st_atime_ns, before.st_mtime_ns))


def restore_target_file(scene: Scene) -> None:
    (scene.source / TARGET).unlink()
    restore_target(scene)


def lock_target(scene: Scene) -> None:
    # Unreadable for the worker for real: the server runs without the DAC capabilities
    # (see start_portal), so mode 000 denies root's worker too.
    (scene.source / TARGET).chmod(0o000)


def break_catalog(scene: Scene) -> None:
    (scene.location / "osversions.json").write_text('{"CentOS 7.2": "centos72", ')


def remove_catalog(scene: Scene) -> None:
    (scene.location / "osversions.json").unlink()


def restore_catalog(scene: Scene) -> None:
    (scene.location / "osversions.json").write_text(json.dumps(CATALOG))


def remove_source(scene: Scene) -> None:
    shutil.rmtree(scene.source)


def restore_source(scene: Scene) -> None:
    make_faultable_source(scene.source)


def disconnect(scene: Scene) -> None:
    """Done by the case itself (it owns the response); here only for the table."""


HANGING_HOOK = """#!/bin/sh
echo $$ > "{notes}/hook.pid"
sleep 1000 &
echo $! > "{notes}/background.pid"
echo "waiting for a mirror that never answers" >&2
sh -c 'echo $$ > "{notes}/foreground.pid"; exec sleep 1000'
"""


def install_hanging_hook(scene: Scene) -> None:
    hook = scene.source / "generate"
    hook.write_text(HANGING_HOOK.replace("{notes}", str(scene.notes)))
    hook.chmod(0o755)


def remove_hook(scene: Scene) -> None:
    (scene.source / "generate").unlink()


def hook_processes_are_gone(scene: Scene) -> None:
    """The hook, its background child and its foreground grandchild were all killed."""
    pids = {
        name: int((scene.notes / f"{name}.pid").read_text()) for name in ("hook", "background", "foreground")
    }
    running = {name: pid for name, pid in pids.items() if not poll(functools.partial(process_gone, pid))}
    assert running == {}, f"hook processes outlived the time limit: {running}"


FAULTS = [
    Fault(
        "file-vanishes-mid-stream",
        "mid-stream",
        unlink_target,
        restore_target,
        "failed",
        r"cannot read images/install\.img while streaming \(No such file or directory\)",
    ),
    Fault(
        "file-shrinks-mid-stream",
        "mid-stream",
        shrink_big,
        restore_big,
        "failed",
        # Read when it shrank (a short read), or not opened yet (fstat against the layout).
        r"images/big\.img shrank (while streaming|after layout)",
    ),
    Fault(
        "file-grows-mid-stream",
        "mid-stream",
        grow_target,
        restore_target,
        "failed",
        r"images/install\.img grew after layout",
    ),
    Fault(
        "file-swapped-for-a-symlink-mid-stream",
        "mid-stream",
        swap_target_for_symlink,
        restore_target_file,
        "failed",
        r"images/install\.img is not the file laid out \(a symlink in its place or on its way\)",
    ),
    Fault(
        "unreadable-file",
        "before",
        lock_target,
        restore_target,
        "failed",
        r"cannot read file images/install\.img \(permission denied\)",
    ),
    Fault(
        "file-becomes-unreadable-mid-stream",
        "mid-stream",
        lock_target,
        restore_target,
        "failed",
        r"cannot read images/install\.img while streaming \(Permission denied\)",
    ),
    Fault(
        "osversions-json-malformed",
        "before",
        break_catalog,
        restore_catalog,
        "failed",
        r"^osversions: .*osversions\.json is not valid JSON",
    ),
    Fault(
        "osversions-json-missing",
        "before",
        remove_catalog,
        restore_catalog,
        "failed",
        r"^osversions: cannot read .*osversions\.json: No such file or directory",
    ),
    Fault(
        "source-directory-removed",
        "before",
        remove_source,
        restore_source,
        "failed",
        r"source directory or \.iso file .*centos72 does not exist",
    ),
    Fault(
        "source-directory-removed-mid-stream",
        "mid-stream",
        remove_source,
        restore_source,
        "failed",
        # big.img, already open, keeps its data; the next file cannot be opened.
        r"cannot read images/install\.img while streaming \(No such file or directory\)",
    ),
    Fault(
        "client-disconnects-halfway",
        "mid-stream",
        disconnect,
        nothing,
        "client_went_away",
        r"^closed after \d+ bytes$",
    ),
    Fault(
        "generate-hook-hangs",
        "before",
        install_hanging_hook,
        remove_hook,
        "failed",
        r"timed out after 1\.5 s \(killed with its process group\).*never answers",
        check=hook_processes_are_gone,
    ),
]


# --------------------------------------------------------------------------------------
# The server and what it holds
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def start_portal(location: Path, log: Path, env: dict[str, str]) -> Iterator[Gunicorn]:
    """``serve_portal()``, its processes without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.

    The tests run as root, and root reads a file of mode 000: chmod alone makes nothing
    unreadable. A FIFO or a dangling symlink is no answer either (the builder skips the
    one and keeps the other as a symlink, by design). What the builder checks is real
    access with the worker's own rights (``os.access(..., effective_ids=True)``, then
    ``open()``), so the honest fault is a worker that lacks the rights: gunicorn is
    started from a thread whose capability bounding set drops the two DAC capabilities
    (per thread, so this test process keeps them). Root without them is a service account
    like any other: mode 000 denies it, the files it owns (the source tree, /root's
    Python) stay readable. Every case runs such a server, so all of them see the same one.
    """
    manager = serve_portal(location, log, env=env)
    entered: dict[str, Any] = {}

    def enter() -> None:
        try:
            if os.geteuid() == 0:
                libc = ctypes.CDLL(None, use_errno=True)
                for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                    if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                        raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {capability})")
            entered["server"] = manager.__enter__()
        except BaseException as error:
            entered["error"] = error

    thread = threading.Thread(target=enter, name="portal-without-dac")
    thread.start()
    thread.join()
    if "error" in entered:
        raise entered["error"]
    try:
        yield entered["server"]
    finally:
        manager.__exit__(None, None, None)


def descriptors_into(pid: int, roots: list[Path]) -> list[str]:
    """What process ``pid`` holds open under any of ``roots`` (deleted files included)."""
    return [
        f"{pid} -> {target}"
        for target in open_descriptor_targets(pid)
        if any(target == str(root) or target.startswith(f"{root}/") for root in roots)
    ]


def held_by_workers(scene: Scene, path: Path) -> list[str]:
    return [
        target for pid in scene.server.worker_pids() for target in descriptors_into(pid, [path.resolve()])
    ]


def newest_finished_build(after: int) -> IsoBuild:
    """The newest audit record past id ``after``, once its stream is closed."""

    def finished() -> bool:
        build = IsoBuild.objects.filter(pk__gt=after).order_by("-started_at", "-id").first()
        return build is not None and build.outcome != IsoBuild.Outcome.STREAMING

    assert poll(finished), "no finished audit record for the request"
    build = IsoBuild.objects.filter(pk__gt=after).order_by("-started_at", "-id").first()
    assert build is not None
    return build


def last_build_id() -> int:
    last = IsoBuild.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


def assert_no_leaks(scene: Scene) -> None:
    """No worker holds the source tree or a temporary file open; no worker has children."""
    roots = [scene.location.resolve(), scene.server_temp.resolve()]
    workers = scene.server.worker_pids()
    assert workers, "no gunicorn worker found"

    def clean() -> bool:
        return not any(descriptors_into(pid, roots) or child_pids(pid) for pid in workers)

    # The audit record is closed before the WSGI server closes the stream: give it a moment.
    if not poll(clean):
        held = [target for pid in workers for target in descriptors_into(pid, roots)]
        children = {pid: child_pids(pid) for pid in workers if child_pids(pid)}
        pytest.fail(f"after the fault: descriptors held {held}, worker children {children}")
    assert list(scene.server_temp.iterdir()) == [], "temporary files left behind"


def assert_alert(response: requests.Response, scene: Scene) -> None:
    """A Traffic Ops alert before the first byte: no traceback, no path of the server."""
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == ALERT_500
    text = response.text
    for leak in ("Traceback", str(scene.location), str(scene.location.resolve()), "/tmp/", "/root/"):
        assert leak not in text


def read_until_cut(response: requests.Response, chunks: Iterator[bytes], received: int) -> int:
    """Read on after the fault; the connection must end short of Content-Length."""
    expected = int(response.headers["Content-Length"])
    broken = False
    try:
        for chunk in chunks:
            received += len(chunk)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        broken = True  # urllib3's IncompleteRead/ProtocolError: the server cut the connection
    # Both: the client is told (urllib3 enforces Content-Length), and nothing looks complete.
    assert broken, "the connection ended without an error"
    assert received < expected, "a stream with a fault must never look complete"
    return received


def assert_serves_a_full_iso(scene: Scene) -> None:
    """The very next request after the repair: a complete ISO, network.cfg right."""
    before = last_build_id()
    FIGURES["requests"] += 1
    response = scene.session.post(f"{scene.server.url}{ISOS}", json=static_request(), timeout=60)
    assert response.status_code == 200, response.text[:300]
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert ks_script(response.content) == EXPECTED_NETWORK_CFG
    build = newest_finished_build(before)
    assert build.outcome == "built" and build.bytes_sent == build.iso_size == len(response.content)


# --------------------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    FIGURES.clear()
    yield
    print(f"\nfault matrix: {FIGURES['faults']} faults injected, {FIGURES['requests']} HTTP requests")


@pytest.fixture
def scene(operator: User, kickstart_location: Path, tmp_path: Path) -> Iterator[Scene]:
    make_faultable_source(kickstart_location / SOURCE_DIR)
    server_temp, notes = tmp_path / "server-tmp", tmp_path / "notes"
    server_temp.mkdir()
    notes.mkdir()
    env = {
        "ISO_HOOK_TIMEOUT": HOOK_TIMEOUT,
        # The portal's own temporary files (the hook's private views) go here, to be checked.
        "TMPDIR": str(server_temp),
        # gunicorn's heartbeat files (open and unlinked) stay out of that directory.
        "GUNICORN_CMD_ARGS": "--worker-tmp-dir /dev/shm",
    }
    with start_portal(kickstart_location, tmp_path / "gunicorn.log", env) as server:
        FIGURES["requests"] += 1  # the login
        session = logged_in_session(server.url, operator.username)
        with session:
            yield Scene(kickstart_location, server_temp, notes, server, session)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_fault_gives_a_clear_outcome_an_audit_record_no_leak_and_the_next_request_is_served(
    scene: Scene, fault: Fault
) -> None:
    before = last_build_id()
    if fault.phase == "before":
        fault.inject(scene)
        FIGURES["faults"] += 1
    FIGURES["requests"] += 1
    response = scene.session.post(f"{scene.server.url}{ISOS}", json=static_request(), timeout=60, stream=True)
    received = 0
    if fault.phase == "before":
        assert_alert(response, scene)
    else:
        assert response.status_code == 200, response.text[:300]
        expected = int(response.headers["Content-Length"])
        chunks = response.iter_content(64 << 10)
        received = len(next(chunks))
        # The premise of every mid-stream case, and proof that the leak check sees what a
        # worker holds: the server is now blocked reading big.img, install.img not opened.
        assert poll(lambda: held_by_workers(scene, scene.source / BIG) != []), "big.img is not being read"
        assert held_by_workers(scene, scene.source / TARGET) == []
        FIGURES["faults"] += 1
        if fault.name == "client-disconnects-halfway":
            response.close()  # closes the socket, unread data and all
        else:
            fault.inject(scene)
            received = read_until_cut(response, chunks, received)
        assert 0 < received < expected
    response.close()

    build = newest_finished_build(before)
    assert build.outcome == fault.outcome, build.detail
    assert re.search(fault.detail, build.detail, re.DOTALL), build.detail
    assert build.username == "op"
    if fault.phase == "before":
        assert build.bytes_sent == 0
    else:
        assert build.iso_size == expected
        # Counted as handed to the server: at least what arrived, and never all of it.
        assert received <= build.bytes_sent < build.iso_size
    fault.check(scene)
    assert_no_leaks(scene)

    fault.repair(scene)
    assert_serves_a_full_iso(scene)
