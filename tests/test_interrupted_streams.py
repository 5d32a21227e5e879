"""A download whose server process died is closed as ``interrupted``, with its request-log
line, by whichever process notices first: a worker's first request, the periodic check,
the history page or the admin list, a new stream's start. Only records whose owner is
surely gone (this machine, this boot, this pid namespace) or that stopped progressing
for longer than the limit are closed: other servers' live streams are left alone.

The live tests SIGKILL a gunicorn worker in the middle of a real download.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

import isos.orphans
from isos.models import IsoBuild
from isos.orphans import STALLED_STREAM_LIMIT, close_orphaned_streams
from isos.process_owner import current_owner, machine_token
from tests.support.api import static_request
from tests.support.processes import poll, process_gone
from tests.support.serving import Gunicorn, logged_in_session, serve_portal

REQUEST_LINE = re.compile(
    r"build=(?P<build>\d+) user=op fqdn=\S+ osversion_dir=centos72 outcome=interrupted "
    r"bytes_sent=\d+ iso_size=\d+ duration_ms=\d+ client=127\.0\.0\.1$"
)
DEAD_PID = 4_000_000  # above Linux's pid_max limit (2^22): never a live process


def streaming(**fields: Any) -> IsoBuild:
    """A streaming record (owned by this test process unless ``fields`` say otherwise)."""
    started = fields.pop("started_at", None)
    build = IsoBuild.objects.create(
        username="op",
        fqdn="edge1.cdn.example",
        osversion_dir="centos72",
        outcome=IsoBuild.Outcome.STREAMING,
        iso_size=1000,
        client_address="127.0.0.1",
        **fields,
    )
    if started is not None:
        IsoBuild.objects.filter(pk=build.pk).update(started_at=started)
        build.refresh_from_db()
    return build


def outcome_of(build: IsoBuild) -> str:
    build.refresh_from_db()
    return build.outcome


@pytest.fixture
def sweep_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next request is this process's first, as far as the periodic check knows."""
    monkeypatch.setattr(isos.orphans, "_last_sweep", None)


# --- which records are orphans ---------------------------------------------------------


@pytest.mark.django_db
def test_new_records_name_their_owning_process() -> None:
    build = streaming()
    me = current_owner()
    assert (build.owner_host, build.owner_pid, build.owner_token) == (me.host, os.getpid(), me.token)
    assert build.owner_host == socket.gethostname() and build.owner_token.startswith(machine_token())


@pytest.mark.django_db
def test_a_live_owner_keeps_its_stream(caplog: pytest.LogCaptureFixture) -> None:
    mine = streaming()
    another_server = streaming(owner_host="other-server", owner_pid=DEAD_PID, owner_token="boot pid:[1] 5")
    same_name_other_boot = streaming(owner_pid=DEAD_PID, owner_token="another-boot pid:[1] 5")
    no_proc = streaming(owner_pid=DEAD_PID, owner_token="")
    with caplog.at_level(logging.INFO):
        assert close_orphaned_streams() == []
    for build in (mine, another_server, same_name_other_boot, no_proc):
        assert outcome_of(build) == "streaming"
    assert "outcome=interrupted" not in caplog.text


@pytest.mark.django_db
def test_a_dead_owner_on_this_host_is_interrupted(caplog: pytest.LogCaptureFixture) -> None:
    gone = streaming(owner_pid=DEAD_PID, owner_token=f"{machine_token()} 12345")
    # The pid runs again, but it is another process (started at another time).
    reused = streaming(owner_pid=os.getpid(), owner_token=f"{machine_token()} 1")
    with caplog.at_level(logging.INFO):
        closed = close_orphaned_streams()
    assert {build.pk for build in closed} == {gone.pk, reused.pk}
    for build in (gone, reused):
        build.refresh_from_db()
        assert build.outcome == "interrupted" and build.finished_at is not None
        assert re.match(r"interrupted: its server process \(.+ pid \d+\) is gone; 0 bytes sent", build.detail)
    lines = [r.getMessage() for r in caplog.records if r.name == "isos.requests"]
    assert sorted(int(REQUEST_LINE.match(line)["build"]) for line in lines) == sorted([gone.pk, reused.pk])  # type: ignore[index]
    # Closed once: a second look (another worker's) logs nothing more.
    caplog.clear()
    assert close_orphaned_streams() == []
    assert "outcome=interrupted" not in caplog.text


@pytest.mark.django_db
def test_a_stream_with_no_progress_for_too_long_is_interrupted_wherever_it_ran() -> None:
    long_ago = timezone.now() - STALLED_STREAM_LIMIT - timedelta(minutes=1)
    recently = timezone.now() - timedelta(minutes=5)
    stalled = streaming(owner_host="other-server", owner_token="b pid:[1] 5", started_at=long_ago)
    stalled_after_progress = streaming(owner_host="other-server", started_at=long_ago - timedelta(hours=3))
    IsoBuild.objects.filter(pk=stalled_after_progress.pk).update(progressed_at=long_ago, bytes_sent=4096)
    progressing = streaming(owner_host="other-server", started_at=long_ago - timedelta(hours=3))
    IsoBuild.objects.filter(pk=progressing.pk).update(progressed_at=recently)
    legacy_old = streaming(owner_host="", owner_pid=None, owner_token="", started_at=long_ago)
    legacy_recent = streaming(owner_host="", owner_pid=None, owner_token="", started_at=recently)
    close_orphaned_streams()
    assert [outcome_of(b) for b in (stalled, stalled_after_progress, legacy_old)] == ["interrupted"] * 3
    assert [outcome_of(b) for b in (progressing, legacy_recent)] == ["streaming"] * 2
    assert "no progress since" in stalled.detail
    assert stalled_after_progress.detail.endswith("4096 bytes sent by its last saved progress")
    assert stalled_after_progress.finished_at == long_ago


