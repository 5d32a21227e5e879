"""A download nobody reads is cut after ``ISO_SEND_TIMEOUT``, without any proxy.

Clients that send ``POST isos`` and never read would hold their stream (its slot, its source
file) for as long as the kernel kept the connection (many minutes). The portal sets a send
timeout on the client's socket before streaming (isos.generation): a chunk that cannot be
handed over for that long fails, gunicorn closes the response, and the audit says
``client_went_away``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User

from isos.models import IsoBuild
from tests.support.api import static_request
from tests.support.processes import poll
from tests.support.serving import logged_in_session, serve_portal

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SEND_TIMEOUT = 2
# Far more than the socket buffers between the server and a client that never reads.
BIG_SIZE = 64 << 20


def test_downloads_nobody_reads_are_cut_after_iso_send_timeout_and_free_their_slots(
    operator: User, kickstart_location: Path, tmp_path: Path
) -> None:
    with (kickstart_location / "centos72" / "images" / "big.img").open("wb") as sparse:
        sparse.truncate(BIG_SIZE)
    # Two clients that never read: every stream the worker may have.
    env = {"ISO_SEND_TIMEOUT": str(SEND_TIMEOUT), "ISO_MAX_STREAMS": "2"}
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log", workers=1, env=env) as server:
        cookie = logged_in_session(server.url, operator.username).cookies["mojolicious"]
        body = json.dumps(static_request()).encode()
        request = (
            f"POST /api/5.0/isos HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: mojolicious={cookie}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        before = IsoBuild.objects.order_by("-id").values_list("id", flat=True).first() or 0
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        try:
            for client in silent:
                client.sendall(request)
            builds = IsoBuild.objects.filter(pk__gt=before)
            assert poll(lambda: builds.count() == 2), "the two downloads did not start"
            started = time.monotonic()
            assert poll(
                lambda: not builds.filter(outcome=IsoBuild.Outcome.STREAMING).exists(), wait=SEND_TIMEOUT + 15
            ), "the downloads were not cut"
            waited = time.monotonic() - started
            for build in builds:
                assert build.outcome == IsoBuild.Outcome.CLIENT_WENT_AWAY, build.detail
                assert 0 < build.bytes_sent < build.iso_size
                assert build.finished_at is not None
                # The kernel takes a few more MiB at first (its buffers grow), then none for
                # SEND_TIMEOUT: the cut comes seconds after the timeout, never before it.
                held = (build.finished_at - build.started_at).total_seconds()
                assert SEND_TIMEOUT <= held < SEND_TIMEOUT + 8, held
            assert waited < SEND_TIMEOUT + 8, waited
            # gunicorn says so in one warning line each, no traceback (portal/gunicorn_conf.py).
            log = (tmp_path / "gunicorn.log").read_text()
            assert log.count("a client that took no byte for ISO_SEND_TIMEOUT was cut") == 2, log[-3000:]
            assert "Traceback" not in log, log[-3000:]
            # Both slots are free again (the clients are still connected, reading nothing):
            # the next download streams.
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
            session = logged_in_session(server.url, operator.username)
            again = session.post(f"{server.url}/api/5.0/isos", json=static_request(), timeout=30)
            assert again.status_code == 200, again.text
            assert len(again.content) == int(again.headers["Content-Length"])
        finally:
            for client in silent:
                client.close()
