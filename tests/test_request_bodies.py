"""Request bodies: nesting, size, type, framing and origin, on every route that reads one.

What an outside attack found, each reproduced here, then the same class of hole looked for
on every route that reads a body: the API's four routes under every version, the
browsable API's form, the login page, the Generate ISO page, logout (page and API) and the
admin. A client's mistake is never a 500 nor a traceback in the log: an alert on the API,
a page elsewhere (docs/api.md, "Request bodies").
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.http import multipartparser
from django.test import Client

from isos.models import IsoBuild
from portal.trafficops.json_body import MAX_JSON_DEPTH, json_nesting_problem
from tests.support.api import PASSWORD, close_response, static_request
from tests.support.isoread import ks_script
from tests.support.serving import serve_portal

VERSIONS = ["3.0", "4.0", "4.1", "5.0"]
LIMIT = 64 * 1024  # REQUEST_BODY_MAX_KB's default
NESTING_TEXT = f"decoding: the JSON nests deeper than {MAX_JSON_DEPTH} levels"
TOO_LARGE_TEXT = f"the request body is too large: at most {LIMIT} bytes"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=xyz"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The pages that read a body (each a form posted url-encoded).
PAGES = ["/login/", "/logout/", "/isos/generate/", "/admin/login/", "/admin/auth/user/add/"]


def nested(depth: int) -> str:
    """``{"u": [[...]], "p": "x"}`` with ``depth`` levels in all (the object counts)."""
    return '{"u": ' + "[" * (depth - 1) + "]" * (depth - 1) + ', "p": "x"}'


def multipart_body(size: int) -> bytes:
    return (
        b'--xyz\r\nContent-Disposition: form-data; name="u"; filename="f.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * size + b"\r\n--xyz--\r\n"
    )


def alert(response: Any, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert len(body["alerts"]) == 1 and body["alerts"][0]["level"] == "error"
    return str(body["alerts"][0]["text"])


def page(response: Any, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert "Traceback" not in text and "<h1>" in text
    return text


@pytest.fixture
def no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing at ERROR (Django's 500s and its security log of a 400 carry a traceback)."""
    with caplog.at_level(logging.INFO):
        yield
    loud = [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    assert not loud, [record.getMessage() for record in loud]


@pytest.fixture
def no_multipart_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's multipart parser (the one that spools files to disk) must never run."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a multipart body was parsed")

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", refuse)


@pytest.fixture
def op(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    client = Client()
    client.force_login(make_user("op", "operations"))
    return client


# --- 1. Nesting: a 400 alert before anything recurses -----------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 30_000])
@pytest.mark.django_db
def test_deeply_nested_login_is_a_400_alert(version: str, depth: int, no_error_logged: None) -> None:
    """Anonymous: ~1 KB of brackets used to answer 500 with a 240 KB traceback."""
    response = Client().post(f"/api/{version}/user/login", nested(depth), content_type="application/json")
    assert alert(response, 400) == NESTING_TEXT


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 30_000])
def test_deeply_nested_iso_request_is_a_400_alert(
    op: Client, version: str, depth: int, no_error_logged: None
) -> None:
    body = '{"hostName": ' + "{" * depth + "}" * depth + "}"
    response = op.post(f"/api/{version}/isos", body, content_type="application/json")
    assert alert(response, 400) == NESTING_TEXT
    assert IsoBuild.objects.get().detail == NESTING_TEXT


@pytest.mark.django_db
def test_nesting_up_to_the_limit_is_decoded(make_user: Callable[..., User]) -> None:
    response = Client().post("/api/5.0/user/login", nested(MAX_JSON_DEPTH), content_type="application/json")
    assert alert(response, 400) == "username and password are required"


@pytest.mark.django_db
def test_brackets_inside_strings_do_not_count(make_user: Callable[..., User]) -> None:
    make_user("[[[", "operations")
    body = json.dumps({"u": "[[[", "p": PASSWORD, "x": '\\"' + "[{" * 100 + '"'})
    response = Client().post("/api/5.0/user/login", body, content_type="application/json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b"[" * 33, True),
        (b"[" * 32 + b"]" * 32, False),
        (b'{"a": "' + b"[" * 100 + b'"}', False),
        (b'{"a": "\\"' + b"[" * 100 + b'"}', False),
        (b'{"a": "\\\\"' + b"[" * 33, True),  # the string ended at \\", the brackets count
        (b"[]" * 10_000, False),
    ],
)
def test_the_nesting_scan(body: bytes, refused: bool) -> None:
    assert (json_nesting_problem(body) is not None) is refused


