"""The operator's tools: ``generate_iso``, ``sync_osversions``, ``/healthz``, the request log.

``generate_iso`` is run in-process through ``call_command`` (its exit status is the
``SystemExit`` it raises), so it writes into the test database like the API does.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.test import Client

from isos.management.commands.generate_iso import Command
from isos.models import IsoBuild
from osversions.models import OsVersion
from tests.support.api import STATIC_COMMAND_OPTIONS, close_response, post_json, request_lines, static_request
from tests.support.isoread import read_rr_files

SECRET = "Zebra-Quartz-7781-unlikely"  # distinctive, to grep for
EXPECTED_NETWORK_CFG = (
    b'IPADDR="1.3.3.7"\nNETMASK="255.255.255.255"\nGATEWAY="8.0.0.8"\nDEVICE="eth0"\nMTU="1500"\n'
    b'NAMESERVER="8.8.8.8,8.8.4.4"\nHOSTNAME="test.quest"\nNETWORKING_IPV6="yes"\n'
    b'IPV6ADDR="1::3:3:7"\nIPV6_DEFAULTGW="8::8"\nDHCP="no"'
)
LOG_FIELDS = [
    "build",
    "user",
    "fqdn",
    "osversion_dir",
    "outcome",
    "bytes_sent",
    "iso_size",
    "duration_ms",
    "client",
]


def generate(*args: str) -> tuple[int, str, str]:
    """Run generate_iso; its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("generate_iso", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return int(exit.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def written_files(folder: Path) -> list[str]:
    """What a command left in ``folder`` (the kickstart files location aside)."""
    return [path.name for path in folder.iterdir() if path.name != "kickstart"]


def assert_no_secret(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    assert SECRET not in caplog.text
    for text in texts:
        assert SECRET not in text
    for build in IsoBuild.objects.all():
        assert SECRET not in json.dumps([build.detail, build.request_settings])


@pytest.fixture
def secret_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET + "\n"))


# --- generate_iso --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_generate_iso_writes_the_requests_iso(
    operator: User, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "host.iso"
    with caplog.at_level(logging.INFO):
        status, out, err = generate(
            "--user=op", "--root-pass-stdin", f"--output={output}", *STATIC_COMMAND_OPTIONS
        )
    assert status == 0, err
    files = read_rr_files(output)
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert files["ks_scripts/password.cfg"].startswith(b"rootpw --iscrypted $6$")
    assert not output.with_name("host.iso.part").exists()
    assert output.stat().st_mode & 0o077 == 0  # it holds the password's hash
    build = IsoBuild.objects.get()
    assert (build.outcome, build.username, build.fqdn) == ("built", "op", "test.quest")
    assert build.bytes_sent == build.iso_size == output.stat().st_size
    assert_no_secret(caplog, out, err)
    [line] = request_lines(caplog)
    assert (line["user"], line["outcome"], line["client"]) == ("op", "built", "-")


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_generate_iso_killed_leaves_no_part_file_and_closes_its_record(
    operator: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the ISO is written: no FILE.part left, the record closed, exit 143."""
    write_to = Command._write_to

    def terminated_mid_write(self: Command, stream: Any, file: Any) -> None:
        assert output.with_name("host.iso.part").exists()
        signal.raise_signal(signal.SIGTERM)
        write_to(self, stream, file)

    monkeypatch.setattr(Command, "_write_to", terminated_mid_write)
    output = tmp_path / "host.iso"
    handler = signal.getsignal(signal.SIGTERM)
    status, _, _ = generate("--user=op", "--root-pass-stdin", f"--output={output}", *STATIC_COMMAND_OPTIONS)
    assert status == 143
    assert written_files(tmp_path) == []
    assert IsoBuild.objects.get().outcome != IsoBuild.Outcome.STREAMING
    assert signal.getsignal(signal.SIGTERM) == handler  # put back


@pytest.mark.django_db
def test_generate_iso_takes_the_password_from_an_env_var(
    operator: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ISO_ROOT_PASS", SECRET)
    output = tmp_path / "host.iso"
    with caplog.at_level(logging.INFO):
        status, out, err = generate(
            "--user=op", "--root-pass-env=ISO_ROOT_PASS", f"--output={output}", *STATIC_COMMAND_OPTIONS
        )
    assert status == 0, err
    assert read_rr_files(output)["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert_no_secret(caplog, out, err)


@pytest.mark.django_db
def test_generate_iso_prompts_for_the_password(
    operator: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([SECRET, SECRET])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    output = tmp_path / "host.iso"
    status, _, err = generate("--user=op", f"--output={output}", *STATIC_COMMAND_OPTIONS)
    assert status == 0, err
    assert output.exists()

    answers = iter([SECRET, "something else"])
    status, _, err = generate("--user=op", f"--output={tmp_path / 'other.iso'}", *STATIC_COMMAND_OPTIONS)
    assert (status, err.strip()) == (2, "the two root passwords differ")


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_generate_iso_to_stdout(
    operator: User, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status, _, err = generate("--user=op", "--root-pass-stdin", "--output=-", *STATIC_COMMAND_OPTIONS)
    assert status == 0, err
    written = capsysbinary.readouterr().out
    assert len(written) == IsoBuild.objects.get().iso_size
    (tmp_path / "from-stdout.iso").write_bytes(written)
    assert read_rr_files(tmp_path / "from-stdout.iso")["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert SECRET.encode() not in written


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_a_refusal_prints_the_apis_alert_and_writes_nothing(
    operator: User, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "host.iso"
    options = [o for o in STATIC_COMMAND_OPTIONS if not o.startswith("--ip-gateway")]
    with caplog.at_level(logging.INFO):
        status, out, err = generate(
            "--user=op", "--root-pass-stdin", f"--output={output}", *options, "--interface-mtu=80"
        )
    assert status == 2
    assert err.strip() == (
        "validating: ipGateway is required if DHCP is no, "
        "interfaceMtu must be between 1280 and 9216 (1500 is the norm, 9000 for jumbo frames)"
    )
    assert written_files(tmp_path) == []
    build = IsoBuild.objects.get()
    assert (build.outcome, build.username) == ("refused", "op")
    assert_no_secret(caplog, out, err)
    [line] = request_lines(caplog)
    assert (line["outcome"], line["bytes_sent"], line["iso_size"]) == ("refused", "0", "-")


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_the_named_users_permissions_and_os_versions_apply(
    make_user: Callable[..., User], kickstart_location: Path, tmp_path: Path
) -> None:
    make_user("reader", "read-only")
    status, _, err = generate(
        "--user=reader", "--root-pass-stdin", f"--output={tmp_path / 'a.iso'}", *STATIC_COMMAND_OPTIONS
    )
    assert (status, err.strip()) == (2, "missing required Permissions: ISO:GENERATE")
    status, _, err = generate(
        "--user=nobody", "--root-pass-stdin", f"--output={tmp_path / 'a.iso'}", *STATIC_COMMAND_OPTIONS
    )
    assert (status, err.strip()) == (2, "no active user named 'nobody'")
    assert written_files(tmp_path) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_an_unknown_os_version_is_refused(operator: User, tmp_path: Path) -> None:
    options = [o for o in STATIC_COMMAND_OPTIONS if not o.startswith("--osversion-dir")]
    status, _, err = generate(
        "--user=op",
        "--root-pass-stdin",
        f"--output={tmp_path / 'a.iso'}",
        "--osversion-dir=../etc",
        *options,
    )
    assert (status, err.strip()) == (2, 'invalid OS version directory: "../etc"')


@pytest.mark.django_db
@pytest.mark.usefixtures("secret_on_stdin")
def test_a_failure_on_our_side_exits_1_without_a_file(
    operator: User, kickstart_location: Path, tmp_path: Path
) -> None:
    (kickstart_location / "osversions.json").write_text("{not json")
    status, _, err = generate(
        "--user=op", "--root-pass-stdin", f"--output={tmp_path / 'a.iso'}", *STATIC_COMMAND_OPTIONS
    )
    assert status == 1
    assert "could not be made" in err
    assert "Traceback" not in err
    assert written_files(tmp_path) == []
    assert IsoBuild.objects.get().outcome == "failed"


@pytest.mark.django_db
def test_a_write_error_fails_the_record_and_leaves_no_part_file(
    operator: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET + "\n"))
    full = tmp_path / "full"
    full.mkdir()

    # /dev/full answers every write with ENOSPC: a disk that fills up mid-ISO.
    def full_disk(descriptor: int, mode: str) -> Any:
        os.close(descriptor)
        return open("/dev/full", mode, buffering=0)  # closed by the command

    monkeypatch.setattr("isos.management.commands.generate_iso.os.fdopen", full_disk)
    status, _, err = generate(
        "--user=op", "--root-pass-stdin", f"--output={full / 'a.iso'}", *STATIC_COMMAND_OPTIONS
    )
    assert (status, err.strip()) == (1, "cannot write the ISO: No space left on device")
    assert list(full.iterdir()) == []
    build = IsoBuild.objects.get()
    assert build.outcome == "failed" and "No space left" in build.detail


def test_the_password_is_no_option() -> None:
    with pytest.raises(CommandError, match="unrecognized arguments"):
        call_command("generate_iso", "--user=op", "--output=x", "--rootpass=secret")


# --- sync_osversions -----------------------------------------------------------------


@pytest.mark.django_db
def test_sync_osversions_says_what_changed(kickstart_location: Path) -> None:
    out = io.StringIO()
    call_command("sync_osversions", stdout=out)
    assert out.getvalue().splitlines() == [
        "added: CentOS 7.2",
        "added: Rocky Linux 8",
        "2 added, 0 updated, 0 marked unavailable",
    ]
    (kickstart_location / "osversions.json").write_text(
        json.dumps({"Rocky Linux 8": "rocky/8.9", "Alma 9": "alma9"})
    )
    out = io.StringIO()
    call_command("sync_osversions", stdout=out)
    assert out.getvalue().splitlines() == [
        "added: Alma 9",
        "updated: Rocky Linux 8",
        "marked unavailable: CentOS 7.2",
        "1 added, 1 updated, 1 marked unavailable",
    ]
    assert OsVersion.objects.get(name="Rocky Linux 8").directory == "rocky/8.9"
    out = io.StringIO()
    call_command("sync_osversions", stdout=out)
    assert out.getvalue().splitlines() == ["0 added, 0 updated, 0 marked unavailable"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read"), ("[1, 2]", "must hold a JSON object"), ("{", "not valid JSON")],
)
def test_sync_osversions_fails_on_an_unusable_file(
    kickstart_location: Path, content: str | None, reason: str
) -> None:
    catalog = kickstart_location / "osversions.json"
    if content is None:
        catalog.unlink()
    else:
        catalog.write_text(content)
    with pytest.raises(CommandError, match=reason) as raised:
        call_command("sync_osversions", stdout=io.StringIO())
    assert raised.value.returncode == 1
    assert not OsVersion.objects.exists()


# --- /healthz ------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_ok_without_login(kickstart_location: Path) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "osversions": "ok"}}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_names_a_broken_catalog(kickstart_location: Path) -> None:
    (kickstart_location / "osversions.json").write_text("{broken")
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "failing",
        "checks": {"database": "ok", "osversions": "failing"},
        "failing": ["osversions"],
    }
    assert str(kickstart_location) not in response.content.decode()


@pytest.mark.django_db
def test_healthz_names_a_database_that_does_not_answer(
    kickstart_location: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreachable:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    monkeypatch.setattr("portal.health.connection", Unreachable())
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


# --- the isos.requests log line ------------------------------------------------------


@pytest.mark.django_db
def test_one_log_line_per_api_attempt_without_the_password(
    operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = post_json(operations_client, "/api/5.0/isos", static_request(rootPass=SECRET))
        data = b"".join(response.streaming_content)
        refused = post_json(operations_client, "/api/5.0/isos", static_request(rootPass=SECRET, dhcp="maybe"))
        cut = post_json(operations_client, "/api/5.0/isos", static_request(rootPass=SECRET))
        next(iter(cut.streaming_content))
        close_response(cut)
    assert refused.status_code == 400
    built, refusal, went_away = request_lines(caplog)
    for line in (built, refusal, went_away):
        assert list(line) == LOG_FIELDS
        assert (line["user"], line["client"]) == ("operations", "127.0.0.1")
        assert int(line["duration_ms"]) >= 0
    assert built["outcome"] == "built"
    assert (built["fqdn"], built["osversion_dir"]) == ("test.quest", "centos72")
    assert int(built["bytes_sent"]) == int(built["iso_size"]) == len(data)
    assert (refusal["outcome"], refusal["bytes_sent"], refusal["iso_size"]) == ("refused", "0", "-")
    assert went_away["outcome"] == "client_went_away"
    assert 0 < int(went_away["bytes_sent"]) < int(went_away["iso_size"])
    assert_no_secret(caplog)


@pytest.mark.django_db
def test_log_values_with_spaces_are_quoted(
    operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        post_json(operations_client, "/api/5.0/isos", static_request(osversionDir="no such dir"))
    [record] = [r for r in caplog.records if r.name == "isos.requests"]
    assert 'osversion_dir="no such dir"' in record.getMessage()
    assert request_lines(caplog)[0]["osversion_dir"] == "no such dir"
