"""What a client gets once django-axes has locked it out after repeated failed logins.

Axes counts failures per username and client address (docs/operations.md). A locked-out
API client gets a Traffic Ops alert with status 429 and ``Retry-After``; a person at the
login page gets a polite page, also 429. The password is never part of either.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.trafficops.alerts import plain_alert_response
from portal.trafficops.log_text import log_text

logger = logging.getLogger(__name__)
LOCKED_OUT_TEXT = "too many failed login attempts; try again later"


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """Axes' AXES_LOCKOUT_CALLABLE: an alert for the API, a page for people."""
    cool_off = get_cool_off(request)
    username = str((credentials or {}).get("username") or "")
    # axes itself logs at WARNING only, with the username blotted out: this line names it.
    logger.warning(
        "login locked out for user %s from %s (too many failed attempts)",
        log_text(username),
        request.META.get("REMOTE_ADDR") or "-",
    )
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = plain_alert_response(429, LOCKED_OUT_TEXT)
    else:
        minutes = math.ceil(cool_off.total_seconds() / 60) if cool_off else None
        response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
