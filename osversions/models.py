"""The catalog's rows: one per entry of ``osversions.json``, guarded per row.

``osversions.json`` stays the file operators edit; these rows mirror it so that
django-guardian can grant an OS version to one user or group (direct foreign-key
permission tables, as guardian recommends for speed). A row whose entry vanished from the
file is marked unavailable, never deleted, so its history and grants survive.
"""

from __future__ import annotations

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

USE_OSVERSION = "osversions.use_osversion"


class OsVersion(models.Model):
    """An ISO source: a display name and its directory under the kickstart files location."""

    name = models.CharField(max_length=255, unique=True, help_text="Display name, e.g. 'Rocky Linux 8'.")
    directory = models.CharField(
        max_length=1024, help_text="Directory under KICKSTART_FILES_LOCATION, e.g. 'rocky8'."
    )
    available = models.BooleanField(
        default=True, help_text="False once the entry is no longer in osversions.json."
    )
    first_seen = models.DateTimeField(auto_now_add=True)
    last_synced = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "OS version"
        permissions = [("use_osversion", "Can generate ISOs from this OS version")]

    def __str__(self) -> str:
        return f"{self.name} ({self.directory})"


class OsVersionUserObjectPermission(UserObjectPermissionBase):
    """A per-row grant to one user."""

    content_object = models.ForeignKey(OsVersion, on_delete=models.CASCADE)


class OsVersionGroupObjectPermission(GroupObjectPermissionBase):
    """A per-row grant to one group."""

    content_object = models.ForeignKey(OsVersion, on_delete=models.CASCADE)
