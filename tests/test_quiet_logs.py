"""Quiet logs: django-axes says nothing below WARNING (no banner on every command, no four
lines per login); the portal's own lines name each login, refusal and lockout once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tests.support.api import PASSWORD, FormClient, post_json

MANAGE = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py")]


def test_a_command_prints_no_axes_banner(tmp_path: Path) -> None:
    env = {**os.environ, "SECRET_KEY": "quiet-" + "x" * 50, "KICKSTART_FILES_LOCATION": str(tmp_path)}
    result = subprocess.run([*MANAGE, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "AXES" not in result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(record.name, record.levelno, record.getMessage()) for record in caplog.records]


@pytest.mark.django_db
def test_a_web_login_is_one_line_of_the_portals(
    make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    make_user("op", "operations")
    with caplog.at_level(logging.DEBUG):
        FormClient().post("/login/", {"username": "op", "password": PASSWORD})
    assert lines(caplog) == [("portal.logins", logging.INFO, "web login of user op from 127.0.0.1")]


@pytest.mark.django_db
def test_a_refused_web_login_is_one_line_without_the_password(
    make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    make_user("op", "operations")
    with caplog.at_level(logging.DEBUG):
        FormClient().post("/login/", {"username": "op", "password": "a wrong one"})
    # axes' own warning (the username blotted out), and the portal's line naming it.
    assert [(name, level) for name, level, _ in lines(caplog)] == [
        ("axes.handlers.database", logging.WARNING),
        ("portal.logins", logging.INFO),
    ]
    assert lines(caplog)[1][2] == "web login refused for user op from 127.0.0.1"
    assert "a wrong one" not in caplog.text


@pytest.mark.django_db
def test_an_api_login_is_the_apis_own_line_only(
    make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    make_user("op", "operations")
    with caplog.at_level(logging.DEBUG):
        response = post_json(FormClient(), "/api/5.0/user/login", {"u": "op", "p": PASSWORD})
    assert response.status_code == 200
    assert [name for name, _, _ in lines(caplog)] == ["portal.trafficops.auth_api"]


@pytest.mark.django_db
def test_a_lockout_is_one_warning_naming_the_user(
    make_user: Callable[..., User], caplog: pytest.LogCaptureFixture, settings: object
) -> None:
    make_user("op", "operations")
    client = FormClient()
    with caplog.at_level(logging.DEBUG):
        for _ in range(6):
            response = client.post("/login/", {"username": "op", "password": "wrong"})
    assert response.status_code == 429
    warnings = [(name, message) for name, level, message in lines(caplog) if level >= logging.WARNING]
    locked = [message for name, message in warnings if name == "portal.trafficops.lockout"]
    assert locked and locked[0] == "login locked out for user op from 127.0.0.1 (too many failed attempts)"
    assert not [
        name for name, level, _ in lines(caplog) if name.startswith("axes") and level < logging.WARNING
    ]