@pytest.mark.django_db
def test_finished_records_are_never_touched() -> None:
    built = IsoBuild.objects.create(username="op", outcome="built", owner_pid=DEAD_PID, owner_token="x y 1")
    close_orphaned_streams()
    assert outcome_of(built) == "built"


# --- who notices ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_workers_first_request_closes_orphans(kickstart_location: Path, sweep_due: None) -> None:
    gone = streaming(owner_pid=DEAD_PID, owner_token=f"{machine_token()} 12345")
    assert Client().get("/healthz").status_code == 200
    assert outcome_of(gone) == "interrupted"
    # Then at most once a minute: the next request does not look again.
    again = streaming(owner_pid=DEAD_PID, owner_token=f"{machine_token()} 12345")
    Client().get("/healthz")
    assert outcome_of(again) == "streaming"


@pytest.mark.django_db
def test_the_history_page_and_the_admin_list_close_orphans(make_user: Callable[..., User]) -> None:
    user = make_user("boss", "admin")
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    isos.orphans._last_sweep = (os.getpid(), float("inf"))  # the periodic check is not due
    try:
        first = streaming(owner_pid=DEAD_PID, owner_token=f"{machine_token()} 12345")
        page = client.get("/isos/history/")
        assert outcome_of(first) == "interrupted"
        assert '<option value="interrupted"' in page.content.decode()
        second = streaming(owner_pid=DEAD_PID, owner_token=f"{machine_token()} 12345")
        listing = client.get("/admin/isos/isobuild/?outcome__exact=interrupted")
        assert outcome_of(second) == "interrupted"
        assert "?outcome__exact=interrupted" in listing.content.decode()
        assert listing.context["cl"].result_count == 2
    finally:
        isos.orphans._last_sweep = None


# --- for real: gunicorn, a download, SIGKILL -------------------------------------------

BIG_SIZE = 64 << 20  # far more than loopback socket buffers hold: the server blocks mid-stream


@pytest.fixture
def slow_source(operator: User, kickstart_location: Path) -> Path:
    """centos72 with a big sparse file, so a client that stops reading holds the stream open."""
    with (kickstart_location / "centos72" / "images" / "big.img").open("wb") as sparse:
        sparse.truncate(BIG_SIZE)
    return kickstart_location


def kill_the_streaming_worker(server: Gunicorn) -> tuple[IsoBuild, Iterator[Any]]:
    """Start a download, read its first chunk, SIGKILL the worker that streams it."""
    session = logged_in_session(server.url, "op")
    response = session.post(f"{server.url}/api/5.0/isos", json=static_request(), timeout=60, stream=True)
    assert response.status_code == 200, response.text[:300]
    chunks = response.iter_content(64 << 10)
    assert next(chunks)
    build = IsoBuild.objects.get(outcome="streaming")
    assert build.owner_host == socket.gethostname() and build.owner_pid in server.worker_pids()
    os.kill(build.owner_pid, signal.SIGKILL)
    assert poll(lambda: process_gone(build.owner_pid))  # type: ignore[arg-type]
    with pytest.raises(requests.exceptions.RequestException):
        for _chunk in chunks:
            pass
    response.close()
    session.close()
    assert poll(lambda: build.owner_pid not in server.worker_pids())
    return build, chunks


def request_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " isos.requests " in line]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_killed_worker_is_interrupted_at_the_new_workers_first_request(
    slow_source: Path, tmp_path: Path
) -> None:
    log = tmp_path / "gunicorn.log"
    with serve_portal(slow_source, log, workers=1) as server:
        build, _ = kill_the_streaming_worker(server)
        assert poll(lambda: len(server.worker_pids()) == 1)
        assert outcome_of(build) == "streaming"  # nobody has looked yet
        # The new worker's first request, whatever it is (no login needed).
        assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
        assert poll(lambda: outcome_of(build) == "interrupted")
        assert "is gone" in build.detail
        assert poll(lambda: any(REQUEST_LINE.search(line) for line in request_lines(log)))
        line = next(line for line in request_lines(log) if "outcome=interrupted" in line)
        assert f"build={build.pk} " in line


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_killed_worker_is_interrupted_when_the_history_is_read(slow_source: Path, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    with serve_portal(slow_source, log, workers=2) as server:
        build, _ = kill_the_streaming_worker(server)
        assert poll(lambda: len(server.worker_pids()) == 2)
        with logged_in_session(server.url, "op") as session:
            page = session.get(f"{server.url}/isos/history/", timeout=30)
            assert page.status_code == 200
        # Whichever worker answered (the survivor or the new one), the record is closed.
        assert outcome_of(build) == "interrupted"
        assert ">interrupted</span>" in page.text
        assert poll(lambda: len([line for line in request_lines(log) if "outcome=interrupted" in line]) == 1)
        # And a new download on the same servers streams as usual.
        with logged_in_session(server.url, "op") as session:
            response = session.post(f"{server.url}/api/5.0/isos", json=static_request(), timeout=120)
            assert response.status_code == 200
            assert int(response.headers["Content-Length"]) == len(response.content)
        assert poll(lambda: IsoBuild.objects.filter(outcome="built").count() == 1)
