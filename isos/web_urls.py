"""The isos app's pages, included by the host project under ``isos/`` (namespace ``isos``)."""

from django.urls import path

from isos import views

app_name = "isos"

urlpatterns = [
    path("generate/", views.generate_iso_page, name="generate"),
    path("generate/previous/", views.previous_hosts_json, name="previous-hosts"),
    path("history/", views.history_page, name="history"),
]
