"""The apps' API routes under the host's own prefix."""

from django.urls import include, re_path

from isos.urls import api_urlpatterns

urlpatterns = [re_path(r"^tools/api/(?P<version>5\.0)/", include((api_urlpatterns, "api")))]
