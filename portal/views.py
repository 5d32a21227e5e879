"""The portal's own pages and error handlers.

API paths get Traffic Ops alerts as JSON even for 404 and 500; other paths get pages.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.defaults import page_not_found
from django.views.defaults import server_error as server_error_page

from portal.alerts import INTERNAL_ERROR_TEXT, plain_alert_response


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request):
        return plain_alert_response(404, "not found")
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        return plain_alert_response(500, INTERNAL_ERROR_TEXT)
    return server_error_page(request)
