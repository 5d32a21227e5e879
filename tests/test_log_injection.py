"""No client text can end a log line and forge another (docs/operations.md, "Request log").

A refused request with ``osversionDir`` or ``hostName`` holding a newline once wrote a
forged ``isos.requests`` line through the ``isos.audit`` logger. Here every kind of line
break goes, after a forged line, into every kind of client text the portal logs: request
fields (API, page, command), refusal reasons, usernames (API login, web login, the
request line), paths, osversions.json names, the messages of exceptions (a failure on our
side, an unhandled error, a stream that broke), and each log record must stay one line (a
traceback keeps its frames' lines, but never a line of the client's).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils.module_loading import import_string

from isos.audit import AuditedStream
from isos.models import IsoBuild
from osversions.catalog import CatalogError
from portal.trafficops.log_text import log_text, log_traceback, log_value
from tests.support.api import (
    PASSWORD,
    STATIC_COMMAND_OPTIONS,
    close_response,
    post_json,
    request_lines,
    static_request,
)

URL = "/api/5.0/isos"
PAGE_URL = "/isos/generate/"
# What a forger would want a line to look like: a request line of a build that never was.
FORGED = "2026-11-30 06:00:00,000 INFO isos.requests build=9 user=admin fqdn=forged.example outcome=built"
# Everything str.splitlines() (and so most log readers) takes for the end of a line.
BREAKS = {
    "LF": "\n",
    "CR": "\r",
    "CRLF": "\r\n",
    "VT": "\v",
    "FF": "\f",
    "FS": "\x1c",
    "GS": "\x1d",
    "RS": "\x1e",
    "NEL": "\x85",
    "LS": "\u2028",
    "PS": "\u2029",
}
TRACEBACK = "Traceback (most recent call last):"
ROOT_PASSWORD = "Wombat-Zither-4417-never-logged"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, Django's own loggers (which do not propagate) included."""
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG):
            yield caplog
    finally:
        django_logger.removeHandler(caplog.handler)


def forged(prefix: str, line_break: str) -> str:
    return f"{prefix}{line_break}{FORGED}"


def assert_one_line_each(caplog: pytest.LogCaptureFixture, *, expect: str = "") -> None:
    """Each record is one line (a traceback: only its own lines), and no line is forged."""
    assert caplog.records, "nothing was logged"
    for record in caplog.records:
        message = record.getMessage()
        lines = message.splitlines()
        if TRACEBACK in message:
            assert all(not line.lstrip().startswith(FORGED[:20]) for line in lines), message
        else:
            assert len(lines) == 1 and lines[0] == message, (record.name, message)
        assert ROOT_PASSWORD not in message
    for line in caplog.text.splitlines():
        assert not line.startswith(FORGED[:20]), caplog.text
    assert ROOT_PASSWORD not in caplog.text
    if expect:
        assert any(expect in record.getMessage() for record in caplog.records), caplog.text


# ---- the helper ---------------------------------------------------------------------------


@pytest.mark.parametrize("line_break", BREAKS.values(), ids=BREAKS.keys())
def test_the_helpers_keep_any_text_on_one_line_and_readable_back(line_break: str) -> None:
    text = forged("edge1", line_break)
    for written in (log_text(text), log_value(text)):
        assert written.splitlines() == [written] and written.isprintable()
        assert json.loads(written) == text
    assert log_text("edge1.cdn.example (centos72): refused") == "edge1.cdn.example (centos72): refused"
    assert log_value("edge1") == "edge1" and log_value("") == "-" and log_value("a b") == '"a b"'
    # The request line's old rule let a final newline through bare.
    assert log_value("edge1\n") == '"edge1\\n"'


def test_a_traceback_keeps_its_frames_and_each_message_on_one_line() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError(forged(ROOT_PASSWORD, "\n")) from inner
    except ValueError as error:
        trace = log_traceback(error, secret=ROOT_PASSWORD)
    lines = trace.splitlines()
    assert lines[0] == TRACEBACK and "The above exception was the direct cause" in trace
    assert lines[-1] == "ValueError: " + json.dumps(forged("[root password]", "\n"))
    assert ROOT_PASSWORD not in trace
    assert not any(line.startswith(FORGED[:20]) for line in lines)


