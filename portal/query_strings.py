"""The admin's query strings at the door: text no database can hold is a 400.

The admin's list filters and search (Django's users and groups, django-axes' logs, ours)
pass query-string values to the database, where PostgreSQL refuses a NUL with a 500. The
portal's own pages drop such values themselves (isos.history, isos.forms: they do so in
any host project); the admin pages are not ours to change, so this middleware guards them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from portal.trafficops.json_body import unstorable_character
from portal.views import refusal_page


class AdminQueryStringMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.admin_prefix = reverse("admin:index")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(self.admin_prefix):
            for key, values in request.GET.lists():
                for text in (key, *values):
                    problem = unstorable_character(text)
                    if problem is not None:
                        return refusal_page(request, 400, f"The address holds {problem}.")
        return self.get_response(request)
