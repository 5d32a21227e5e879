"""Session authentication with the CSRF rule Traffic Ops clients need.

JSON bodies need no CSRF token (a browser sends that type cross-origin only after a
preflight, which the portal never answers); anything a browser marks as cross-site is
refused; every other unsafe request needs Django's token (docs/api.md, "Scripts need no
CSRF token").
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
