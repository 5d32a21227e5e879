"""The front door as shipped: deploy/nginx/iso-portal.conf before two app servers on one database.

nginx (Debian's) runs the very site file operators install, rendered for the test by a few
line substitutions only (``render_site``: loopback ports instead of 443 and 80, no
certificate, the logs in a temporary folder, timeouts of seconds), each of which must match
the file exactly as often as expected, so the file and the test cannot drift apart. It runs
as a non-daemon with its own prefix, temporary paths, pid and logs. The app servers are two
gunicorn masters started with deploy/gunicorn.conf.py, on the test database (PostgreSQL or
SQLite). What is proven, one test each: sessions and login throttling are shared; forwarded
headers are believed from the proxy only; a download streams through nginx unbuffered and
never touches its disk; slow clients never reach an app server; a client that stops reading
is cut and audited; a killed app server cuts its download and the next requests go to the
other; Range passes through; plain HTTP redirects; the TLS lines left out above pass
``nginx -t`` with a throwaway certificate; the systemd unit is valid and consistent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User

from isos.models import IsoBuild
from tests.support.api import PASSWORD, static_request
from tests.support.isoread import ks_script
from tests.support.processes import child_pids, open_descriptor_targets, open_write_files, poll
from tests.support.serving import Gunicorn, free_port, logged_in_session, serve_portal, wait_for_port
from tests.support.sources import CATALOG, make_source_tree
from tests.support.tools import require_tool

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DEPLOY = Path(settings.BASE_DIR) / "deploy"
SITE = DEPLOY / "nginx" / "iso-portal.conf"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
UNIT = DEPLOY / "systemd" / "iso-portal@.service"

ISOS = "/api/5.0/isos"
LOGIN = "/api/5.0/user/login"
# Seconds, in place of the site's own (tens of seconds): the tests that wait for them stay short.
SEND_TIMEOUT = 2
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
FAILURE_LIMIT = 3
# A big sparse file early in the source's disk order holds a download open: far more than
# every socket buffer and nginx's one buffer between the client and the app server hold.
BIG = "centos72/images/big.img"
BIG_SIZE = 64 << 20
SMALL_SOURCE = "rocky/8"
STATIC_FILE = "/static/admin/css/base.css"


# --------------------------------------------------------------------------------------
# nginx running the shipped site
# --------------------------------------------------------------------------------------


def substitute(text: str, pattern: str, replacement: str, count: int) -> str:
    """``text`` with ``pattern`` (a line regex) replaced; it must match exactly ``count`` times."""
    result, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert found == count, f"{SITE.name}: {pattern!r} matched {found} times, not {count}"
    return result


def render_site(port: int, redirect_port: int, upstreams: list[int], logs: Path) -> str:
    """The shipped site, but for where it listens, its certificate, its logs and timeouts."""
    text = SITE.read_text()
    text = substitute(text, r"^(\s*)listen 443 ssl;$", rf"\1listen 127.0.0.1:{port};", 1)
    text = substitute(text, r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{redirect_port};", 1)
    text = substitute(text, r"^\s*listen \[::\]:(80|443)( ssl)?;\n", "", 2)
    text = substitute(text, r"^\s*ssl_\w+ .*;\n", "", 4)
    text = substitute(text, r"server 127\.0\.0\.1:8001 ", f"server 127.0.0.1:{upstreams[0]} ", 1)
    text = substitute(text, r"server 127\.0\.0\.1:8002 ", f"server 127.0.0.1:{upstreams[1]} ", 1)
    text = substitute(text, r"/var/log/nginx/", f"{logs}/", 2)
    for directive, seconds in [
        ("send_timeout", SEND_TIMEOUT),
        ("client_header_timeout", HEADER_TIMEOUT),
        ("client_body_timeout", BODY_TIMEOUT),
    ]:
        text = substitute(text, rf"^(\s*){directive} \d+s;$", rf"\g<1>{directive} {seconds}s;", 1)
    return text


MAIN_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user {user};
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/temp/client_body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/iso-portal.conf;
}}
"""