# ---- request fields, through every road ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("line_break", BREAKS.values(), ids=BREAKS.keys())
@pytest.mark.parametrize("field", ["osversionDir", "hostName", "domainName", "disk", "ip6Address"])
def test_a_refused_api_request_logs_one_line_per_record(
    operations_client: Client, logs: pytest.LogCaptureFixture, field: str, line_break: str
) -> None:
    body = static_request(rootPass=ROOT_PASSWORD, **{field: forged("x", line_break)})
    response = post_json(operations_client, URL, body)
    assert response.status_code == 400
    assert_one_line_each(logs, expect="ISO build")
    [line] = request_lines(logs)
    assert line["outcome"] == "refused"
    if field == "osversionDir":
        assert line["osversion_dir"] == forged("x", line_break)  # read back exactly
    if field == "hostName":
        assert line["fqdn"] == forged("x", line_break) + ".quest"


@pytest.mark.django_db
def test_an_unknown_directory_quoted_in_the_refusal_stays_on_one_line(
    operations_client: Client, logs: pytest.LogCaptureFixture
) -> None:
    """The one refusal that quotes a value (Traffic Ops' own alert) is logged quoted."""
    directory = f"gone\u00a0{FORGED}"  # a no-break space: no rule's business, but not printable
    response = post_json(operations_client, URL, static_request(osversionDir=directory))
    assert response.json()["alerts"][0]["text"] == f'invalid OS version directory: "{directory}"'
    assert_one_line_each(logs, expect="invalid OS version directory")


