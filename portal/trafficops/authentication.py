"""Session authentication with the CSRF rule the Traffic Ops clients need.

Traffic Ops clients (the Python client, Traffic Portal, curl scripts) log in, keep the
session cookie and POST JSON with it; none of them sends a CSRF token. A browser on
another site must still never be able to make a victim's browser generate an ISO.

The rule, in one place:

* A request whose body is ``application/json`` needs no CSRF token. A browser can send
  that content type to another origin only after a CORS preflight, and this portal
  answers no preflight, so a cross-site page cannot produce such a request.
* Even then, a request that a browser marks as coming from another origin (``Origin``
  not ours, or ``Sec-Fetch-Site: cross-site``) is refused: defence in depth for old or
  odd browsers.
* Every other unsafe request (HTML forms, the browsable API, ``text/plain``,
  form-encoded curl) needs Django's CSRF token, as any Django form does; but for
  ``POST user/logout``, which clients send with no body at all (a view with
  ``csrf_token_exempt``): the worst a forged one could do is end a session, and the
  cross-origin refusal above still stops it in any browser that says where it comes from.
* The session cookie is ``SameSite=Lax``, so browsers do not send it on cross-site POSTs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SCRIPT_HINT = "scripts: send Content-Type: application/json"


def is_json_request(request: HttpRequest) -> bool:
    """True when the body is declared JSON (any charset parameter allowed)."""
    media_type = str(request.META.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def cross_origin_reason(request: HttpRequest) -> str | None:
    """Why a browser says this request came from another site, or None."""
    if request.META.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        return "request came from another site"
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return None
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return None
    parts = urlsplit(origin)
    if parts.netloc and parts.netloc == request.get_host():
        return None
    return f"origin {origin} is not allowed"


def check_script_request(request: HttpRequest) -> None:
    """Refuse a cross-origin request, or a non-JSON unsafe one without a CSRF token."""
    if request.method in SAFE_METHODS:
        return
    reason = cross_origin_reason(request)
    if reason is not None:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}.")


class TrafficOpsSessionAuthentication(SessionAuthentication):
    """Django's session, with the CSRF rule described at the top of this module."""

    def enforce_csrf(self, request: Request) -> None:
        django_request: Any = request._request
        check_script_request(django_request)
        view = request.parser_context.get("view")
        if is_json_request(django_request) or getattr(view, "csrf_token_exempt", False):
            return
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as denied:
            raise exceptions.PermissionDenied(f"{denied.detail} ({SCRIPT_HINT})") from denied
