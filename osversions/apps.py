"""The osversions app: the catalog of ISO sources."""

from django.apps import AppConfig


class OsversionsConfig(AppConfig):
    name = "osversions"
    verbose_name = "OS versions"
    default_auto_field = "django.db.models.BigAutoField"
