"""OS versions in the Django admin, with guardian's per-row permission screens."""

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from osversions.models import OsVersion


@admin.register(OsVersion)
class OsVersionAdmin(GuardedModelAdmin):
    list_display = ["name", "directory", "available", "last_synced"]
    list_filter = ["available"]
    search_fields = ["name", "directory"]
    # Rows mirror osversions.json: edit the file, not the rows.
    readonly_fields = ["name", "directory", "available", "first_seen", "last_synced"]

    # No bulk action: "delete selected" is the only one Django offers.
    actions = None

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # A row is marked unavailable, never deleted: deleting it would drop its
        # per-row grants (docs/design.md). Nobody deletes one, whatever they were granted.
        return False