class Nginx:
    """nginx in the foreground with everything of its own under ``prefix``; ``stop()`` ends it."""

    def __init__(self, prefix: Path, upstreams: list[int]) -> None:
        binary = require_tool("nginx")
        self.prefix, self.logs, self.temp = prefix, prefix / "logs", prefix / "temp"
        for folder in (self.logs, self.temp):
            folder.mkdir(parents=True)
        self.port, self.redirect_port = free_port(), free_port()
        (prefix / "iso-portal.conf").write_text(
            render_site(self.port, self.redirect_port, upstreams, self.logs)
        )
        conf = prefix / "nginx.conf"
        conf.write_text(MAIN_CONF.format(prefix=prefix, user=pwd.getpwuid(os.getuid()).pw_name))
        command = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(self.logs / "startup.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        self.output = (self.logs / "stderr.log").open("wb")
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process, self.logs / "error.log")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        return (self.logs / "iso-portal.access.log").read_text().splitlines()

    def site_errors(self) -> str:
        return (self.logs / "iso-portal.error.log").read_text()

    def temporary_files(self) -> list[Path]:
        return [path for path in self.temp.rglob("*") if not path.is_dir()]

    def files_written_by_workers(self) -> list[str]:
        """Files nginx's workers hold open for writing, but for its logs."""
        return [
            target
            for pid in child_pids(self.process.pid)
            for target in open_write_files(pid, allowed=(str(self.logs),))
        ]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


@dataclass
class FrontDoor:
    nginx: Nginx
    servers: list[Gunicorn]
    location: Path
    access_logs: list[Path]  # the app servers' (gunicorn's) access logs

    @property
    def url(self) -> str:
        return self.nginx.url

    def serving(self, relative: str) -> list[Gunicorn]:
        """The app servers one of whose workers holds ``relative`` (in the location) open."""
        path = str((self.location / relative).resolve())
        return [
            server
            for server in self.servers
            if any(path in open_descriptor_targets(pid) for pid in server.worker_pids())
        ]


def make_location(root: Path) -> Path:
    location = root / "kickstart"
    location.mkdir()
    for directory in CATALOG.values():
        make_source_tree(location / directory)
    (location / "osversions.json").write_text(json.dumps(CATALOG))
    with (location / BIG).open("wb") as sparse:
        sparse.truncate(BIG_SIZE)
    return location


@contextlib.contextmanager
def front_door(root: Path) -> Iterator[FrontDoor]:
    """nginx before two app servers (one worker, four threads each) sharing one secret key."""
    location = make_location(root)
    shared = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,iso.example.com",
        "TRUST_X_FORWARDED_PROTO": "1",
        "LOGIN_FAILURE_LIMIT": str(FAILURE_LIMIT),
    }
    with contextlib.ExitStack() as stack:
        servers, access_logs = [], [root / "app-a.access.log", root / "app-b.access.log"]
        for name, access_log in zip("ab", access_logs, strict=True):
            env = {
                **shared,
                # The shipped gunicorn settings; the command line's bind, workers and threads win.
                "GUNICORN_CMD_ARGS": f"-c {GUNICORN_CONF} --access-logfile {access_log}",
            }
            servers.append(
                stack.enter_context(serve_portal(location, root / f"app-{name}.log", workers=1, env=env))
            )
        nginx = Nginx(root / "nginx", [server.port for server in servers])
        stack.callback(nginx.stop)
        yield FrontDoor(nginx, servers, location, access_logs)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any) -> Iterator[FrontDoor]:
    with front_door(tmp_path_factory.mktemp("front-door")) as running:
        yield running


