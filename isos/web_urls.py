"""The isos app's pages, included by the host project under ``isos/`` (namespace ``isos``)."""

from django.urls import path, re_path

from isos import media_views, redfish_views, views

app_name = "isos"

urlpatterns = [
    path("generate/", views.generate_iso_page, name="generate"),
    path("generate/previous/", views.previous_hosts_json, name="previous-hosts"),
    path("history/", views.history_page, name="history"),
    path("urls/<int:media_id>/revoke/", views.revoke_media_url, name="revoke-url"),
    path("urls/<int:media_id>/mount/", redfish_views.mount_media_page, name="mount-url"),
    # ISO URLs for virtual media: no session (isos.media_views); anything else under
    # media/ is the same quiet 404, so no path (token) reaches Django's request log.
    re_path(r"^media/(?P<token>[^/]+)/(?P<name>[^/]+)$", media_views.media_file, name="media"),
    re_path(r"^media/", media_views.not_found),
]
