"""The isos app: ISO generation, its permissions and its audit trail."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started
from django.db.models.signals import post_migrate

from osversions.signals import catalog_synced

# Permissions nobody is given, the admin group included: the audit trail is read-only
# (the admin refuses these actions whatever is granted) and OS version rows are never
# added or deleted by hand (they mirror osversions.json).
NEVER_GRANTED = [
    ("isos", "add_isobuild"),
    ("isos", "change_isobuild"),
    ("isos", "delete_isobuild"),
    ("osversions", "add_osversion"),
    ("osversions", "delete_osversion"),
]


def give_admin_group_everything(using: str = "default", **kwargs: Any) -> None:
    """Keep the admin group's promise, "everything", as permissions are added.

    The data migration grants the ISO permissions on a fresh database; permissions of
    other apps exist only after post_migrate has created them, so they are added here.
    "Everything" stops at what nobody may do (``NEVER_GRANTED``).
    """
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    admin = Group.objects.using(using).filter(name="admin").first()
    if admin is not None:
        never = Q()
        for app_label, codename in NEVER_GRANTED:
            never |= Q(content_type__app_label=app_label, codename=codename)
        admin.permissions.add(*Permission.objects.using(using).exclude(never))


def close_orphans_now_and_then(**kwargs: Any) -> None:
    """At a worker's first request, then at most once a minute: close the audit records
    of streams whose server process died (docs/operations.md, "Audit")."""
    from isos.orphans import close_orphaned_streams_if_due

    close_orphaned_streams_if_due()


def report_vendor_iso_problems(**kwargs: Any) -> list[str]:
    """For ``manage.py sync_osversions``: vendor ISOs whose boot modes cannot all be kept."""
    from isos.source_modes import vendor_iso_problems

    return vendor_iso_problems()


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
        request_started.connect(close_orphans_now_and_then, dispatch_uid="isos-close-orphans")
        catalog_synced.connect(report_vendor_iso_problems, dispatch_uid="isos-vendor-iso-modes")
