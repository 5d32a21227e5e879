"""Security as a client sees it: headers on every answer, the cookie, and no secret anywhere.

- Every kind of answer (page, API JSON, alert, ISO stream, health check, 404) carries the
  Content-Security-Policy and the other security headers.
- The session cookie is HttpOnly and SameSite=Lax, and Secure when the portal is reached
  over HTTPS through a proxy (gunicorn, X-Forwarded-Proto).
- A real browser opens every page, the admin, the browsable API and Swagger UI, and none of
  them trips the policy.
- After a run of logins, downloads, refusals, failures and error pages against gunicorn,
  none of the passwords used is in any answer, in the server's log or in any database table.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from osversions.catalog import sync_catalog
from osversions.models import OsVersion
from tests.support.api import PASSWORD, close_response, post_json, static_request
from tests.support.serving import serve_portal

ISOS = "/api/5.0/isos"
EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def assert_security_headers(headers: Any) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert headers[name] == value, name
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "unsafe-eval" not in policy


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/login/", 302),  # logged in already: a redirect
        ("get", "/isos/generate/", 200),
        ("get", "/isos/history/", 200),
        ("get", "/api/5.0/osversions", 200),
        ("get", "/api/schema/", 200),
        ("get", "/healthz", 200),
        ("get", "/api/5.0/nothing-here", 404),
        ("get", "/nothing-here/", 404),
        ("post", ISOS, 400),
        ("post", ISOS, 200),
    ],
)
def test_every_kind_of_answer_carries_the_security_headers(
    operations_client: Client, method: str, path: str, status: int
) -> None:
    if method == "post":
        body = static_request() if status == 200 else {"osversionName": "CentOS 7.2"}
        response = post_json(operations_client, path, body)
    else:
        response = operations_client.get(path)
    assert response.status_code == status
    assert_security_headers(response)
    if response.streaming:
        close_response(response)


@pytest.mark.django_db
def test_anonymous_alerts_carry_the_security_headers(kickstart_location: Path) -> None:
    response = post_json(Client(), ISOS, static_request())
    assert response.status_code == 401
    assert_security_headers(response)


@pytest.mark.django_db
def test_swagger_ui_runs_no_inline_script_and_styles_under_a_nonce(operations_client: Client) -> None:
    docs = operations_client.get("/api/docs/")
    assert docs.status_code == 200
    policy = docs["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert "unsafe-inline" not in policy and directives["script-src"] == "'self'"
    [nonce] = re.findall(r"'nonce-([^']+)'", policy)
    assert f'<style nonce="{nonce}">'.encode() in docs.content
    assert b"<script>" not in docs.content
    # Its start-up script is a file of its own, not inline.
    assert b'src="/api/docs/?script=' in docs.content
    script = operations_client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    # A page without a <style> block names no nonce.
    assert "nonce" not in operations_client.get("/isos/generate/")["Content-Security-Policy"]


# serialized_rollback: the flush between transactional tests would drop the migrated groups.
live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@live
def test_session_cookie_is_secure_behind_an_https_proxy(
    make_user: Callable[..., User], kickstart_location: Path, tmp_path: Path
) -> None:
    make_user("hana", "operations")
    https = {"SESSION_COOKIE_SECURE": "1", "TRUST_X_FORWARDED_PROTO": "1"}
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log", env=https) as server:
        login = requests.post(
            f"{server.url}/api/5.0/user/login",
            json={"u": "hana", "p": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
            timeout=30,
        )
    assert login.status_code == 200
    [cookie] = [c for c in login.raw.headers.getlist("Set-Cookie") if c.startswith("mojolicious=")]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= attributes
    [csrf_cookie] = [c for c in login.raw.headers.getlist("Set-Cookie") if c.startswith("csrftoken=")]
    assert "secure" in {part.strip().lower() for part in csrf_cookie.split(";")[1:]}
    assert_security_headers(login.headers)


@pytest.fixture
def superuser(make_user: Callable[..., User], kickstart_location: Path) -> User:
    # Made before the browser starts: Playwright's event loop makes Django refuse ORM calls.
    return make_user("root", superuser=True)


@pytest.fixture
def pages(superuser: User) -> list[str]:
    """Every kind of page: the portal's, the browsable API, the admin's lists and forms."""
    sync_catalog()
    version = OsVersion.objects.order_by("pk").first()
    assert version is not None
    return [
        "/isos/generate/",
        "/isos/history/",
        "/api/5.0/osversions",
        "/admin/",
        "/admin/isos/isobuild/",
        "/admin/osversions/osversion/",
        f"/admin/osversions/osversion/{version.pk}/change/",
        f"/admin/osversions/osversion/{version.pk}/permissions/",  # django-guardian's screen
        "/admin/auth/user/add/",
        f"/admin/auth/user/{superuser.pk}/change/",
        "/admin/auth/group/",
    ]


@live
def test_no_page_trips_the_content_security_policy(
    pages: list[str], portal_server: str, browser_page: Any
) -> None:
    """Chromium reports every policy violation as a console error and a DOM event."""
    from playwright.sync_api import expect

    page = browser_page
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.goto(f"{portal_server}/login/")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".account .user")).to_be_visible()

    for path in pages:
        answer = page.goto(f"{portal_server}{path}")
        assert answer is not None and answer.status == 200, path
        page.wait_for_load_state("networkidle")
    # The generate page's script works: the DHCP switch hides the static addresses.
    page.goto(f"{portal_server}/isos/generate/")
    page.get_by_role("switch", name="Use DHCP").check()
    expect(page.locator("#static-addresses")).to_be_hidden()
    # Swagger UI renders the description (its scripts ran) under the policy.
    page.goto(f"{portal_server}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
    assert violations == [], "\n".join(violations)


@live
def test_no_password_in_answers_logs_or_database_after_a_run(
    make_user: Callable[..., User], kickstart_location: Path, tmp_path: Path
) -> None:
    """Use distinctive passwords everywhere a client can put one, then grep everything."""
    secrets = {
        "login": "Login-Pa55-Secret",
        "wrong": "Wrong-Pa55-Secret",
        "root": "Root-Pa55-Secret",
        "form": "Form-Pa55-Secret",
    }
    user = make_user("grace", "operations")
    user.set_password(secrets["login"])
    user.save()
    answers: list[str] = []

    def keep(response: requests.Response) -> requests.Response:
        answers.append(str(response.headers) + response.content.decode("latin-1"))
        return response

    log = tmp_path / "gunicorn.log"
    with serve_portal(kickstart_location, log, env={"LOG_LEVEL": "DEBUG"}) as server:
        url = server.url
        session = requests.Session()
        keep(
            session.post(f"{url}/api/5.0/user/login", json={"u": "grace", "p": secrets["wrong"]}, timeout=30)
        )
        keep(
            session.post(
                f"{url}/login/", data={"username": "grace", "password": secrets["wrong"]}, timeout=30
            )
        )
        assert keep(
            session.post(f"{url}/api/5.0/user/login", json={"u": "grace", "p": secrets["login"]}, timeout=30)
        ).ok
        # A download, refusals of every kind, and a failure on the portal's side.
        iso = keep(session.post(f"{url}{ISOS}", json=static_request(rootPass=secrets["root"]), timeout=60))
        assert iso.status_code == 200
        for broken in ({"hostName": "-bad"}, {"ipAddress": "1.2.3"}, {"dhcp": "maybe"}):
            refused = session.post(
                f"{url}{ISOS}", json=static_request(**{"rootPass": secrets["root"], **broken}), timeout=30
            )
            assert keep(refused).status_code == 400
        not_json = f"{{'rootPass': '{secrets['root']}'"
        headers = {"Content-Type": "application/json"}
        assert (
            keep(session.post(f"{url}{ISOS}", data=not_json, headers=headers, timeout=30)).status_code == 400
        )
        # The web form, refused (its page comes back) and then broken on the portal's side.
        page = session.get(f"{url}/isos/generate/", timeout=30)
        form = {
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "osversionDir": "centos72",
            "hostName": "db1",
            "domainName": "example.com",
            "ipAddress": "192.0.2.999",  # refused: the page comes back
            "ipNetmask": "255.255.255.0",
            "ipGateway": "192.0.2.1",
            "rootPass": secrets["form"],
            "confirmRootPass": secrets["form"],
            "disk": "sda",
            "interfaceName": "eth0",
            "interfaceMtu": "1500",
        }
        referer = {"Referer": page.url}
        assert keep(session.post(page.url, data=form, headers=referer, timeout=30)).status_code == 400
        shutil.rmtree(kickstart_location / "centos72")
        assert (
            keep(
                session.post(f"{url}{ISOS}", json=static_request(rootPass=secrets["root"]), timeout=30)
            ).status_code
            == 500
        )
        form["ipAddress"] = "192.0.2.10"
        assert keep(session.post(page.url, data=form, headers=referer, timeout=30)).status_code == 500
        keep(session.get(f"{url}/nothing-here/", timeout=30))

    texts = {
        "answers": "\n".join(answers),
        "log": log.read_text(errors="replace"),
        "database": database_text(),
    }
    assert "isos.requests" in texts["log"]  # the log really was written
    for where, text in texts.items():
        for secret in secrets.values():
            assert secret not in text, f"{secret} found in the {where}"


def database_text() -> str:
    """Every row of every table of the test database, as text."""
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (table names from introspection)
            rows.extend(repr(row) for row in cursor.fetchall())
    assert rows
    return "\n".join(rows)
