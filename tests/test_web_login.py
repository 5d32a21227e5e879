"""Logging in and out through the pages: Django's auth views, the same session as the API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.support.api import PASSWORD, FormClient


@pytest.mark.django_db
def test_login_page_has_labelled_fields_and_a_csrf_token() -> None:
    page = FormClient().get("/login/").content.decode()
    assert '<label for="id_username">' in page and '<label for="id_password">' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert 'autocomplete="current-password"' in page


@pytest.mark.django_db
def test_login_then_the_page_asked_for(make_user: Callable[..., User]) -> None:
    make_user("op", "operations")
    client = FormClient(enforce_csrf_checks=True)
    token = client.get("/login/").cookies["csrftoken"].value
    response = client.post(
        "/login/",
        {"username": "op", "password": PASSWORD, "next": "/isos/history/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and response["Location"] == "/isos/history/"
    page = client.get("/isos/history/").content.decode()
    assert "op" in page and "Log out" in page


@pytest.mark.django_db
def test_wrong_password_says_so_at_the_form(make_user: Callable[..., User]) -> None:
    make_user("op", "operations")
    response = FormClient().post("/login/", {"username": "op", "password": "wrong"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'role="alert"' in page and "Please enter a correct username and password" in page
    assert 'value="op"' in page and "wrong" not in page


@pytest.mark.django_db
def test_the_page_session_is_the_api_session(
    make_user: Callable[..., User], kickstart_location: object
) -> None:
    """Logged in on the page, a script's GET osversions with that cookie works (and the reverse)."""
    make_user("op", "operations")
    client = FormClient()
    client.post("/login/", {"username": "op", "password": PASSWORD})
    assert client.get("/api/5.0/osversions").status_code == 200

    api_client = FormClient()
    api_client.post("/api/5.0/user/login", {"u": "op", "p": PASSWORD}, content_type="application/json")
    assert api_client.get("/isos/generate/").status_code == 200


@pytest.mark.django_db
def test_logout_is_a_post_and_says_so(client_for: Callable[..., Client]) -> None:
    client = client_for("operations")
    page = client.get("/").content.decode()
    assert 'action="/logout/"' in page and 'method="post"' in page
    response = client.post("/logout/", follow=True)
    assert response.redirect_chain == [("/login/", 302)]
    assert "You are logged out." in response.content.decode()
    assert client.get("/isos/history/").status_code == 302
    assert client.get("/logout/").status_code == 405  # a link cannot log anyone out


@pytest.mark.django_db
def test_navigation_follows_the_role(
    client_for: Callable[..., Client], make_user: Callable[..., User]
) -> None:
    operations = client_for("operations").get("/").content.decode()
    assert 'href="/isos/generate/"' in operations and 'href="/isos/history/"' in operations
    assert 'href="/admin/"' not in operations
    assert 'href="/api/5.0/osversions"' in operations  # the browsable API

    reader = client_for("read-only").get("/").content.decode()
    assert 'href="/isos/generate/"' not in reader and 'href="/isos/history/"' in reader

    staff = make_user("staffer", "admin")
    staff.is_staff = True
    staff.save()
    client = FormClient()
    client.force_login(staff)
    page = client.get("/isos/history/").content.decode()
    assert 'href="/admin/"' in page and 'aria-current="page">History' in page

    anonymous = FormClient().get("/").content.decode()
    assert 'href="/login/?next=/"' in anonymous and "Log out" not in anonymous


@pytest.mark.django_db
def test_unknown_page_is_a_page_not_a_traceback() -> None:
    response = FormClient().get("/no/such/page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "password"])
def test_a_nul_character_is_a_polite_refusal(make_user: Callable[..., User], field: str) -> None:
    """Django's form refuses it before authentication (PostgreSQL could not look it up)."""
    make_user("op", "operations")
    credentials = {"username": "op", "password": PASSWORD}
    credentials[field] = credentials[field][:1] + "\x00" + credentials[field][1:]
    response = FormClient().post("/login/", credentials)
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
