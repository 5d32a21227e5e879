"""The isos app's API routes, mounted under each API version by the host project."""

from django.urls import re_path

from isos.api import GenerateIsoView

api_urlpatterns = [
    re_path(r"^isos/?$", GenerateIsoView.as_view(), name="isos"),
]