@pytest.fixture
def op(make_user: Callable[..., User]) -> User:
    return make_user("op", "operations")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def raw(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    source: str = "127.0.0.1",
) -> http.client.HTTPResponse:
    """One request to 127.0.0.1:``port`` from the address ``source``, with exactly ``headers``
    (plus Host and Content-Length); the answer read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    connection.request(method, path, body=body, headers={"Content-Length": str(len(body)), **headers})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def newest_build(after: int) -> IsoBuild:
    build = IsoBuild.objects.filter(pk__gt=after).order_by("-id").first()
    assert build is not None, "no audit record for the request"
    return build


def last_build_id() -> int:
    return IsoBuild.objects.order_by("-id").values_list("id", flat=True).first() or 0


def finished_build(after: int, wait: float = 15) -> IsoBuild:
    def finished() -> bool:
        build = IsoBuild.objects.filter(pk__gt=after).order_by("-id").first()
        return build is not None and build.outcome != IsoBuild.Outcome.STREAMING

    assert poll(finished, wait=wait), "the record of the download never closed"
    return newest_build(after)


def read_until_cut(response: requests.Response, chunks: Iterator[bytes], received: int) -> int:
    """Read on; the connection must end with an error, short of Content-Length."""
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        for chunk in chunks:
            received += len(chunk)
    assert received < int(response.headers["Content-Length"]), "a cut download must never look complete"
    return received


def upstreams_of(line: str) -> list[str]:
    """The app servers nginx tried for the request of one access log line, in order."""
    match = re.search(r" upstream=(.*?) upstream_status=", line)
    assert match, line
    return match[1].split(", ")


def established_to(ports: list[int]) -> int:
    """TCP connections established to any of ``ports`` on this host (IPv4)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) in ports and fields[3] == "01":
            count += 1
    return count


# --------------------------------------------------------------------------------------
# Two app servers, one database
# --------------------------------------------------------------------------------------


def test_a_session_made_through_one_app_server_works_on_the_other(door: FrontDoor, op: User) -> None:
    first, second = door.servers
    session = logged_in_session(first.url, "op")
    for base in (second.url, door.url):
        answer = session.get(f"{base}/api/5.0/osversions", timeout=30)
        assert answer.status_code == 200, (base, answer.text)
        assert answer.json() == {"response": CATALOG}


def test_login_throttling_counts_across_both_app_servers_by_the_client_address(
    door: FrontDoor, op: User
) -> None:
    lines_before = len(door.nginx.access_log())
    for attempt in range(1, FAILURE_LIMIT + 1):
        wrong = requests.post(f"{door.url}{LOGIN}", json={"u": "op", "p": "wrong"}, timeout=30)
        # The failure that reaches the limit is answered as a lockout already.
        assert wrong.status_code == (429 if attempt == FAILURE_LIMIT else 401), wrong.text
    upstreams = {upstreams_of(line)[0] for line in door.nginx.access_log()[lines_before:]}
    assert upstreams == {f"127.0.0.1:{server.port}" for server in door.servers}, "not both app servers"
    good = {"u": "op", "p": PASSWORD}
    # Locked out through either server, and a forged X-Forwarded-For does not get round it.
    for headers in ({}, {"X-Forwarded-For": "198.51.100.7"}, {"X-Real-IP": "198.51.100.7"}):
        for _ in door.servers:
            locked = requests.post(f"{door.url}{LOGIN}", json=good, headers=headers, timeout=30)
            assert locked.status_code == 429, (headers, locked.text)
    # What the proxy forwards for another client is believed: that client is not locked out.
    for server in door.servers:
        other = raw(
            server.port,
            "POST",
            LOGIN,
            {"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.7"},
            b'{"u": "op", "p": "%s"}' % PASSWORD.encode(),
        )
        assert other.status == 200


