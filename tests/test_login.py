"""user/login and user/logout, as Traffic Ops scripts use them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.support.api import PASSWORD, post_json


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["3.0", "4.0", "4.1", "5.0"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_login_on_every_version_sets_the_mojolicious_cookie(operator: User, version: str, slash: str) -> None:
    client = Client()
    response = post_json(client, f"/api/{version}/user/login{slash}", {"u": "op", "p": PASSWORD})
    assert response.status_code == 200
    assert response.json() == {"alerts": [{"text": "Successfully logged in.", "level": "success"}]}
    cookie = response.cookies["mojolicious"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_wrong_password_and_unknown_user_get_the_same_answer(operator: User) -> None:
    for body in ({"u": "op", "p": "wrong"}, {"u": "nobody", "p": "wrong"}):
        response = post_json(Client(), "/api/5.0/user/login", body)
        assert response.status_code == 401
        assert response.json() == {"alerts": [{"text": "Invalid username or password.", "level": "error"}]}
        assert "mojolicious" not in response.cookies


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"u": "op"}, {"p": "x"}, {"u": "", "p": ""}, {"u": 1, "p": ["x"]}])
def test_missing_credentials(body: dict[str, object]) -> None:
    response = post_json(Client(), "/api/5.0/user/login", body)
    assert response.status_code == 400
    assert response.json()["alerts"][0]["text"] == "username and password are required"


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["null", "[]", "{oops", ""])
def test_login_body_that_is_not_an_object(raw: str) -> None:
    response = Client().post("/api/5.0/user/login", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["alerts"][0]["text"].startswith("decoding: ")


@pytest.mark.django_db
def test_session_cookie_works_then_logout_ends_it(operator: User, kickstart_location: Path) -> None:
    client = Client()
    assert client.get("/api/4.1/osversions").status_code == 401
    post_json(client, "/api/4.1/user/login", {"u": "op", "p": PASSWORD})
    assert client.get("/api/4.1/osversions").status_code == 200
    response = client.post("/api/4.1/user/logout", content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"alerts": [{"text": "You are logged out.", "level": "success"}]}
    response = client.get("/api/4.1/osversions")
    assert response.status_code == 401
    assert response.json() == {"alerts": [{"text": "unauthorized, please log in.", "level": "error"}]}


@pytest.mark.django_db
def test_logout_without_session_is_401() -> None:
    response = Client().post("/api/5.0/user/logout", content_type="application/json")
    assert response.status_code == 401


@pytest.mark.django_db
def test_forged_cookie_is_401(kickstart_location: Path) -> None:
    client = Client()
    client.cookies["mojolicious"] = "not-a-session"
    response = client.get("/api/5.0/osversions")
    assert response.status_code == 401
    assert response.json()["alerts"][0]["text"] == "unauthorized, please log in."


@pytest.mark.django_db
def test_unknown_api_route_is_a_json_404() -> None:
    response = Client().get("/api/2.0/isos")
    assert response.status_code == 404
    assert response.json() == {"alerts": [{"text": "not found", "level": "error"}]}
