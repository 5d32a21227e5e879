"""One bad entry of osversions.json is skipped, the others keep working, and /healthz says
the catalog is degraded; a file no parser should follow (nested too deeply, too big) is a
clean error everywhere. Run on SQLite and on PostgreSQL (DATABASE_URL): each database
refuses different things (PostgreSQL: NUL, over-long values; both: unpaired surrogates).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from osversions.catalog import CatalogError, load_catalog_file, sync_catalog
from osversions.models import OsVersion
from tests.support.api import close_response, post_json, static_request
from tests.support.sources import CATALOG

pytestmark = pytest.mark.django_db

GOOD = ", ".join(f"{json.dumps(name)}: {json.dumps(directory)}" for name, directory in CATALOG.items())

# One bad entry each, written as JSON text (so that "\ud800" reaches the parser as such).
BAD_ENTRIES = {
    "name-too-long": f'"{"N" * 256}": "centos72"',
    "name-empty": '"": "centos72"',
    "name-blank": '"   ": "centos72"',
    "name-nul": '"Bad\\u0000Name": "centos72"',
    "name-lone-surrogate": '"\\ud800": "centos72"',
    "name-low-surrogate": '"Bad \\udfff": "centos72"',
    "name-newline": '"Bad\\nName": "centos72"',
    "name-c1-control": '"Bad\\u0085Name": "centos72"',
    "directory-number": '"Numbered": 7',
    "directory-null": '"Nothing": null',
    "directory-true": '"Truth": true',
    "directory-array": '"Listed": ["centos72"]',
    "directory-object": '"Nested": {"a": "centos72"}',
    "directory-empty": '"Empty": ""',
    "directory-too-long": f'"Long": "{"d" * 1025}"',
    "directory-nul": '"Nul": "cent\\u0000os72"',
    "directory-lone-surrogate": '"Surrogate": "\\ud800"',
    "directory-newline": '"Newline": "cent\\nos72"',
    "directory-escapes": '"Escape": "../etc"',
    "directory-absolute": '"Absolute": "/etc"',
}


def write_catalog(location: Path, text: str | bytes) -> None:
    path = location / "osversions.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def assert_good_rows_only() -> None:
    available = dict(OsVersion.objects.filter(available=True).values_list("name", "directory"))
    assert available == CATALOG


@pytest.mark.parametrize("entry", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
@pytest.mark.parametrize("position", ["first", "last"])
def test_a_bad_entry_is_skipped_and_the_rest_keep_working(
    kickstart_location: Path,
    client_for: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    entry: str,
    position: str,
) -> None:
    write_catalog(
        kickstart_location, "{" + (f"{entry}, {GOOD}" if position == "first" else f"{GOOD}, {entry}") + "}"
    )
    with caplog.at_level(logging.WARNING, logger="osversions.catalog"):
        report = sync_catalog()
    assert len(report.skipped) == 1, report.skipped
    assert sorted(report.added) == sorted(CATALOG)
    assert_good_rows_only()
    assert any("skipping the entry" in record.getMessage() for record in caplog.records)

    # Every request syncs again: the API, the page and the command all still serve.
    client = client_for("operations")
    response = client.get("/api/5.0/osversions")
    assert response.status_code == 200
    assert response.json() == {"response": CATALOG}
    assert client.get("/isos/generate/").status_code == 200
    download = post_json(client, "/api/5.0/isos", static_request())
    assert download.status_code == 200
    close_response(download)

    health = Client().get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "osversions": "degraded"},
        "degraded": ["osversions"],
    }

    out = StringIO()
    call_command("sync_osversions", stdout=out)
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if line.startswith("skipped: ")]) == 1
    assert lines[-1] == "0 added, 0 updated, 0 marked unavailable, 1 skipped"


def test_skipped_entries_are_counted_in_the_log_not_the_answer(
    kickstart_location: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_catalog(kickstart_location, "{" + ", ".join([*BAD_ENTRIES.values(), GOOD]) + "}")
    with caplog.at_level(logging.WARNING):
        health = Client().get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["osversions"] == "degraded"
    assert "skipped" not in health.content.decode() and "centos72" not in health.content.decode()
    assert f"{len(BAD_ENTRIES)} entries skipped, {len(CATALOG)} usable" in caplog.text
    assert len(load_catalog_file().skipped) == len(BAD_ENTRIES)


def test_longest_storable_values_are_kept(kickstart_location: Path) -> None:
    name, directory = "N" * 255, "/".join(["d" * 200] * 5)[:1024]
    write_catalog(kickstart_location, json.dumps({**CATALOG, name: directory}))
    report = sync_catalog()
    assert report.skipped == []
    assert OsVersion.objects.get(name=name).directory == directory


def test_names_differing_only_in_case_are_two_rows(kickstart_location: Path) -> None:
    """The unique constraint on the name is case-sensitive on SQLite and PostgreSQL alike."""
    write_catalog(
        kickstart_location, json.dumps({**CATALOG, "centos 7.2": "centos72", "CENTOS 7.2": "centos72"})
    )
    report = sync_catalog()
    assert report.skipped == []
    assert set(OsVersion.objects.filter(name__iexact="centos 7.2").values_list("name", flat=True)) == {
        "CentOS 7.2",
        "centos 7.2",
        "CENTOS 7.2",
    }
    # And once synced, nothing is written again (no case-folding round trip).
    assert sync_catalog().added == sync_catalog().updated == []


def test_a_name_given_twice_keeps_the_last_and_says_so(kickstart_location: Path) -> None:
    write_catalog(
        kickstart_location, '{"CentOS 7.2": "rocky/8", "Rocky Linux 8": "rocky/8", "CentOS 7.2": "centos72"}'
    )
    report = sync_catalog()
    assert len(report.skipped) == 1 and "more than once" in report.skipped[0]
    assert_good_rows_only()
    assert Client().get("/healthz").json()["checks"]["osversions"] == "degraded"


def test_an_entry_that_turns_bad_is_marked_unavailable(kickstart_location: Path) -> None:
    sync_catalog()
    write_catalog(kickstart_location, '{"CentOS 7.2": "centos72", "Rocky Linux 8": "rocky/\\u0000"}')
    report = sync_catalog()
    assert report.unavailable == ["Rocky Linux 8"]
    assert not OsVersion.objects.get(name="Rocky Linux 8").available


def test_a_clean_catalog_is_ok(kickstart_location: Path) -> None:
    assert sync_catalog().skipped == []
    assert Client().get("/healthz").json() == {
        "status": "ok",
        "checks": {"database": "ok", "osversions": "ok"},
    }


UNREADABLE = {
    "nested-arrays": "[" * 100_000,
    "nested-objects": '{"a": ' * 100_000,
    "nested-in-a-directory": '{"CentOS 7.2": ' + "[" * 100_000,
    "too-big": json.dumps({**CATALOG, "padding": "x" * (1 << 20)}),
    "not-an-object": json.dumps(list(CATALOG)),
    "not-utf8": b'{"CentOS 7.2": "\xff"}',
}


@pytest.mark.parametrize("text", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_file_is_a_clean_error_everywhere(
    kickstart_location: Path, operations_client: Client, text: str | bytes
) -> None:
    sync_catalog()
    write_catalog(kickstart_location, text)
    with pytest.raises(CatalogError):
        sync_catalog()
    assert_good_rows_only()  # left as they were

    health = Client().get("/healthz")
    assert health.status_code == 503
    assert health.json() == {
        "status": "failing",
        "checks": {"database": "ok", "osversions": "failing"},
        "failing": ["osversions"],
    }

    with pytest.raises(CommandError) as raised:
        call_command("sync_osversions", stdout=StringIO())
    assert "Traceback" not in str(raised.value) and "osversions.json" in str(raised.value)

    response = operations_client.get("/api/5.0/osversions")
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
    page = operations_client.get("/isos/generate/")
    assert page.status_code == 500 and b"Traceback" not in page.content


def test_deep_nesting_is_named_in_the_command_error(kickstart_location: Path) -> None:
    write_catalog(kickstart_location, "[" * 100_000)
    with pytest.raises(CommandError, match="nested too deeply"):
        call_command("sync_osversions", stdout=StringIO())


# The same class elsewhere: the other JSON file an operator writes, a source's isoportal.json.


def test_a_deeply_nested_isoportal_json_fails_that_source_cleanly(
    kickstart_location: Path, operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from isos.models import IsoBuild

    (kickstart_location / "centos72" / "isoportal.json").write_text("[" * 20_000)  # under its 64 KiB
    with caplog.at_level(logging.ERROR):
        response = post_json(operations_client, "/api/5.0/isos", static_request())
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
    build = IsoBuild.objects.get()
    assert build.outcome == "failed" and "nested too deeply" in build.detail
    assert "unexpected error" not in build.detail and "RecursionError" not in caplog.text
    # The other source still serves.
    other = post_json(operations_client, "/api/5.0/isos", static_request(osversionDir="rocky/8"))
    assert other.status_code == 200
    close_response(other)


# The same class elsewhere: text no database column can hold, reaching a query through the
# admin's search box and filters (PostgreSQL refuses a NUL: DataError, a 500).

ADMIN_QUERIES = [
    "/admin/isos/isobuild/?q=%00",
    "/admin/isos/isobuild/?q=a%00b",
    "/admin/isos/isobuild/?osversion_dir=%00",
    "/admin/isos/isobuild/?fqdn=%00",
    "/admin/isos/isobuild/?q=%ED%A0%80",
    "/admin/osversions/osversion/?q=%00",
    "/admin/osversions/osversion/?name=%00",
    "/admin/auth/user/?q=%00",
    "/admin/auth/group/?q=%00",
]


@pytest.mark.parametrize("url", ADMIN_QUERIES)
def test_admin_lists_never_500_on_unstorable_search_text(
    client_for: Callable[..., Client], kickstart_location: Path, url: str
) -> None:
    sync_catalog()
    client = client_for(superuser=True)
    User.objects.filter(username="root").update(is_staff=True)
    response = client.get(url)
    # (A surrogate cannot arrive in a URL: Django decodes invalid UTF-8 to U+FFFD.)
    if "%00" in url:
        assert response.status_code == 400  # refused before any query
    else:
        assert response.status_code in {200, 302}, response.status_code
