"""OS versions in the Django admin, with guardian's per-row permission screens."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from guardian.admin import GuardedModelAdmin

from osversions.models import OsVersion
from portal.trafficops.json_body import unstorable_character


def unstorable_query(request: HttpRequest) -> bool:
    """Whether a list's query string holds text no database can compare (a NUL, which
    PostgreSQL refuses with a DataError, or an unpaired surrogate)."""
    return any(
        unstorable_character(text) is not None
        for key, values in request.GET.lists()
        for text in (key, *values)
    )


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

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if unstorable_query(request):
            return HttpResponseBadRequest("A search or filter holds a NUL or an unpaired surrogate.")
        return super().changelist_view(request, extra_context)
