"""The audit trail of ISO builds in the Django admin, read-only for everyone.

Nobody adds, changes or deletes an audit record through the portal, superusers included,
whatever permissions a group holds: old records leave only through
``manage.py prune_isobuilds`` (docs/operations.md, "Audit").
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from isos.models import IsoBuild
from isos.orphans import close_orphaned_streams
from osversions.admin import unstorable_query


@admin.register(IsoBuild)
class IsoBuildAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["started_at", "username", "fqdn", "osversion_dir", "outcome", "bytes_sent", "iso_size"]
    list_filter = ["outcome", "osversion_dir"]
    search_fields = ["fqdn", "username", "osversion_dir"]
    date_hierarchy = "started_at"
    # No bulk action at all: "delete selected" is the only one Django offers.
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in IsoBuild._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, str] | None = None
    ) -> HttpResponse:
        # A search or filter holding a NUL would reach the database, which refuses it (a 500).
        if unstorable_query(request):
            return HttpResponseBadRequest("A search or filter holds a NUL or an unpaired surrogate.")
        # Streams whose worker died are closed before anyone reads the list.
        close_orphaned_streams()
        return super().changelist_view(request, extra_context)
