"""GET osversions: osversions.json, synced into rows, filtered per user, errors as 500 alerts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from osversions.catalog import CatalogError, read_catalog_file, resolve_source, sync_catalog
from osversions.models import OsVersion

URL = "/api/5.0/osversions"


@pytest.mark.django_db
def test_lists_the_catalog(operations_client: Client) -> None:
    response = operations_client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"response": {"CentOS 7.2": "centos72", "Rocky Linux 8": "rocky/8"}}


@pytest.mark.django_db
def test_vanished_entries_become_unavailable_not_deleted(
    operations_client: Client, kickstart_location: Path
) -> None:
    operations_client.get(URL)
    (kickstart_location / "osversions.json").write_text(json.dumps({"Rocky Linux 8": "rocky/8"}))
    assert operations_client.get(URL).json() == {"response": {"Rocky Linux 8": "rocky/8"}}
    centos = OsVersion.objects.get(name="CentOS 7.2")
    assert centos.available is False
    (kickstart_location / "osversions.json").write_text(json.dumps({"CentOS 7.2": "centos72"}))
    assert operations_client.get(URL).json() == {"response": {"CentOS 7.2": "centos72"}}
    assert OsVersion.objects.get(pk=centos.pk).available is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        ("{oops", "is not valid JSON"),
        ("[]", "must hold a JSON object"),
        # A single bad entry (e.g. {"A": 7}) is skipped instead: tests/test_catalog_entries.py.
        (b"\xff\xfe", "is not valid JSON"),
    ],
)
def test_missing_or_malformed_file_is_a_500_alert_with_the_reason_logged(
    operations_client: Client,
    kickstart_location: Path,
    caplog: pytest.LogCaptureFixture,
    content: str | bytes | None,
    reason: str,
) -> None:
    path = kickstart_location / "osversions.json"
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with caplog.at_level(logging.ERROR):
        response = operations_client.get(URL)
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
    assert reason in caplog.text


@pytest.mark.django_db
def test_unsafe_directories_are_skipped(operations_client: Client, kickstart_location: Path) -> None:
    (kickstart_location / "osversions.json").write_text(
        json.dumps({"Good": "centos72", "Abs": "/etc", "Up": "../outside", "Dot": "a/./b", "Empty": ""})
    )
    assert operations_client.get(URL).json() == {"response": {"Good": "centos72"}}


def test_resolve_source_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "escape").symlink_to("/etc")
    assert resolve_source("inside", tmp_path) == (tmp_path / "inside").resolve()
    for bad in ("/etc", "../x", "escape", "missing", "inside/../../x"):
        with pytest.raises(CatalogError):
            resolve_source(bad, tmp_path)


def test_read_catalog_file_keeps_nested_directories(tmp_path: Path) -> None:
    (tmp_path / "osversions.json").write_text(json.dumps({"Rocky 8.9": "rocky/8.9"}))
    assert read_catalog_file(tmp_path) == {"Rocky 8.9": "rocky/8.9"}


@pytest.mark.django_db
def test_sync_writes_nothing_when_unchanged(
    kickstart_location: Path, django_assert_num_queries: object
) -> None:
    sync_catalog()

    with CaptureQueriesContext(connection) as queries:
        sync_catalog()
    writes = [
        q
        for q in queries.captured_queries
        if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))
    ]
    assert writes == []
