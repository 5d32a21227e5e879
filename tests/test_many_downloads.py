"""Many long, slow downloads at once under the production server model (gevent workers).

- 300 slow downloads (a child process of asyncio clients) while short requests run: every
  ``/healthz`` and login is answered, none queued behind the streams; the clients that hang
  up are audited ``client_went_away`` and leave no descriptor; those that read to the end
  get every byte right; the next download is served.
- The caps: ``ISO_MAX_STREAMS_PER_USER`` answers 429 and ``ISO_MAX_STREAMS`` 503, each a
  Traffic Ops alert with ``Retry-After``, audited as refusals, on the API and the page.
- A worker never takes more downloads than its file descriptors hold: 503, not a hang.

Latency bounds here are generous (a request stuck behind the streams would wait for
minutes); isobench's slow-clients workload measures the real figures.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.db.models import QuerySet

from isos.models import IsoBuild
from isos.stream_limits import DESCRIPTORS_PER_STREAM, RESERVED_DESCRIPTORS, RETRY_AFTER_SECONDS
from tests.support.api import PASSWORD, FormClient, post_json, static_request
from tests.support.processes import open_descriptor_targets, poll
from tests.support.serving import Gunicorn, logged_in_session, serve_portal
from tests.support.slow_clients import SlowClients, SlowJob
from tests.support.workloads import source_checksums

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SLOW_STREAMS = 300
SLOW_SECONDS = 20
SLOW_RATE = 100_000  # bytes a second per client
TO_END = 10
BIG_SIZE = 24 << 20
USER_CAP_TEXT = "too many ISO downloads at once: at most 2 per user; try again when one of yours has finished"


def add_big_file(kickstart_location: Path) -> Path:
    """The test source with 24 MiB of data more, so that an ISO outlasts a socket's buffers."""
    source = kickstart_location / "centos72"
    chunk = bytes(range(256)) * 4096
    with (source / "images" / "big.img").open("wb") as big:
        for _ in range(BIG_SIZE // len(chunk)):
            big.write(chunk)
    return source


def new_builds(before: int) -> QuerySet[IsoBuild]:
    return IsoBuild.objects.filter(pk__gt=before)


def last_build_id() -> int:
    return IsoBuild.objects.order_by("-id").values_list("id", flat=True).first() or 0


@contextmanager
def held_downloads(server: Gunicorn, cookie: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` downloads started and left unread (each holds its slot), closed at the end."""
    body = json.dumps(static_request()).encode()
    request = (
        f"POST /api/5.0/isos HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: mojolicious={cookie}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    clients = []
    try:
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", server.port))
            # A small window: the server cannot hand much over before the stream waits.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            client.sendall(request)
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            client.close()


def source_descriptors(pids: list[int], source: Path) -> list[str]:
    return [
        target for pid in pids for target in open_descriptor_targets(pid) if target.startswith(str(source))
    ]


def test_slow_downloads_leave_short_requests_fast_and_clean_up(
    operator: User, kickstart_location: Path, tmp_path: Path
) -> None:
    source = add_big_file(kickstart_location)
    env = {"ISO_MAX_STREAMS_PER_USER": "0"}
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log", env=env) as server:
        session = logged_in_session(server.url, operator.username)
        cookie = f"mojolicious={session.cookies['mojolicious']}"
        before = last_build_id()
        job = SlowJob(
            port=server.port,
            cookie=cookie,
            body=static_request(hostName="slow"),
            clients=SLOW_STREAMS,
            rate=SLOW_RATE,
            seconds=SLOW_SECONDS,
            to_end=TO_END,
            expected=source_checksums(source),
        )
        clients = SlowClients(job)
        builds = new_builds(before)
        assert poll(lambda: builds.count() >= SLOW_STREAMS, wait=60), builds.count()
        # While all stream: short requests, each answered, none waiting for a stream.
        health, logins = [], []
        deadline = time.monotonic() + SLOW_SECONDS / 2
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
            health.append(time.monotonic() - started)
            if len(health) % 10 == 1:
                started = time.monotonic()
                login = requests.post(
                    f"{server.url}/api/5.0/user/login",
                    json={"u": operator.username, "p": PASSWORD},
                    timeout=30,
                )
                assert login.status_code == 200, login.text
                logins.append(time.monotonic() - started)
            time.sleep(0.1)
        streaming = builds.filter(outcome=IsoBuild.Outcome.STREAMING).count()
        results = clients.results(timeout=SLOW_SECONDS + 120)

        print(
            f"\n{SLOW_STREAMS} slow downloads ({streaming} streaming at once): /healthz median "
            f"{statistics.median(health) * 1000:.0f} ms, max {max(health) * 1000:.0f} ms over {len(health)}; "
            f"login median {statistics.median(logins) * 1000:.0f} ms, max {max(logins) * 1000:.0f} ms"
        )
        assert streaming == SLOW_STREAMS
        assert max(health) < 2.0 and max(logins) < 5.0, (health, logins)
        assert [r.status for r in results] == [200] * SLOW_STREAMS
        assert all(r.received > SLOW_RATE for r in results), "a slow client got next to nothing"
        whole = [r for r in results if r.read_to_end]
        assert len(whole) == TO_END and not [r.problems for r in whole if r.problems]

        # The clients that hung up: audited, their files closed.
        assert poll(lambda: not builds.filter(outcome=IsoBuild.Outcome.STREAMING).exists(), wait=30)
        outcomes = sorted(builds.values_list("outcome", flat=True))
        assert outcomes.count(IsoBuild.Outcome.BUILT) == TO_END
        assert outcomes.count(IsoBuild.Outcome.CLIENT_WENT_AWAY) == SLOW_STREAMS - TO_END
        assert source_descriptors(server.worker_pids(), kickstart_location) == []
        # And the next download is served whole.
        again = session.post(f"{server.url}/api/5.0/isos", json=static_request(), timeout=60)
        assert again.status_code == 200 and len(again.content) == int(again.headers["Content-Length"])


def test_the_caps_answer_429_and_503_alerts_with_retry_after(
    operator: User, make_user: Callable[..., User], kickstart_location: Path, tmp_path: Path
) -> None:
    add_big_file(kickstart_location)
    second = make_user("second", "operations")
    env = {"ISO_MAX_STREAMS_PER_USER": "2", "ISO_MAX_STREAMS": "3"}
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log", workers=1, env=env) as server:
        first_session = logged_in_session(server.url, operator.username)
        second_session = logged_in_session(server.url, second.username)
        url = f"{server.url}/api/5.0/isos"
        before = last_build_id()
        with held_downloads(server, first_session.cookies["mojolicious"], 2):
            assert poll(lambda: new_builds(before).count() == 2)
            # A third of the user's own: 429.
            refused = first_session.post(url, json=static_request(), timeout=30)
            assert refused.status_code == 429
            assert refused.json() == {"alerts": [{"text": USER_CAP_TEXT, "level": "error"}]}
            assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            with held_downloads(server, second_session.cookies["mojolicious"], 1):
                assert poll(
                    lambda: new_builds(before).filter(outcome=IsoBuild.Outcome.STREAMING).count() == 3
                )
                # The worker's three are taken: 503 for anyone.
                busy = second_session.post(url, json=static_request(), timeout=30)
                assert busy.status_code == 503
                [alert] = busy.json()["alerts"]
                assert alert == {
                    "text": "the server is sending as many ISOs as it can (3 at once); try again shortly",
                    "level": "error",
                }
                assert busy.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
                assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        # Hung up: the slots are free again, and the user may download.
        assert poll(lambda: not new_builds(before).filter(outcome=IsoBuild.Outcome.STREAMING).exists())
        again = first_session.post(url, json=static_request(), timeout=60)
        assert again.status_code == 200 and len(again.content) == int(again.headers["Content-Length"])
    refusals = new_builds(before).filter(outcome=IsoBuild.Outcome.REFUSED)
    assert sorted(refusals.values_list("username", "detail")) == [
        ("op", USER_CAP_TEXT),
        ("second", "the server is sending as many ISOs as it can (3 at once); try again shortly"),
    ]


def test_the_page_answers_the_user_cap_too(operator: User, kickstart_location: Path, settings: Any) -> None:
    """Streams of this user on other servers count: their records say they stream."""
    settings.ISO_MAX_STREAMS_PER_USER = 1
    IsoBuild.objects.create(user=operator, username="op", outcome=IsoBuild.Outcome.STREAMING)
    client = FormClient()
    client.force_login(operator)
    form = {key: str(value) for key, value in static_request().items() if key != "dhcp"}
    response = client.post("/isos/generate/", {**form, "confirmRootPass": form["rootPass"]})
    assert response.status_code == 429
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "Too many ISO downloads at once: at most 1 per user" in response.content.decode()
    api = post_json(client, "/api/5.0/isos", static_request())
    assert api.status_code == 429
    assert IsoBuild.objects.filter(outcome=IsoBuild.Outcome.REFUSED).count() == 2


def test_a_worker_takes_no_more_downloads_than_its_descriptors_hold(
    operator: User, kickstart_location: Path, tmp_path: Path
) -> None:
    add_big_file(kickstart_location)
    open_files = 300
    bound = (open_files - RESERVED_DESCRIPTORS) // DESCRIPTORS_PER_STREAM
    env = {"ISO_MAX_STREAMS_PER_USER": "0"}
    log = tmp_path / "gunicorn.log"
    with serve_portal(kickstart_location, log, workers=1, env=env, open_files=open_files) as server:
        assert f"open files: soft limit {open_files} (was {open_files})" in log.read_text()
        session = logged_in_session(server.url, operator.username)
        before = last_build_id()
        with held_downloads(server, session.cookies["mojolicious"], bound + 4):
            builds = new_builds(before)
            assert poll(lambda: builds.count() == bound + 4, wait=60), builds.count()
            assert builds.filter(outcome=IsoBuild.Outcome.STREAMING).count() == bound
            assert builds.filter(outcome=IsoBuild.Outcome.REFUSED).count() == 4
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert poll(lambda: not builds.filter(outcome=IsoBuild.Outcome.STREAMING).exists(), wait=30)
        assert source_descriptors(server.worker_pids(), kickstart_location) == []


def answer_to(client: socket.socket) -> bytes:
    """What the server sends until it closes the connection (b"" if it closes without a word)."""
    client.settimeout(30)
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_a_request_whose_headers_come_late_is_answered_and_idle_connections_close(
    kickstart_location: Path, tmp_path: Path
) -> None:
    """A worker busy with fast downloads (or a client on a slow link) may take seconds to read a
    request's headers: the request is answered, not dropped unanswered (gevent's worker used to
    give them gunicorn's 2 s keep-alive). An idle kept-alive connection is still closed."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log", workers=1) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as late:
            time.sleep(3)
            late.sendall(request)
            assert answer_to(late).startswith(b"HTTP/1.1 200 OK\r\n")
        with socket.create_connection(("127.0.0.1", server.port)) as trickling:
            for line in request.splitlines(keepends=True):
                time.sleep(0.8)
                trickling.sendall(line)
            assert answer_to(trickling).startswith(b"HTTP/1.1 200 OK\r\n")
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            started = time.monotonic()
            idle.sendall(request.replace(b"close", b"keep-alive"))
            assert answer_to(idle).startswith(b"HTTP/1.1 200 OK\r\n")
            assert 9 < time.monotonic() - started < 20
