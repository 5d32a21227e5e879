"""The suite's fixtures: a real kickstart files location, users of every role, API clients,
the portal under gunicorn, a browser page, a pinned clock and the boot kit.

Plain helpers (no fixtures) are in tests/support/. The database is migrated for real
(pytest-django runs the migrations), so the groups the data migration makes are the ones
tested.
"""

from __future__ import annotations

import importlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from guardian.shortcuts import assign_perm

from isos.engine.layout_cache import layout_cache
from isos.fetch_counts import FetchCounts
from osversions.catalog import sync_catalog
from osversions.models import OsVersion
from tests.support.api import PASSWORD, FormClient
from tests.support.bootkit import BootkitUnavailable, install_bootkit
from tests.support.serving import serve_portal
from tests.support.sources import CATALOG, SYSTEM_ISOLINUX_BIN, make_source_tree, settled
from tests.support.tools import require_file, unavailable


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

# The user of the operator fixture, in operations.
OPERATOR = "op"


@pytest.fixture(autouse=True)
def fetch_counts(monkeypatch: pytest.MonkeyPatch) -> FetchCounts:
    """In-process, an ISO URL's fetch counts wait for the test's flush(): the worker's timer
    would write from another thread, outside the test's transaction (and after its database
    is gone). Servers the tests start keep their timer."""
    counts = FetchCounts(every=None)
    monkeypatch.setattr("isos.fetch_counts.fetch_counts", counts)
    return counts


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
        client = FormClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def operator(make_user: Callable[..., User], kickstart_location: Path) -> User:
    """The user "op" (Olivia Operator) in operations, and a kickstart files location to use."""
    user = make_user(OPERATOR, "operations")
    user.first_name, user.last_name = "Olivia", "Operator"
    user.save()
    return user


@pytest.fixture
def row_granted_client(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    """A user with ISO:GENERATE and ISO:READ but no global use_osversion, granted only the
    "Rocky Linux 8" row (a django-guardian object permission)."""
    user = make_user("team-a")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["generate_iso", "read_iso"]))
    sync_catalog()
    assign_perm("osversions.use_osversion", user, OsVersion.objects.get(directory="rocky/8"))
    client = FormClient()
    client.force_login(user)
    return client


@pytest.fixture
def operations_client(client_for: Callable[..., Client], kickstart_location: Path) -> Client:
    return client_for("operations")


@pytest.fixture
def portal_server(transactional_db: Any, kickstart_location: Path, tmp_path: Path) -> Iterator[str]:
    """The portal under gunicorn on loopback (2 gevent workers, as in production), on the test database."""
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log") as server:
        yield server.url


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A Chromium page (1280 px wide) that accepts downloads; without Chromium or Playwright,
    the test skips (or fails, under ISOPORTAL_REQUIRE_TOOLS)."""
    require_file(CHROMIUM, "chromium")
    try:
        sync_api = importlib.import_module("playwright.sync_api")
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[dev]')")
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
def system_isolinux_bin() -> Path:
    """Debian's isolinux.bin (isohybrid-capable); without the isolinux package, the test
    skips (or fails, under ISOPORTAL_REQUIRE_TOOLS)."""
    return require_file(SYSTEM_ISOLINUX_BIN, "isolinux")


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


@pytest.fixture
def bootkit_source(kickstart_location: Path) -> Path:
    """The boot kit (tests/support/bootkit.py) as a source of the test's kickstart files
    location ("bootkit"); without its tools, the test skips (or fails, under
    ISOPORTAL_REQUIRE_TOOLS)."""
    try:
        return install_bootkit(kickstart_location)
    except BootkitUnavailable as exc:
        unavailable(f"boot kit unavailable: {exc}")


@pytest.fixture
def media_source(kickstart_location: Path) -> Path:
    """The test source, aged so that an ISO URL can pin its layout, in an empty cache."""
    layout_cache.clear()
    return settled(kickstart_location / "centos72")
