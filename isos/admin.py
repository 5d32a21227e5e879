"""The audit trail of ISO builds in the Django admin, read-only."""

from django.contrib import admin

from isos.models import IsoBuild


@admin.register(IsoBuild)
class IsoBuildAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["started_at", "username", "fqdn", "osversion_dir", "outcome", "bytes_sent", "iso_size"]
    list_filter = ["outcome", "osversion_dir"]
    search_fields = ["fqdn", "username", "osversion_dir"]
    date_hierarchy = "started_at"

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [field.name for field in IsoBuild._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
