"""The CSRF rule: scripts POST JSON without a token; other sites can never generate an ISO.

Django's test client skips CSRF checks unless asked (``enforce_csrf_checks=True``), so
every client here enforces them, as a browser-facing server would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client

from isos.models import IsoBuild
from tests.support.api import close_response, post_json, static_request

URL = "/api/5.0/isos"


@pytest.fixture
def victim(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("victim", "operations"))
    return client


@pytest.mark.django_db
def test_script_posting_json_needs_no_token(victim: Client) -> None:
    response = post_json(victim, URL, static_request())
    assert response.status_code == 200
    close_response(response)


@pytest.mark.django_db
def test_form_post_from_another_site_is_refused(victim: Client) -> None:
    """What a hostile page's auto-submitting <form> sends (if the cookie went along)."""
    response = victim.post(
        URL,
        data=urlencode(static_request()),
        content_type="application/x-www-form-urlencoded",
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    assert response.json()["alerts"][0]["text"].startswith("CSRF Failed")
    assert not IsoBuild.objects.filter(outcome__in=["streaming", "built"]).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
def test_simple_content_types_need_the_token_even_without_origin(victim: Client, content_type: str) -> None:
    """Bodies a cross-site form can send are refused without Django's CSRF token."""
    response = victim.post(URL, data='{"osversionDir": "centos72"}', content_type=content_type)
    assert response.status_code == 403
    text = response.json()["alerts"][0]["text"]
    assert text.startswith("CSRF Failed") and "application/json" in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
    ],
)
def test_json_from_another_origin_is_refused(victim: Client, headers: dict[str, str]) -> None:
    """Even if a browser let a cross-origin JSON POST through, the Origin check stops it."""
    response = post_json(victim, URL, static_request(), **headers)
    assert response.status_code == 403
    assert response.json()["alerts"][0]["text"].startswith("CSRF Failed")


@pytest.mark.django_db
def test_same_origin_browser_json_is_allowed(victim: Client) -> None:
    response = post_json(
        victim, URL, static_request(), HTTP_ORIGIN="http://testserver", HTTP_SEC_FETCH_SITE="same-origin"
    )
    assert response.status_code == 200
    close_response(response)


@pytest.mark.django_db
def test_form_post_with_the_token_is_allowed(victim: Client) -> None:
    """The browsable API's own form: same site, with Django's CSRF token."""
    page = victim.get(URL, HTTP_ACCEPT="text/html")
    token = page.cookies["csrftoken"].value
    response = victim.post(
        URL,
        data=urlencode(static_request()),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/download"
    close_response(response)


@pytest.mark.django_db
def test_login_from_another_origin_is_refused(make_user: Callable[..., User]) -> None:
    make_user("someone", "operations")
    response = post_json(
        Client(enforce_csrf_checks=True),
        "/api/5.0/user/login",
        {"u": "someone", "p": "x"},
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
