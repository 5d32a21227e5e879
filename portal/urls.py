"""The portal's routes: the Traffic Ops API under every supported version, the pages, the admin.

A portal that already exists plugs the apps in the same way: include
``isos.urls.api_urlpatterns`` under its API prefix,
and ``isos.web_urls`` where its pages live.
"""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from isos.urls import api_urlpatterns as isos_api
from portal import views
from portal.health import healthz
from portal.trafficops.auth_api import LoginView, LogoutView

# Traffic Ops clients pick a version; the Python client defaults to 4.1.
API_VERSIONS = ("3.0", "4.0", "4.1", "5.0")
API_PREFIX = r"^api/(?P<version>" + "|".join(v.replace(".", r"\.") for v in API_VERSIONS) + ")/"

api_urlpatterns = [
    re_path(r"^user/login/?$", LoginView.as_view(), name="user-login"),
    re_path(r"^user/logout/?$", LogoutView.as_view(), name="user-logout"),
    *isos_api,
]

admin.site.site_header = "ISO portal administration"
admin.site.site_title = "ISO portal admin"

urlpatterns = [
    re_path(API_PREFIX, include((api_urlpatterns, "api"))),
    # For load balancers and monitors: no login (portal.health).
    path("healthz", healthz, name="healthz"),
    # Browsers ask for it on pages that name no icon (the admin, Swagger UI, the browsable API).
    path("favicon.ico", RedirectView.as_view(url=static("portal/favicon.svg"), permanent=True)),
    # The OpenAPI description of the routes above (YAML; ?format=json for JSON), and a page to browse it.
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    # Swagger UI with its start-up script as a file of its own (?script), so the page runs
    # under the portal's Content-Security-Policy (its <style>: templates/drf_spectacular/).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="openapi-schema"), name="openapi-docs"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("isos/", include("isos.web_urls")),
    path("", views.home, name="home"),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