@pytest.mark.parametrize(
    "body", [b'"' + b'\\"' * 32_000, b'"' + b'a\\"' * 21_000 + b"\\", b'"' * LIMIT, b"[" * LIMIT]
)
def test_the_nesting_scan_is_linear(body: bytes) -> None:
    """Unterminated strings full of escaped quotes: a scan that retried at each quote took 20 s."""
    started = time.perf_counter()
    json_nesting_problem(body)
    assert time.perf_counter() - started < 0.5


# --- 2. Media types: only what each route documents; multipart never parsed ------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("content_type", [MULTIPART, "text/plain", "application/xml", ""])
@pytest.mark.django_db
def test_login_reads_only_json_and_forms(
    version: str, content_type: str, no_multipart_parsing: None, no_error_logged: None
) -> None:
    response = Client().post(f"/api/{version}/user/login", multipart_body(10_000), content_type=content_type)
    media_type = content_type.split(";")[0]
    assert (
        alert(response, 415) == f'unsupported media type "{media_type}": send Content-Type: application/json'
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("content_type", [MULTIPART, "text/plain", ""])
def test_isos_reads_only_json_and_forms(
    op: Client, version: str, content_type: str, no_multipart_parsing: None, no_error_logged: None
) -> None:
    response = op.post(f"/api/{version}/isos", multipart_body(1000), content_type=content_type)
    assert alert(response, 415).startswith("unsupported media type")
    assert not IsoBuild.objects.filter(outcome__in=["streaming", "built"]).exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_logout_with_a_multipart_body_is_refused_unread(
    op: Client, version: str, no_multipart_parsing: None
) -> None:
    response = op.post(f"/api/{version}/user/logout", multipart_body(1000), content_type=MULTIPART)
    assert alert(response, 415).startswith("unsupported media type")
    response = op.generic("POST", f"/api/{version}/user/logout")  # no body, no type: Traffic Ops clients
    assert response.status_code == 200


def test_the_browsable_api_form_posts_url_encoded_and_works(op: Client, no_multipart_parsing: None) -> None:
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT=HTML)
    browser.cookies = op.cookies
    form_page = browser.get("/api/5.0/isos").content.decode()
    assert 'enctype="multipart/form-data"' not in form_page
    assert f'enctype="{FORM}"' in form_page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page)
    assert token
    body = urlencode({**static_request(), "csrfmiddlewaretoken": token.group(1)})
    response = browser.post("/api/5.0/isos", body, content_type=FORM)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/download"
    close_response(response)


