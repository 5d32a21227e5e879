"""Login throttling (django-axes): repeated wrong passwords lock one username at one address.

The API answers a locked-out client with a Traffic Ops alert and 429, the login page with
a polite page and 429; other users and other addresses log in as usual; the lock ends
after the cool-off (or an administrator's reset); no password is stored or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from axes.utils import reset
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from portal.trafficops.lockout import LOCKED_OUT_TEXT
from tests.support.api import PASSWORD, FormClient, post_json

LOGIN = "/api/5.0/user/login"
WRONG = "Tr0ub4dor-wrong-guess"
LOCKED_OUT = {"alerts": [{"text": LOCKED_OUT_TEXT, "level": "error"}]}


def api_login(username: str, password: str, address: str = "127.0.0.1") -> Any:
    return post_json(Client(), LOGIN, {"u": username, "p": password}, REMOTE_ADDR=address)


def fail_until_locked(username: str = "op", address: str = "127.0.0.1") -> None:
    """The configured number of wrong passwords: each answered 401 until the last."""
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        response = api_login(username, WRONG, address)
        expected = 429 if attempt == settings.AXES_FAILURE_LIMIT else 401
        assert response.status_code == expected, attempt


def test_defaults_are_five_failures_and_fifteen_minutes() -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


@pytest.mark.django_db
def test_after_repeated_failures_even_the_right_password_is_refused(operator: User) -> None:
    fail_until_locked()
    response = api_login("op", PASSWORD)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json() == LOCKED_OUT
    assert response["Retry-After"] == str(15 * 60)
    assert "mojolicious" not in response.cookies
    # The API's username field "u" reaches axes as the username it counts by.
    assert AccessAttempt.objects.get().username == "op"


@pytest.mark.django_db
def test_failures_below_the_limit_are_forgotten_on_success(operator: User) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert api_login("op", WRONG).status_code == 401
    assert api_login("op", PASSWORD).status_code == 200
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert api_login("op", WRONG).status_code == 401
    assert api_login("op", PASSWORD).status_code == 200


@pytest.mark.django_db
def test_another_address_or_another_user_is_not_locked(make_user: Callable[..., User]) -> None:
    make_user("op", "operations")
    make_user("other", "operations")
    fail_until_locked("op", "127.0.0.1")
    assert api_login("op", PASSWORD, "127.0.0.1").status_code == 429
    assert api_login("op", PASSWORD, "192.0.2.7").status_code == 200
    assert api_login("other", PASSWORD, "127.0.0.1").status_code == 200


@pytest.mark.django_db
def test_login_works_again_after_the_cool_off(operator: User) -> None:
    fail_until_locked()
    assert api_login("op", PASSWORD).status_code == 429
    # Travel in time: the failures happened longer ago than the cool-off.
    earlier = AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=earlier)
    assert api_login("op", PASSWORD).status_code == 200


@pytest.mark.django_db
def test_a_short_cool_off_from_settings(operator: User, settings: Any) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    fail_until_locked()
    response = api_login("op", PASSWORD)
    assert response.status_code == 429 and response["Retry-After"] == "60"


@pytest.mark.django_db
def test_an_administrator_can_lift_the_lock(operator: User) -> None:
    fail_until_locked()
    assert reset(username="op") == 1
    assert api_login("op", PASSWORD).status_code == 200


@pytest.mark.django_db
def test_the_web_login_page_locks_too_and_says_so_politely(operator: User) -> None:
    client = FormClient()
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        response = client.post("/login/", {"username": "op", "password": WRONG})
        assert response.status_code == (429 if attempt == settings.AXES_FAILURE_LIMIT else 200)
    response = client.post("/login/", {"username": "op", "password": PASSWORD})
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session
    # The API is locked for the same username at the same address.
    assert api_login("op", PASSWORD).json() == LOCKED_OUT


@pytest.mark.django_db
def test_no_password_in_axes_rows_or_logs(operator: User, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fail_until_locked()
    api_login("op", PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        FormClient().post("/login/", {"username": "op", "password": WRONG}, REMOTE_ADDR="192.0.2.8")
    FormClient().post("/login/", {"username": "op", "password": PASSWORD}, REMOTE_ADDR="192.0.2.8")
    rows = [
        repr(list(model.objects.values()))  # type: ignore[attr-defined]
        for model in (AccessAttempt, AccessLog, AccessFailureLog)
    ]
    assert AccessAttempt.objects.count() == 2
    stored = "\n".join(rows)
    logged = caplog.text
    assert "axes" in logged.lower() or "lock" in logged.lower()
    for secret in (PASSWORD, WRONG):
        assert secret not in stored
        assert secret not in logged
