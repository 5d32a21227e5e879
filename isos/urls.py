"""The isos app's API routes (GET osversions, POST isos and isos/validate), mounted under each API version."""

from django.urls import re_path

from isos.api import GenerateIsoView, OsVersionsView
from isos.dry_run import ValidateIsoRequestView
from isos.media_views import MediaUrlView
from isos.redfish_views import MountMediaView

api_urlpatterns = [
    re_path(r"^osversions/?$", OsVersionsView.as_view(), name="osversions"),
    re_path(r"^isos/?$", GenerateIsoView.as_view(), name="isos"),
    re_path(r"^isos/validate/?$", ValidateIsoRequestView.as_view(), name="isos-validate"),
    re_path(r"^isos/urls/(?P<media_id>[0-9]+)/?$", MediaUrlView.as_view(), name="isos-url"),
    re_path(r"^isos/urls/(?P<media_id>[0-9]+)/mount/?$", MountMediaView.as_view(), name="isos-url-mount"),
]