def test_the_schema_offers_no_multipart_and_lists_413_and_415(op: Client) -> None:
    schema = op.get("/api/schema/?format=json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert "multipart/form-data" not in operation.get("requestBody", {}).get("content", {}), path
            if method == "post":
                assert {"413", "415"} <= set(operation["responses"]), (path, method)


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("content_type", [MULTIPART, "application/json", "text/plain"])
def test_pages_read_only_url_encoded_forms(
    op: Client, path: str, content_type: str, no_multipart_parsing: None, no_error_logged: None
) -> None:
    response = op.post(path, multipart_body(1000), content_type=content_type)
    assert "unsupported media type" in page(response, 415)


# --- 3. Size: 413 before reading; Django's refusals never a 500 ------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("route", ["user/login", "user/logout", "isos", "osversions"])
def test_api_bodies_over_the_limit_are_413_before_reading(
    op: Client, version: str, route: str, no_error_logged: None
) -> None:
    """Content-Length alone decides: the 2 bytes sent are never read (the header says 1 GB)."""
    method = "GET" if route == "osversions" else "POST"
    response = op.generic(
        method, f"/api/{version}/{route}", "{}", content_type="application/json", CONTENT_LENGTH=str(10**9)
    )
    assert alert(response, 413) == TOO_LARGE_TEXT


@pytest.mark.parametrize("route", ["user/login", "isos"])
@pytest.mark.parametrize("size", [LIMIT + 1, 3 * 1024 * 1024])
def test_api_bodies_over_the_limit_really_sent(
    op: Client, route: str, size: int, no_error_logged: None
) -> None:
    """3 MB used to be Django's RequestDataTooBig: a 500 and a traceback."""
    body = json.dumps({"u": "x" * size, "p": "y"})
    response = op.post(f"/api/5.0/{route}", body, content_type="application/json")
    assert alert(response, 413) == TOO_LARGE_TEXT


@pytest.mark.parametrize("path", PAGES)
def test_page_bodies_over_the_limit_are_a_413_page(op: Client, path: str, no_error_logged: None) -> None:
    response = op.post(path, "username=" + "x" * (3 * 1024 * 1024), content_type=FORM)
    assert "at most 65536 bytes" in page(response, 413)


def test_the_limit_is_the_setting(op: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = op.post("/api/5.0/isos", json.dumps(static_request()), content_type="application/json")
    assert alert(response, 413) == "the request body is too large: at most 100 bytes"


@pytest.mark.parametrize("path", PAGES)
def test_pages_with_too_many_fields_are_a_400_page(op: Client, path: str, no_error_logged: None) -> None:
    response = op.post(path, "&".join(f"f{n}=1" for n in range(1001)), content_type=FORM)
    assert "more than 1000 fields" in page(response, 400)


@pytest.mark.parametrize("route", ["user/login", "isos"])
def test_api_forms_with_too_many_fields_are_a_400_alert(
    op: Client, route: str, no_error_logged: None
) -> None:
    response = op.post(f"/api/5.0/{route}", "&".join(f"f{n}=1" for n in range(1001)), content_type=FORM)
    assert alert(response, 400) == "decoding: the request body has more than 1000 fields"


@pytest.mark.parametrize("route", ["user/login", "isos"])
def test_json_that_is_not_utf8_is_a_400_alert(op: Client, route: str, no_error_logged: None) -> None:
    response = op.post(f"/api/5.0/{route}", b'{"u": "\xff\xfe", "p": "x"}', content_type="application/json")
    assert alert(response, 400) == "decoding: the request body is not valid UTF-8"


@pytest.mark.parametrize(
    "body",
    [b"username=%ff%fe&password=%zz%", b"\xff\xfe=\xc3", b"%%%%&&&===", b"username=a%00b&password=x"],
)
@pytest.mark.parametrize("path", ["/login/", "/api/5.0/user/login", "/api/5.0/isos", "/isos/generate/"])
def test_form_bodies_that_are_not_utf8_or_badly_escaped_are_never_a_500(
    op: Client, path: str, body: bytes, no_error_logged: None
) -> None:
    response = op.post(path, body, content_type=FORM)
    assert response.status_code in {200, 302, 400, 401, 403}, (response.status_code, response.content[:300])


@pytest.mark.parametrize("path", ["/login/", "/isos/generate/"])
def test_forms_in_another_charset_are_a_400_page(op: Client, path: str, no_error_logged: None) -> None:
    """Django 5.2 refuses url-encoded forms that are not UTF-8 (BadRequest): a page, quietly."""
    response = op.post(path, "username=\u00e9", content_type=f"{FORM}; charset=latin-1")
    page(response, 400)


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "b" * 300],
)
@pytest.mark.parametrize("path", ["/api/5.0/user/login", "/api/5.0/isos", "/login/"])
def test_bad_multipart_boundaries_are_refused_unparsed(
    op: Client, path: str, content_type: str, no_multipart_parsing: None, no_error_logged: None
) -> None:
    response = op.post(path, b"--x\r\n\r\n", content_type=content_type)
    assert response.status_code == 415


@pytest.mark.parametrize("path", ["/api/5.0/user/login", "/login/"])
def test_a_content_length_that_is_not_a_number_is_a_400(op: Client, path: str, no_error_logged: None) -> None:
    response = op.post(path, "{}", content_type="application/json", CONTENT_LENGTH="12abc")
    assert response.status_code == 400


@pytest.mark.parametrize("body", ['{"u": 1' + "0" * 5000 + ', "p": "x"}', '{"u": NaN, "p": "x"}'])
@pytest.mark.django_db
def test_json_numbers_python_refuses_are_a_400(body: str, no_error_logged: None) -> None:
    response = Client().post("/api/5.0/user/login", body, content_type="application/json")
    assert alert(response, 400).startswith("decoding: ")


@pytest.mark.django_db
def test_djangos_own_400_is_a_page_or_an_alert(no_error_logged: None, settings: Any) -> None:
    """handler400: a Host the portal does not serve, on a page and on the API."""
    settings.ALLOWED_HOSTS = ["testserver"]
    page(Client().get("/login/", HTTP_HOST="evil.example"), 400)
    assert alert(Client().get("/api/5.0/osversions", HTTP_HOST="evil.example"), 400) == "bad request"


# --- 4. Bodies without a Content-Length (chunked) ---------------------------------------


