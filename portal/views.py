"""The portal's own pages (home, logout) and error handlers.

API paths get Traffic Ops alerts as JSON even for 400, 404, 413, 415 and 500; other paths
get pages.
Logging in is Django's own LoginView (``templates/registration/login.html``): the same
session the API's ``user/login`` starts.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.defaults import page_not_found
from django.views.defaults import server_error as server_error_page

from portal.trafficops.alerts import INTERNAL_ERROR_TEXT, NOT_FOUND_TEXT, plain_alert_response

BAD_REQUEST_TEXT = "bad request"
# Titles of the page that refuses a request (portal.request_bodies, bad_request).
REFUSAL_TITLES = {
    400: "The request could not be read",
    411: "The request had no length",
    413: "Too much was sent",
    415: "Sent in a form the portal does not read",
}


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


class PortalLogoutView(LogoutView):
    """Django's logout (POST only), saying so on the login page it leads to."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        was_logged_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_logged_in:
            # After logout(), so the message lands in the new, anonymous session.
            messages.success(request, "You are logged out.")
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form without a valid CSRF token (often a page left open too long): the polite 403."""
    message = (
        "This form was out of date or came from elsewhere (CSRF check failed). Reload the page and try again."
    )
    return render(request, "403.html", {"exception": message}, status=403)


def refusal_response(request: HttpRequest, status: int, text: str) -> HttpResponse:
    """A client's request refused before its view: an alert on the API, a polite page elsewhere."""
    if is_api_path(request):
        return plain_alert_response(status, text)
    return refusal_page(request, status, text)


def refusal_page(request: HttpRequest, status: int, text: str) -> HttpResponse:
    title = REFUSAL_TITLES.get(status, REFUSAL_TITLES[400])
    return render(request, "request_refused.html", {"title": title, "reason": text}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 (a request it refused as malformed): never the exception's text."""
    if is_api_path(request):
        return plain_alert_response(400, BAD_REQUEST_TEXT)
    return refusal_page(request, 400, BAD_REQUEST_TEXT)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return plain_alert_response(404, NOT_FOUND_TEXT)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        return plain_alert_response(500, INTERNAL_ERROR_TEXT)
    return server_error_page(request)
