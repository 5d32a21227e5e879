"""Shared fixtures: a real kickstart files location, users of every role, API clients.

The database is migrated for real (pytest-django runs the migrations), so the groups the
data migration makes are the ones tested.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from guardian.shortcuts import assign_perm

from osversions.catalog import sync_catalog
from osversions.models import OsVersion
from tests.bench.serving import child_pids, free_port, wait_for_port
from tests.processes import poll
from tests.sources import make_source_tree


def pytest_configure(config: pytest.Config) -> None:
    """A test run needs no SECRET_KEY of its own (nor the key file ``manage.py demo`` makes)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.SECRET_KEY  # noqa: B018  (raises when empty)
    except ImproperlyConfigured:
        settings.SECRET_KEY = "tests-" + secrets.token_urlsafe(50)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

PASSWORD = "correct horse battery staple"
CATALOG = {"CentOS 7.2": "centos72", "Rocky Linux 8": "rocky/8"}


@pytest.fixture
def kickstart_location(tmp_path: Path, settings: Any) -> Path:
    """A kickstart files location with osversions.json and two real source trees."""
    location = tmp_path / "kickstart"
    location.mkdir()
    for directory in CATALOG.values():
        make_source_tree(location / directory)
    (location / "osversions.json").write_text(json.dumps(CATALOG))
    settings.KICKSTART_FILES_LOCATION = location
    settings.ISO_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]
    return location


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    """A user in the given groups (``superuser=True`` for a superuser)."""

    def make(username: str, *groups: str, superuser: bool = False) -> User:
        user = User.objects.create_user(username, password=PASSWORD, is_superuser=superuser)
        for name in groups:
            user.groups.add(Group.objects.get(name=name))
        return user

    return make


@pytest.fixture
def client_for(make_user: Callable[..., User]) -> Callable[..., Client]:
    """A test client logged in (through the real session) as a new user in ``groups``."""

    def make(*groups: str, superuser: bool = False, username: str | None = None) -> Client:
        name = username or ("-".join(groups) or ("root" if superuser else "nobody"))
        user = make_user(name, *groups, superuser=superuser)
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def row_granted_client(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    """A user with ISO:GENERATE and ISO:READ but no global use_osversion, granted only the
    "Rocky Linux 8" row (a django-guardian object permission)."""
    user = make_user("team-a")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["generate_iso", "read_iso"]))
    sync_catalog()
    assign_perm("osversions.use_osversion", user, OsVersion.objects.get(directory="rocky/8"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operations_client(client_for: Callable[..., Client], kickstart_location: Path) -> Client:
    return client_for("operations")


def database_url() -> str:
    """A URL for the test database, for a server process of its own."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"


@dataclass
class PortalServer:
    """A portal running under gunicorn: its base URL, its master process and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the master's child processes."""
        return child_pids(self.process.pid)


@contextmanager
def serve_portal(
    kickstart_location: Path,
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
) -> Iterator[PortalServer]:
    """Run the portal under gunicorn on loopback, on the test database, until the block ends.

    ``env`` adds to (or overrides) the server's environment, e.g. ``AXES_ENABLED``-style settings.
    """
    port = free_port()
    server_env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "KICKSTART_FILES_LOCATION": str(kickstart_location),
        "ISO_NAMESERVERS": "8.8.8.8,8.8.4.4",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"]
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, env=server_env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, server, log)
            # Every worker booted, so that worker_pids() names them all from the start.
            assert poll(lambda: len(child_pids(server.pid)) == workers, wait=30), log.read_text()[-2000:]
            yield PortalServer(f"http://127.0.0.1:{port}", server, log)
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def portal_server(transactional_db: Any, kickstart_location: Path, tmp_path: Path) -> Iterator[str]:
    """The portal under gunicorn on loopback (2 workers, 4 threads), on the test database."""
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log") as server:
        yield server.url


def post_json(client: Client, path: str, body: Any, **extra: Any) -> Any:
    """POST a JSON body the way Traffic Ops clients do (no CSRF token)."""
    return client.post(path, data=json.dumps(body), content_type="application/json", **extra)


def static_request(**overrides: Any) -> dict[str, Any]:
    """The API.md example request (static addressing), with overrides."""
    body: dict[str, Any] = {
        "osversionDir": "centos72",
        "hostName": "test",
        "domainName": "quest",
        "rootPass": "twelve",
        "dhcp": "no",
        "ipAddress": "1.3.3.7",
        "ipNetmask": "255.255.255.255",
        "ipGateway": "8.0.0.8",
        "ip6Address": "1::3:3:7",
        "ip6Gateway": "8::8",
        "interfaceMtu": 1500,
        "interfaceName": "eth0",
        "disk": "sda",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def close_response(response: Any) -> None:
    """Close a streamed response early, as a WSGI server does when a client goes away.

    The test client wraps the stream in a generator that closes the response with
    request_finished's connection-closing handler detached (closing the response directly
    would close the test's database connection); closing that generator does it its way.
    """
    response._iterator.close()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A Chromium page (1280 px wide) that accepts downloads; skips without Chromium or Playwright."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pycdlib stamps records with time.time() in local time when they are added, and the
    volume descriptors when it writes them: pin the clock, in UTC, so that two layouts of
    the same files made apart carry the same dates."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    yield
    monkeypatch.undo()
    time.tzset()
