"""The isos app's API routes (GET osversions, POST isos and isos/validate), mounted under each API version."""

from django.urls import re_path

from isos.api import GenerateIsoView, OsVersionsView
from isos.dry_run import ValidateIsoRequestView

api_urlpatterns = [
    re_path(r"^osversions/?$", OsVersionsView.as_view(), name="osversions"),
    re_path(r"^isos/?$", GenerateIsoView.as_view(), name="isos"),
    re_path(r"^isos/validate/?$", ValidateIsoRequestView.as_view(), name="isos-validate"),
]
