"""The isos app: ISO generation, its permissions and its audit trail."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def give_admin_group_everything(using: str = "default", **kwargs: Any) -> None:
    """Keep the admin group's promise, "everything", as permissions are added.

    The data migration grants the ISO permissions on a fresh database; permissions of
    other apps exist only after post_migrate has created them, so they are added here.
    """
    from django.contrib.auth.models import Group, Permission

    admin = Group.objects.using(using).filter(name="admin").first()
    if admin is not None:
        admin.permissions.add(*Permission.objects.using(using).all())


class IsosConfig(AppConfig):
    name = "isos"
    verbose_name = "ISO generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from isos import checks  # noqa: F401  (registers the checks)
        from isos.engine.layout_cache import layout_cache

        layout_cache.configure(
            max_entries=settings.ISO_LAYOUT_CACHE_ENTRIES,
            max_bytes=settings.ISO_LAYOUT_CACHE_MB << 20,
            chunk_size=settings.ISO_STREAM_CHUNK_KB << 10,
        )
        # Runs after auth has made this migration's permission rows (isos is the last app).
        post_migrate.connect(give_admin_group_everything, sender=self, dispatch_uid="isos-admin-group")
