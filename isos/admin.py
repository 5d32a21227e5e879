"""The audit trail of ISO builds in the Django admin, read-only for everyone.

Nobody adds, changes or deletes an audit record through the portal, superusers included,
whatever permissions a group holds: old records leave only through
``manage.py prune_isobuilds`` (docs/operations.md, "Audit").
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from isos.media import revoke
from isos.models import IsoBuild, IsoMedia, RedfishMount
from isos.orphans import close_orphaned_streams
from osversions.admin import unstorable_query


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """An audit's list: nobody adds, changes or deletes a row; ``exclude`` stays hidden."""

    # No bulk action at all: "delete selected" is the only one Django offers.
    actions: Any = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        hidden = self.exclude or ()
        return [field.name for field in self.model._meta.fields if field.name not in hidden]

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
        return super().changelist_view(request, extra_context)


@admin.register(IsoBuild)
class IsoBuildAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "username", "fqdn", "osversion_dir", "outcome", "bytes_sent", "iso_size"]
    list_filter = ["outcome", "osversion_dir"]
    search_fields = ["fqdn", "username", "osversion_dir"]
    date_hierarchy = "started_at"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, str] | None = None
    ) -> HttpResponse:
        if not unstorable_query(request):
            # Streams whose worker died are closed before anyone reads the list.
            close_orphaned_streams()
        return super().changelist_view(request, extra_context)


@admin.register(IsoMedia)
class IsoMediaAdmin(ReadOnlyAdmin):
    """ISO URLs: read-only but for "Revoke selected URLs" (never the token: only its hash
    exists; nor the stored ks_scripts files)."""

    list_display = [
        "created_at",
        "username",
        "iso_name",
        "expires_at",
        "revoked_at",
        "fetch_count",
        "bytes_served",
        "last_fetched_at",
        "last_client",
    ]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["fqdn", "username", "iso_name"]
    exclude = ["token_hash", "files"]
    actions = ["revoke_urls"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's own rule here (every field is read-only all the same).
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Revoke selected URLs", permissions=["view"])
    def revoke_urls(self, request: HttpRequest, queryset: QuerySet[IsoMedia]) -> None:
        count = sum(revoke(record, request.user.get_username()) for record in queryset)
        self.message_user(request, f"{count} URL{'s' if count != 1 else ''} revoked.", messages.SUCCESS)


@admin.register(RedfishMount)
class RedfishMountAdmin(ReadOnlyAdmin):
    """Requests to mount an ISO URL on a BMC (isos.redfish_views): audit, read-only."""

    list_display = ["started_at", "username", "iso_name", "bmc", "power", "outcome", "failure"]
    list_filter = ["outcome", "failure"]
    search_fields = ["username", "iso_name", "bmc"]
    date_hierarchy = "started_at"