def test_forwarded_headers_are_believed_from_the_proxy_only(door: FrontDoor, op: User) -> None:
    session = logged_in_session(door.url, "op")
    cookie = f"mojolicious={session.cookies['mojolicious']}"
    forged = {
        "X-Forwarded-For": "198.51.100.7",
        "X-Real-IP": "198.51.100.7",
        "Forwarded": "for=198.51.100.7;proto=https",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Ssl": "on",
        "X-Forwarded-Protocol": "ssl",
    }
    app = door.servers[0]

    def client_address_of(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> str | None:
        """The audited address of a refused ISO request (an empty body breaks every rule)."""
        before = last_build_id()
        refused = raw(
            port,
            "POST",
            ISOS,
            {"Content-Type": "application/json", "Cookie": cookie, **headers},
            b"{}",
            source,
        )
        assert refused.status == 400
        return newest_build(before).client_address

    # Through nginx: the address nginx saw, whatever the client claims.
    assert client_address_of(door.nginx.port, forged) == "127.0.0.1"
    # Straight to an app server from an address that is not the proxy's: its own address.
    assert client_address_of(app.port, forged, source="127.0.0.3") == "127.0.0.3"
    # From the proxy's address: what it forwards.
    assert client_address_of(app.port, {"X-Forwarded-For": "203.0.113.5"}) == "203.0.113.5"

    def login_page_post(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> int:
        """The login form posted with its own origin: Django refuses it (403) when it believes
        the request came over HTTPS, since the origin then is not the request's."""
        token = secrets.token_hex(16)  # a valid CSRF secret: 32 characters
        form = f"csrfmiddlewaretoken={token}&username=op&password={PASSWORD.replace(' ', '+')}".encode()
        own = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={token}",
            "Origin": f"http://127.0.0.1:{port}",
        }
        return raw(port, "POST", "/login/", {**own, **headers}, form, source).status

    assert login_page_post(door.nginx.port, forged) == 302
    assert login_page_post(app.port, forged, source="127.0.0.3") == 302
    # The same header from the proxy's address is believed: the check above can see a forgery.
    assert login_page_post(app.port, {"X-Forwarded-Proto": "https"}) == 403


# --------------------------------------------------------------------------------------
# Downloads through nginx
# --------------------------------------------------------------------------------------


def test_a_download_streams_through_nginx_unbuffered_and_without_a_temporary_file(
    door: FrontDoor, op: User
) -> None:
    session = logged_in_session(door.url, "op")
    before = last_build_id()
    response = session.post(f"{door.url}{ISOS}", json=static_request(), timeout=60, stream=True)
    assert response.status_code == 200, response.text[:300]
    expected = int(response.headers["Content-Length"])
    chunks = response.iter_content(64 << 10)
    received = len(next(chunks))
    # The client pauses after its first chunk: the app server is still reading the source,
    # the record still streaming, and nginx holds no file of the ISO.
    assert poll(lambda: len(door.serving(BIG)) == 1), "the app server is not streaming big.img"
    assert newest_build(before).outcome == IsoBuild.Outcome.STREAMING
    assert door.nginx.temporary_files() == []
    assert door.nginx.files_written_by_workers() == []
    body = bytearray()
    for chunk in chunks:
        body += chunk
    received += len(body)
    assert received == expected
    build = finished_build(before)
    assert build.outcome == IsoBuild.Outcome.BUILT and build.bytes_sent == build.iso_size == expected
    assert door.nginx.temporary_files() == []


def test_a_client_that_stops_reading_is_cut_by_nginx_and_audited_client_went_away(
    door: FrontDoor, op: User
) -> None:
    session = logged_in_session(door.url, "op")
    before = last_build_id()
    response = session.post(f"{door.url}{ISOS}", json=static_request(), timeout=60, stream=True)
    assert response.status_code == 200
    chunks = response.iter_content(64 << 10)
    received = len(next(chunks))
    paused = time.monotonic()
    build = finished_build(before, wait=SEND_TIMEOUT + 10)
    cut_after = time.monotonic() - paused
    assert build.outcome == IsoBuild.Outcome.CLIENT_WENT_AWAY, build.detail
    assert re.fullmatch(r"closed after \d+ bytes", build.detail)
    assert build.bytes_sent < build.iso_size
    # nginx's send_timeout, not the app server's ISO_SEND_TIMEOUT (300 s here).
    assert SEND_TIMEOUT <= cut_after < SEND_TIMEOUT + 8, cut_after
    read_until_cut(response, chunks, received)
    response.close()


def test_slow_clients_wait_in_nginx_and_never_reach_an_app_server(door: FrontDoor) -> None:
    ports = [server.port for server in door.servers]
    assert established_to(ports) == 0
    slow_headers, slow_bodies = [], []
    started = time.monotonic()
    for number in range(20):
        header = socket.create_connection(("127.0.0.1", door.nginx.port))
        header.sendall(f"GET /slowloris-{number} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        slow_headers.append(header)
        body = socket.create_connection(("127.0.0.1", door.nginx.port))
        body.sendall(
            f"POST {LOGIN}?slowloris-{number} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        slow_bodies.append(body)
    # More slow clients than the app servers have threads (2 x 4), trickling on: nothing
    # reaches an app server, and a real request is answered at once.
    for _ in range(3):
        time.sleep(0.3)
        for header in slow_headers:
            with contextlib.suppress(OSError):
                header.sendall(b"X-Trickle: 1\r\n")
        assert established_to(ports) == 0
    answered = time.monotonic()
    assert requests.get(f"{door.url}/healthz", timeout=5).status_code == 200
    assert time.monotonic() - answered < 1

    def cut(connection: socket.socket) -> bool:
        connection.settimeout(0.05)
        try:
            while data := connection.recv(4096):
                assert b"HTTP/1.1 200" not in data
            return True
        except TimeoutError:
            return False
        except OSError:
            return True

    everyone = slow_headers + slow_bodies
    assert poll(lambda: all(cut(connection) for connection in everyone), wait=HEADER_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    assert elapsed >= min(HEADER_TIMEOUT, BODY_TIMEOUT)
    for connection in everyone:
        connection.close()
    for access_log in door.access_logs:
        assert "slowloris" not in access_log.read_text()
    # nginx logs the bodies it gave up on, none of them passed upstream.
    given_up = [line for line in door.nginx.access_log() if "slowloris" in line]
    assert given_up and all(" 408 " in line and "upstream=-" in line for line in given_up), given_up


def test_range_requests_pass_through_nginx_unchanged(door: FrontDoor) -> None:
    headers = {"Range": "bytes=0-9", "Accept-Encoding": "identity"}
    direct = requests.get(f"{door.servers[0].url}{STATIC_FILE}", headers=headers, timeout=30)
    proxied = requests.get(f"{door.url}{STATIC_FILE}", headers=headers, timeout=30)
    assert direct.status_code == proxied.status_code == 206
    assert proxied.headers["Content-Range"] == direct.headers["Content-Range"]
    assert re.fullmatch(r"bytes 0-9/\d+", proxied.headers["Content-Range"])
    assert proxied.content == direct.content and len(proxied.content) == 10


def test_plain_http_is_redirected_to_https(door: FrontDoor) -> None:
    answer = raw(
        door.nginx.redirect_port, "GET", "/isos/generate/?hostName=edge1", {"Host": "iso.example.com"}
    )
    assert answer.status == 301
    assert answer.headers["Location"] == "https://iso.example.com/isos/generate/?hostName=edge1"


# --------------------------------------------------------------------------------------
# An app server dies
# --------------------------------------------------------------------------------------


def test_an_app_server_killed_mid_download_cuts_it_and_the_next_requests_go_to_the_other(
    tmp_path: Path, op: User
) -> None:
    with front_door(tmp_path) as running:
        session = logged_in_session(running.url, "op")
        response = session.post(f"{running.url}{ISOS}", json=static_request(), timeout=60, stream=True)
        assert response.status_code == 200
        chunks = response.iter_content(64 << 10)
        received = len(next(chunks))
        assert poll(lambda: len(running.serving(BIG)) == 1), "no app server is streaming big.img"
        (victim,) = running.serving(BIG)
        workers = victim.worker_pids()
        os.kill(victim.process.pid, signal.SIGKILL)  # the master first: it respawns no worker
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        read_until_cut(response, chunks, received)
        response.close()

        survivor = next(server for server in running.servers if server is not victim)
        for _ in range(4):  # each app server's turn comes at least twice
            listed = session.get(f"{running.url}/api/5.0/osversions", timeout=30)
            assert listed.status_code == 200, listed.text
            iso = session.post(
                f"{running.url}{ISOS}", json=static_request(osversionDir=SMALL_SOURCE), timeout=60
            )
            assert iso.status_code == 200, iso.text[:300]
            assert int(iso.headers["Content-Length"]) == len(iso.content)
            assert b'HOSTNAME="test.quest"' in ks_script(iso.content)
        # $upstream_addr lists every server tried: the dead one refused, and the other answered.
        served = [upstreams_of(line) for line in running.nginx.access_log()[-8:]]
        assert all(tried[-1] == f"127.0.0.1:{survivor.port}" for tried in served), served
        assert [f"127.0.0.1:{victim.port}", f"127.0.0.1:{survivor.port}"] in served, served


def test_the_site_with_its_tls_lines_is_valid(tmp_path: Path) -> None:
    """What the tests above leave out, the HTTPS listeners and the certificate, as shipped:
    ``nginx -t`` accepts them with a throwaway certificate in place of the operator's."""
    certificate, key = tmp_path / "certificate.pem", tmp_path / "key.pem"
    throwaway = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=iso.example.com",
    ]
    subprocess.run(
        [require_tool("openssl"), *throwaway, "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = SITE.read_text()
    site = substitute(site, r"/etc/ssl/certs/iso\.example\.com\.pem", str(certificate), 1)
    site = substitute(site, r"/etc/ssl/private/iso\.example\.com\.key", str(key), 1)
    site = substitute(site, r"/var/log/nginx/", f"{tmp_path}/", 2)
    (tmp_path / "logs").mkdir()
    (tmp_path / "temp").mkdir()
    (tmp_path / "iso-portal.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(MAIN_CONF.format(prefix=tmp_path, user=pwd.getpwuid(os.getuid()).pw_name))
    checked = subprocess.run(
        [
            require_tool("nginx"),
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            str(tmp_path / "logs" / "t.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


# --------------------------------------------------------------------------------------
# The systemd unit
# --------------------------------------------------------------------------------------


def test_the_systemd_unit_is_valid_and_runs_the_shipped_gunicorn_settings(tmp_path: Path) -> None:
    unit = UNIT.read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    binary, *arguments = exec_start.split()
    assert arguments == ["-c", "/etc/iso-portal/gunicorn.conf.py", "portal.wsgi"]
    assert "Environment=ISO_PORTAL_BIND=127.0.0.1:%i" in unit.splitlines()
    # The settings file reads that variable, and lets running downloads finish before systemd kills.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; c = runpy.run_path(sys.argv[1]); print(c['bind'], c['graceful_timeout'])",
            str(GUNICORN_CONF),
        ],
        env={**os.environ, "ISO_PORTAL_BIND": "127.0.0.1:8002"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    bind, graceful = probe.stdout.split()
    assert bind == "['127.0.0.1:8002']"
    (stop_timeout,) = re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert int(stop_timeout) > int(graceful)
    # systemd's own verdict, on the instance for port 8001 with this machine's gunicorn.
    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
    instance = tmp_path / "iso-portal@8001.service"
    instance.write_text(unit.replace(binary, gunicorn))
    verified = subprocess.run(
        [require_tool("systemd-analyze"), "verify", str(instance)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
