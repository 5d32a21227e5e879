"""One line per web login, refusal and lockout, from the portal itself.

django-axes logs at WARNING only (LOGGING in portal.settings): its start-up banner and its
four INFO lines per login said little an operator needs and hid the usernames anyway. The
API's login logs its own lines (portal.trafficops.auth_api); the login pages' are these.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from portal.trafficops.log_text import log_text

logger = logging.getLogger("portal.logins")
API_LOGIN = "api:user-login"


def is_api_login(request: HttpRequest | None) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.view_name == API_LOGIN


def client_address(request: HttpRequest | None) -> str:
    return str(request.META.get("REMOTE_ADDR") or "-") if request is not None else "-"


def logged_in(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    if user is not None and not is_api_login(request):
        logger.info("web login of user %s from %s", log_text(user.get_username()), client_address(request))


def login_failed(
    sender: Any, credentials: dict[str, Any] | None = None, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if not is_api_login(request):
        username = str((credentials or {}).get("username") or "")
        logger.info("web login refused for user %s from %s", log_text(username), client_address(request))


def connect() -> None:
    user_logged_in.connect(logged_in, dispatch_uid="portal.login_log.logged_in")
    user_login_failed.connect(login_failed, dispatch_uid="portal.login_log.login_failed")
