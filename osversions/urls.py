"""The osversions app's API routes, mounted under each API version by the host project."""

from django.urls import re_path

from osversions.api import OsVersionsView

api_urlpatterns = [
    re_path(r"^osversions/?$", OsVersionsView.as_view(), name="osversions"),
]