@pytest.mark.django_db
@pytest.mark.parametrize("line_break", ["\n", "\r", "\u2028"])
def test_a_refused_page_form_logs_one_line_per_record(
    operations_client: Client, logs: pytest.LogCaptureFixture, line_break: str
) -> None:
    data = {k: str(v) for k, v in static_request(rootPass=ROOT_PASSWORD).items() if k != "dhcp"}
    data |= {
        "confirmRootPass": "other",
        "hostName": forged("x", line_break),
        "osversionDir": forged("c", line_break),
    }
    response = operations_client.post(
        PAGE_URL, urlencode(data), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert_one_line_each(logs, expect="ISO build")


@pytest.mark.django_db
@pytest.mark.parametrize("line_break", ["\n", "\r", "\x85"])
def test_a_refused_command_logs_one_line_per_record(
    operator: User,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    line_break: str,
) -> None:
    monkeypatch.setenv("ISO_ROOT_PASS", ROOT_PASSWORD)
    options = [o for o in STATIC_COMMAND_OPTIONS if not o.startswith("--host-name=")]
    with pytest.raises(SystemExit):
        call_command(
            "generate_iso",
            *options,
            f"--host-name={forged('x', line_break)}",
            "--user=op",
            "--root-pass-env=ISO_ROOT_PASS",
            f"--output={tmp_path / 'x.iso'}",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert_one_line_each(logs, expect="ISO build")


@pytest.mark.django_db
def test_a_username_with_a_line_break_stays_on_the_request_line(
    make_user: Callable[..., User], kickstart_location: Path, logs: pytest.LogCaptureFixture
) -> None:
    username = forged("evil", "\n")
    client = Client()
    client.force_login(make_user(username, "operations"))
    post_json(client, URL, static_request(hostName="-bad"))
    assert_one_line_each(logs, expect="ISO build")
    assert request_lines(logs)[0]["user"] == username


# ---- logins -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("line_break", BREAKS.values(), ids=BREAKS.keys())
def test_a_login_with_a_line_break_in_the_username_logs_one_line_per_record(
    logs: pytest.LogCaptureFixture, line_break: str
) -> None:
    username = forged("nobody", line_break)
    response = post_json(Client(), "/api/5.0/user/login", {"u": username, "p": "wrong"})
    assert response.status_code == 401
    form = urlencode({"username": username, "password": "wrong"})
    page = Client().post("/login/", form, content_type="application/x-www-form-urlencoded")
    assert page.status_code == 200
    assert_one_line_each(logs, expect="login refused for user")


@pytest.mark.django_db
def test_a_successful_login_of_an_odd_username_logs_one_line(
    make_user: Callable[..., User], logs: pytest.LogCaptureFixture
) -> None:
    username = forged("odd", "\r")
    make_user(username)
    response = post_json(Client(), "/api/5.0/user/login", {"u": username, "p": PASSWORD})
    assert response.status_code == 200
    assert_one_line_each(logs, expect="login of user")


# ---- paths --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/5.0/isos%0A", "/api/5.0/nothing%0D", "/isos/nothing%0A", "/x%E2%80%A8"]
)
def test_a_path_with_a_line_break_logs_one_line(
    operations_client: Client, logs: pytest.LogCaptureFixture, path: str
) -> None:
    response = operations_client.get(path + quote(FORGED))
    assert response.status_code == 404
    assert_one_line_each(logs)


# ---- osversions.json ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("line_break", ["\n", "\r", "\u2029"])
def test_osversions_json_names_with_line_breaks_log_one_line(
    operations_client: Client, kickstart_location: Path, logs: pytest.LogCaptureFixture, line_break: str
) -> None:
    """Entries skipped (an unsafe directory, a directory that is no string) or a file that
    cannot be used at all: whatever is logged of them, on every road, is one line each."""
    catalog = kickstart_location / "osversions.json"
    entries = [
        {"CentOS 7.2": "centos72", forged("Evil", line_break): "../etc"},
        {"CentOS 7.2": "centos72", forged("Broken", line_break): 7},
        {forged("Padded", line_break): forged(" centos72", line_break)},
        [forged("not an object", line_break)],
    ]
    for content in entries:
        catalog.write_text(json.dumps(content))
        assert operations_client.get("/api/5.0/osversions").status_code in {200, 500}
        assert operations_client.get(PAGE_URL).status_code in {200, 500}
        response = post_json(operations_client, URL, static_request())
        assert response.status_code in {200, 400, 500}
        if response.streaming:
            close_response(response)
    assert_one_line_each(logs, expect="Evil")


@pytest.mark.django_db
def test_a_source_failure_quoting_a_path_logs_one_line(
    operations_client: Client, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure before streaming (the reason names a source path) is logged on one line."""

    def unusable(directory: str) -> Any:
        raise CatalogError(
            f"source directory or .iso file /srv/{forged(directory, chr(0x2028))} does not exist"
        )

    monkeypatch.setattr("isos.generation.resolve_source", unusable)
    response = post_json(operations_client, URL, static_request())
    assert response.status_code == 500
    assert_one_line_each(logs, expect="failed before streaming")


# ---- exceptions that quote client text -----------------------------------------------------


@pytest.mark.django_db
def test_a_failure_on_our_side_quoting_the_request_logs_no_forged_line_and_no_password(
    operations_client: Client, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any, *args: Any) -> Any:
        raise ValueError(f"cannot render {request.root_pass}\n{FORGED}")

    monkeypatch.setattr("isos.generation.render_ks_scripts", broken)
    response = post_json(operations_client, URL, static_request(rootPass=ROOT_PASSWORD))
    assert response.status_code == 500
    assert_one_line_each(logs, expect="failed on our side")
    assert IsoBuild.objects.get().outcome == "failed"


@pytest.mark.django_db
def test_an_unhandled_error_quoting_client_text_logs_no_forged_line(
    operations_client: Client, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(user: Any) -> Any:
        raise RuntimeError(forged("boom", "\r\n"))

    monkeypatch.setattr("isos.api.usable_catalog", broken)
    response = operations_client.get("/api/5.0/osversions")
    assert response.status_code == 500
    assert_one_line_each(logs, expect="unhandled error")


class BreakingStream:
    """An IsoStream whose source breaks after one chunk, the error quoting a path."""

    size = 8

    def __iter__(self) -> Iterator[bytes]:
        yield b"1234"
        raise OSError(forged("/srv/kickstart/centos72/a", "\n"))

    def close(self) -> None:
        pass


@pytest.mark.django_db
def test_a_stream_that_breaks_logs_no_forged_line(logs: pytest.LogCaptureFixture) -> None:
    build = IsoBuild.objects.create(
        username="u",
        fqdn="edge1.cdn.example",
        osversion_dir=forged("dir", "\n"),
        outcome="streaming",
        iso_size=8,
    )
    stream = AuditedStream(BreakingStream(), build)
    with pytest.raises(OSError):
        list(stream)
    stream.close()
    assert_one_line_each(logs, expect="failed mid-stream")
    assert request_lines(logs)[0]["osversion_dir"] == forged("dir", "\n")


def test_the_log_formatter_keeps_a_records_traceback_messages_on_one_line() -> None:
    """Django's own request log attaches exc_info to a 500: the settings' formatter writes it."""
    plain: dict[str, str] = settings.LOGGING["formatters"]["plain"]  # type: ignore[index]
    formatter = import_string(plain["class"])(plain["format"])
    try:
        raise ValueError(forged("bad", "\n"))
    except ValueError:
        record = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/x",), sys.exc_info()
        )
    text = formatter.format(record)
    assert TRACEBACK in text
    assert not any(line.startswith(FORGED[:20]) for line in text.splitlines()), text
    assert text.splitlines()[-1] == "ValueError: " + json.dumps(forged("bad", "\n"))
