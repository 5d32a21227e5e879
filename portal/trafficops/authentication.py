"""Session authentication with the CSRF rule Traffic Ops clients need.

JSON bodies need no CSRF token (a browser sends that type cross-origin only after a
preflight, which the portal never answers); anything a browser marks as cross-site is
refused; every other unsafe request needs Django's token (docs/api.md, "Scripts need no
CSRF token").
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.request import split_domain_port
from django.utils.http import is_same_domain
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SCRIPT_HINT = "scripts: send Content-Type: application/json"
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_json_request(request: HttpRequest) -> bool:
    """True when the body is declared JSON (any charset parameter allowed)."""
    media_type = str(request.META.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def cross_origin_reason(request: HttpRequest) -> str | None:
    """Why a browser says this request came from another site, or None."""
    if request.META.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        return "request came from another site"
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None or origin_allowed(origin, request):
        return None
    return f"origin {origin} is not allowed"


def origin_key(parts: SplitResult) -> tuple[str, str, int] | None:
    """An origin's scheme, host and port (the scheme's default when absent), or None."""
    try:
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def request_origin_key(request: HttpRequest) -> tuple[str, str, int] | None:
    """This server's origin as the request reached it: scheme (SECURE_PROXY_SSL_HEADER
    respected by ``is_secure``), host and port of the Host header (ALLOWED_HOSTS checked)."""
    scheme = "https" if request.is_secure() else "http"
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    domain, port = split_domain_port(host)
    if not domain:
        return None
    # urlsplit's hostname drops an IPv6 address's brackets; the Host header keeps them.
    return scheme, domain.lower().strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


def origin_allowed(origin: str, request: HttpRequest) -> bool:
    """True when ``origin`` is this server's own (scheme, host and port all equal) or
    trusted by CSRF_TRUSTED_ORIGINS (exactly, or ``scheme://*.domain``), as Django's own
    CSRF origin check decides. ``null`` (sandboxed pages, some redirects) is never allowed."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    key = origin_key(parts)
    if key is None:
        return False
    if key == request_origin_key(request):
        return True
    return any(trusts(trusted, key, parts.netloc.lower()) for trusted in settings.CSRF_TRUSTED_ORIGINS)


def trusts(trusted: str, key: tuple[str, str, int], netloc: str) -> bool:
    """True when the CSRF_TRUSTED_ORIGINS entry ``trusted`` admits the origin ``key``."""
    if "*" in trusted:  # scheme://*.domain[:port], matched as Django matches it
        scheme, _, pattern = trusted.lower().partition("://")
        return key[0] == scheme and is_same_domain(netloc, pattern.lstrip("*"))
    try:
        return key == origin_key(urlsplit(trusted))
    except ValueError:
        return False


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
