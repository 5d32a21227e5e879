"""The isos app's API routes (GET osversions, POST isos), mounted under each API version by the host."""

from django.urls import re_path

from isos.api import GenerateIsoView, OsVersionsView

api_urlpatterns = [
    re_path(r"^osversions/?$", OsVersionsView.as_view(), name="osversions"),
    re_path(r"^isos/?$", GenerateIsoView.as_view(), name="isos"),
]
