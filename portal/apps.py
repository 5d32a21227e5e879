"""The host project as an app: its pages' static files, its system checks, ``manage.py demo``."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "ISO portal"

    def ready(self) -> None:
        from portal import checks  # noqa: F401  (registers the checks)
        from portal.login_log import connect

        connect()
