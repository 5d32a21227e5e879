"""Through a real WSGI server on loopback, with real HTTP clients.

gunicorn (the production server docs/operations.md names) serves the portal from another
process, on the test database; the clients are ``requests`` and the
``apache-trafficcontrol`` Python client that Traffic Ops users script with.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User

from tests.support.api import PASSWORD, static_request
from tests.support.isoread import ks_script
from tests.support.serving import logged_in_session

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def portal(operator: User, portal_server: str) -> Any:
    """The gunicorn-served portal, with a user "op" in operations."""
    return SimpleNamespace(url=portal_server)


def test_content_length_is_the_bytes_received(portal: Any) -> None:
    session = logged_in_session(portal.url, "op")
    response = session.post(f"{portal.url}/api/5.0/isos", json=static_request(), timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/download"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert b'HOSTNAME="test.quest"' in ks_script(response.content)


def test_two_concurrent_requests_each_get_their_own_network_cfg(portal: Any) -> None:
    session = logged_in_session(portal.url, "op")

    def fetch(host: str) -> bytes:
        response = session.post(
            f"{portal.url}/api/5.0/isos", json=static_request(hostName=host), timeout=60, stream=True
        )
        assert response.status_code == 200
        return b"".join(response.iter_content(64 * 1024))

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(fetch, ["alpha", "bravo"])
    assert b'HOSTNAME="alpha.quest"' in ks_script(first)
    assert b'HOSTNAME="bravo.quest"' in ks_script(second)


def test_stream_that_breaks_is_cut_short(portal: Any, kickstart_location: Path) -> None:
    """A source file that shrinks mid-stream: the connection is cut, never padded.

    The file is big (sparse) so the stream is still running when it shrinks: socket
    buffers would otherwise hold the whole ISO already.
    """
    big = kickstart_location / "centos72" / "images" / "big.img"
    with big.open("wb") as sparse:
        sparse.truncate(256 << 20)
    session = logged_in_session(portal.url, "op")
    response = session.post(f"{portal.url}/api/5.0/isos", json=static_request(), timeout=60, stream=True)
    expected = int(response.headers["Content-Length"])
    chunks = response.iter_content(2048)
    received = len(next(chunks))
    big.write_bytes(b"short")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in chunks:
            received += len(chunk)
    assert 0 < received < expected


def test_trafficops_python_client_login_then_post(portal: Any) -> None:
    """The apache-trafficcontrol client's own login, then a POST to isos with its session."""
    from trafficops.tosession import TOSession

    address = urlsplit(portal.url)
    to = TOSession(host_ip=address.hostname, host_port=address.port, ssl=False, api_version="4.1")
    to.login("op", PASSWORD)
    osversions = to.session.get(f"{to.base_url}osversions", timeout=30)
    assert osversions.json() == {"response": {"CentOS 7.2": "centos72", "Rocky Linux 8": "rocky/8"}}
    response = to.session.post(f"{to.base_url}isos", json=static_request(), timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="test.quest-centos72.iso"'
    assert int(response.headers["Content-Length"]) == len(response.content)
