"""ISO permissions and the audit record of every attempt to generate an ISO.

``IsoPermission`` has no table: it only carries the two Traffic Ops permissions,
ISO:GENERATE and ISO:READ, as Django permissions (``isos.generate_iso``,
``isos.read_iso``). ``IsoBuild`` is the audit trail: who asked for which host's ISO, when,
and what came of it. It never holds the root password.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from isos.process_owner import owner_host, owner_pid, owner_token

GENERATE_ISO = "isos.generate_iso"
READ_ISO = "isos.read_iso"
# Traffic Ops' names for the permissions, in the order its 403 message lists them.
PERMISSION_LABELS = {GENERATE_ISO: "ISO:GENERATE", READ_ISO: "ISO:READ"}


class IsoPermission(models.Model):
    """Holder of the ISO permissions; never stored."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("generate_iso", "ISO:GENERATE"), ("read_iso", "ISO:READ")]

    def __str__(self) -> str:
        return "ISO permissions"


class IsoBuild(models.Model):
    """One attempt to generate an ISO, from the request to the last byte sent."""

    class Outcome(models.TextChoices):
        STREAMING = "streaming", "streaming"
        BUILT = "built", "built"
        REFUSED = "refused", "refused"
        FAILED = "failed", "failed"
        CLIENT_WENT_AWAY = "client_went_away", "client went away"
        # Its server process died mid-stream (or it stopped progressing): see isos.orphans.
        INTERRUPTED = "interrupted", "interrupted"
        # Made as a URL for virtual media (isos.media): its bytes go out on each fetch.
        URL_MADE = "url_made", "made as a URL"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    fqdn = models.CharField(max_length=253, blank=True, db_index=True)
    osversion_dir = models.CharField(max_length=1024, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, db_index=True)
    detail = models.TextField(blank=True, help_text="Why it was refused or failed.")
    iso_size = models.BigIntegerField(null=True, blank=True)
    # How the ISO boots: the line ks_scripts/state.out carries (for a vendor ISO source, the
    # boot modes the ISO keeps; docs/sources-and-booting.md).
    boot = models.CharField(max_length=500, blank=True, help_text="How the ISO boots (state.out's line).")
    bytes_sent = models.BigIntegerField(default=0)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    # The request's settings (never the root password), to generate the same ISO again.
    request_settings = models.JSONField(default=dict, blank=True)
    # The server process that made the record, so that a stream whose process died can be
    # told from one still running on another server (isos.process_owner).
    owner_host = models.CharField(max_length=255, blank=True, default=owner_host)
    owner_pid = models.PositiveIntegerField(null=True, blank=True, default=owner_pid)
    owner_token = models.CharField(max_length=200, blank=True, default=owner_token)
    # When a stream last handed out bytes (bytes_sent is saved with it), about once a minute.
    progressed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "ISO build"

    def __str__(self) -> str:
        return f"{self.fqdn or '?'} ({self.osversion_dir or '?'}): {self.outcome}"

    @property
    def change_log_message(self) -> str:
        """The line Traffic Ops writes to its change log for a built ISO."""
        return f"ISO: {self.fqdn}, ID: N/A, ACTION: Created ISO, keys: {{ OS:{self.osversion_dir} }}"


class IsoMedia(models.Model):
    """An ISO URL for virtual media: a token whose bytes are made on demand, the same bytes
    for life (docs/design.md, "Byte-identical for life"; isos.media).

    Holds what the bytes depend on (the rendered ks_scripts files, whose password is only
    its crypt hash; the source, its fingerprint and the layout's time), never the token
    (only its SHA-256) nor the clear password.
    """

    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the URL's token.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    build = models.ForeignKey(
        IsoBuild, null=True, blank=True, on_delete=models.SET_NULL, related_name="media"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    iso_name = models.CharField(max_length=1100)
    fqdn = models.CharField(max_length=253, blank=True, db_index=True)
    osversion_dir = models.CharField(max_length=1024, blank=True)
    # What the bytes depend on.
    source_path = models.CharField(max_length=4096, help_text="The source's real path when made.")
    source_fingerprint = models.CharField(max_length=64)
    volume_id = models.CharField(max_length=32)
    layout_time = models.BigIntegerField(help_text="The layout's clock (Unix seconds): its timestamps.")
    layout_digest = models.CharField(max_length=64, help_text="SHA-256 of the layout's metadata and patches.")
    files = models.JSONField(default=dict, help_text="ks_scripts files, base64 (password as its crypt hash).")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Use: one record per URL, updated per request.
    fetch_count = models.PositiveIntegerField(default=0)
    bytes_served = models.BigIntegerField(default=0)
    last_client = models.GenericIPAddressField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ISO URL"
        verbose_name_plural = "ISO URLs"

    def __str__(self) -> str:
        return f"{self.iso_name} (URL #{self.pk})"


class RedfishMount(models.Model):
    """One request to mount an ISO URL on a BMC (isos.redfish): who, which URL, which BMC,
    and each step's outcome. Never the BMC's password, nor the URL's token."""

    class Outcome(models.TextChoices):
        MOUNTED = "mounted", "mounted"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    media = models.ForeignKey(
        IsoMedia, null=True, blank=True, on_delete=models.SET_NULL, related_name="mounts"
    )
    iso_name = models.CharField(max_length=1100, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    bmc = models.CharField(max_length=300, help_text="The BMC's address, as given.")
    bmc_username = models.CharField(max_length=150, blank=True)
    insecure = models.BooleanField(default=False, help_text="TLS verification was switched off.")
    power = models.CharField(max_length=10, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, db_index=True)
    failure = models.CharField(max_length=40, blank=True, help_text="The kind of BMC error, if any.")
    detail = models.TextField(blank=True)
    steps = models.JSONField(default=list, blank=True, help_text="Each step: its name, status and detail.")
    client_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "Redfish mount"

    def __str__(self) -> str:
        return f"{self.iso_name or '?'} on {self.bmc}: {self.outcome}"