def chunked(client: Client, path: str, body: bytes, content_type: str, **extra: Any) -> Any:
    """What gunicorn hands over for a chunked body: no Content-Length, the body dechunked."""
    return client.post(
        path,
        body,
        content_type=content_type,
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
        **extra,
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.django_db
def test_chunked_login_is_read(make_user: Callable[..., User], version: str) -> None:
    make_user("someone", "operations")
    body = json.dumps({"u": "someone", "p": PASSWORD}).encode()
    response = chunked(Client(), f"/api/{version}/user/login", body, "application/json")
    assert response.status_code == 200, response.content
    assert "mojolicious" in response.cookies


def test_chunked_iso_request_is_read(op: Client) -> None:
    response = chunked(op, "/api/5.0/isos", json.dumps(static_request()).encode(), "application/json")
    assert response.status_code == 200
    assert b'HOSTNAME="test.quest"' in ks_script(b"".join(response.streaming_content))


@pytest.mark.parametrize("path", ["/api/5.0/user/login", "/api/5.0/isos", "/login/"])
def test_chunked_bodies_over_the_limit_are_413(op: Client, path: str, no_error_logged: None) -> None:
    response = chunked(op, path, b"u=" + b"x" * LIMIT, FORM)
    assert response.status_code == 413


@pytest.mark.django_db
def test_chunked_body_a_server_did_not_dechunk_is_411(no_error_logged: None) -> None:
    response = Client().post(
        "/api/5.0/user/login",
        "{}",
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert alert(response, 411).startswith("a request body needs a Content-Length")


def send_chunked(base: str, path: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (in 1000-byte chunks), no Content-Length."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    chunks = [body[start : start + 1000] for start in range(0, len(body), 1000)]
    connection.request("POST", path, body=iter(chunks), headers=headers, encode_chunked=True)
    return connection.getresponse()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunked_bodies_under_gunicorn(operator: User, kickstart_location: Path, tmp_path: Path) -> None:
    """The real server: chunked login and POST isos work; over the limit, 413 while reading;
    a huge declared body is refused before it is read, and nothing is spooled to disk."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with serve_portal(
        kickstart_location, tmp_path / "gunicorn.log", workers=1, env={"TMPDIR": str(spool)}
    ) as server:
        login = json.dumps({"u": "op", "p": PASSWORD}).encode()
        response = send_chunked(
            server.url, "/api/5.0/user/login", login, {"Content-Type": "application/json"}
        )
        assert response.status == 200, response.read()
        response.read()
        cookies = [value.split(";")[0] for value in response.msg.get_all("Set-Cookie") or []]
        cookie = next(value for value in cookies if value.startswith("mojolicious="))

        iso_request = json.dumps(static_request()).encode()
        headers = {"Content-Type": "application/json", "Cookie": cookie}
        response = send_chunked(server.url, "/api/5.0/isos", iso_request, headers)
        assert response.status == 200
        iso = response.read()
        assert int(response.getheader("Content-Length", "0")) == len(iso) > 0
        assert b'HOSTNAME="test.quest"' in ks_script(iso)

        response = send_chunked(server.url, "/api/5.0/user/login", b"{" + b" " * (2 * LIMIT) + b"}", headers)
        assert response.status == 413
        assert json.loads(response.read())["alerts"][0]["text"] == TOO_LARGE_TEXT

        # 300 MB declared, multipart, anonymous: answered at once, from the headers alone.
        url = urlsplit(server.url)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        connection.putrequest("POST", "/api/5.0/user/login")
        connection.putheader("Content-Type", MULTIPART)
        connection.putheader("Content-Length", str(300 * 1024 * 1024))
        connection.endheaders(multipart_body(1000))
        response = connection.getresponse()
        assert response.status == 413
        connection.close()
        assert list(spool.iterdir()) == []
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


# --- 5. Origin: scheme, host and port, as Django's CSRF origin check --------------------


@pytest.mark.parametrize(
    ("origin", "extra", "allowed"),
    [
        ("http://testserver", {}, True),
        ("http://testserver:80", {}, True),
        ("https://testserver", {}, False),
        ("http://testserver:8080", {}, False),
        ("https://testserver:80", {}, False),
        ("null", {}, False),
        ("http://testserver.evil.example", {}, False),
        ("http://user@testserver", {}, False),
        ("http://testserver/path", {}, False),
        ("http://[::1", {}, False),
        ("https://testserver", {"HTTP_X_FORWARDED_PROTO": "https"}, True),
        ("http://testserver", {"HTTP_X_FORWARDED_PROTO": "https"}, False),
        ("https://portal.example.com", {}, True),
        ("https://portal.example.com:443", {}, True),
        ("http://portal.example.com", {}, False),
        ("https://portal.example.com:8443", {}, False),
        ("https://a.cdn.example", {}, True),
        ("http://a.cdn.example", {}, False),
        ("https://cdn.example.evil", {}, False),
    ],
)
@pytest.mark.parametrize("route", ["user/login", "isos", "user/logout"])
def test_origin_must_match_scheme_host_and_port(
    op: Client, settings: Any, route: str, origin: str, extra: dict[str, str], allowed: bool
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.com", "https://*.cdn.example"]
    body = {"u": "op", "p": PASSWORD} if route == "user/login" else static_request()
    response = op.post(
        f"/api/5.0/{route}",
        json.dumps(body),
        content_type="application/json",
        HTTP_HOST="testserver",  # as a browser sends it (without, Django makes one up with port 80)
        HTTP_ORIGIN=origin,
        **extra,
    )
    if allowed:
        assert response.status_code == 200, response.content[:300]
        if response.streaming:
            close_response(response)
    else:
        assert alert(response, 403) == f"CSRF Failed: origin {origin} is not allowed."
