"""Every attempt is audited, even when something nobody foresaw raises on our side.

A bad setting or a bug (here: the ks_scripts renderer raising, or ``ROOT_PASSWORD_HASH``
set to a scheme the hashing does not know) must leave a ``failed`` record and its
``isos.requests`` line, with the reason there and in the log, never in the answer: the
API's usual 500 alert, the page's apology, exit status 1 from ``manage.py generate_iso``.
The same holds for the three roads, which share one orchestration (isos.attempt).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from isos.models import IsoBuild
from portal.trafficops.alerts import INTERNAL_ERROR_TEXT
from tests.support.api import ISOS_URL, STATIC_COMMAND_OPTIONS, post_json, static_request

SECRET = "Unforeseen-Walrus-4412"  # distinctive, to grep for
PAGE_URL = "/isos/generate/"
COMMAND_OPTIONS = ["--user=op", "--root-pass-env=ISO_TEST_ROOT_PASS", *STATIC_COMMAND_OPTIONS]


@pytest.fixture
def broken_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ks_scripts renderer raises, quoting the password as a careless error might."""

    def render(iso_request: Any, *args: Any) -> dict[str, bytes]:
        raise RuntimeError(f"renderer broke on {iso_request.root_pass}")

    monkeypatch.setattr("isos.generation.render_ks_scripts", render)


def page_data() -> dict[str, str]:
    """What the browser posts for the docs/api.md example (the DHCP switch off, so absent)."""
    data = {key: str(value) for key, value in static_request(rootPass=SECRET).items() if key != "dhcp"}
    return {**data, "confirmRootPass": SECRET}


def run_command(output: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """generate_iso's exit status and stderr."""
    monkeypatch.setenv("ISO_TEST_ROOT_PASS", SECRET)
    err = io.StringIO()
    try:
        call_command("generate_iso", *COMMAND_OPTIONS, f"--output={output}", stdout=io.StringIO(), stderr=err)
    except SystemExit as exit:
        return int(exit.code or 0), err.getvalue()
    return 0, err.getvalue()


def assert_failed_and_audited(caplog: pytest.LogCaptureFixture, reason: str, *answers: str) -> None:
    """One failed record with the reason, its request line, and no password anywhere."""
    record = IsoBuild.objects.get()
    assert record.outcome == "failed"
    assert reason in record.detail
    assert (record.fqdn, record.osversion_dir) == ("test.quest", "centos72")
    [line] = [r.getMessage() for r in caplog.records if r.name == "isos.requests"]
    assert "outcome=failed" in line and "fqdn=test.quest" in line
    assert reason in caplog.text
    for answer in answers:
        assert reason not in answer and "Traceback" not in answer
    assert SECRET not in caplog.text + record.detail + str(record.request_settings) + "".join(answers)


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_renderer")
def test_api_answers_500_and_audits_a_renderer_bug(
    operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = post_json(operations_client, ISOS_URL, static_request(rootPass=SECRET))
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"level": "error", "text": INTERNAL_ERROR_TEXT}]}
    assert_failed_and_audited(caplog, "RuntimeError: renderer broke on", response.content.decode())


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_renderer")
def test_page_apologises_and_audits_a_renderer_bug(
    operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = operations_client.post(PAGE_URL, page_data())
    assert response.status_code == 500
    page = response.content.decode()
    assert "problem on our side" in page and 'value="test"' in page
    assert_failed_and_audited(caplog, "RuntimeError: renderer broke on", page)


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_renderer")
def test_command_exits_1_and_audits_a_renderer_bug(
    operator: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        status, err = run_command(tmp_path / "host.iso", monkeypatch)
    assert status == 1
    assert "could not be made" in err
    assert not list(tmp_path.glob("host.iso*"))
    assert_failed_and_audited(caplog, "RuntimeError: renderer broke on", err)


@pytest.mark.django_db
def test_an_unknown_password_hash_setting_is_a_failed_attempt_on_every_road(
    operations_client: Client,
    operator: User,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ROOT_PASSWORD_HASH=sha256 once made every POST isos a 500 with no record at all."""
    settings.ROOT_PASSWORD_HASH = "sha256"
    with caplog.at_level(logging.INFO):
        api = post_json(operations_client, ISOS_URL, static_request(rootPass=SECRET))
        page = operations_client.post(PAGE_URL, page_data())
        status, _ = run_command(tmp_path / "host.iso", monkeypatch)
    assert (api.status_code, page.status_code, status) == (500, 500, 1)
    records = IsoBuild.objects.order_by("id")
    assert [record.outcome for record in records] == ["failed"] * 3
    assert all("unknown root password hash scheme" in record.detail for record in records)
    assert [record.username for record in records] == ["operations", "operations", "op"]
    assert SECRET not in caplog.text


@pytest.mark.django_db
def test_an_unexpected_error_before_the_rules_is_audited_too(
    operations_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside the build steps (here: reading the OS versions), the road's guard records it."""

    def broken_catalog(user: Any) -> dict[str, str]:
        raise KeyError("osversions")

    monkeypatch.setattr("isos.generation.usable_catalog", broken_catalog)
    with caplog.at_level(logging.INFO):
        api = post_json(operations_client, ISOS_URL, static_request(rootPass=SECRET))
        page = operations_client.post(PAGE_URL, page_data())
    assert (api.status_code, page.status_code) == (500, 500)
    assert "problem on our side" in page.content.decode()
    records = IsoBuild.objects.order_by("id")
    assert [(record.outcome, record.detail) for record in records] == [
        ("failed", "unexpected error: KeyError: 'osversions'")
    ] * 2
    assert SECRET not in caplog.text
