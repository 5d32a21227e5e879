"""The audit trail cannot be deleted, changed or added to through the portal (whoever asks,
whatever they were granted); old records leave only through ``manage.py prune_isobuilds``.
OS version rows are not deleted by hand either (their grants would go with them)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from guardian.shortcuts import assign_perm

from isos.apps import NEVER_GRANTED, give_admin_group_everything
from isos.models import IsoBuild
from osversions.catalog import sync_catalog
from osversions.models import OsVersion

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/isos/isobuild/"
AUDIT_PERMISSIONS = ["add_isobuild", "change_isobuild", "delete_isobuild", "view_isobuild"]


def build(outcome: str = "built", days_old: float = 0, fqdn: str = "edge1.example") -> IsoBuild:
    record = IsoBuild.objects.create(username="op", fqdn=fqdn, outcome=outcome)
    if days_old:
        started = timezone.now() - timedelta(days=days_old)
        IsoBuild.objects.filter(pk=record.pk).update(started_at=started, finished_at=started)
        record.refresh_from_db()
    return record


def staff_client(make_user: Callable[..., User], kind: str) -> Client:
    """A staff superuser, an admin-group member, or a staff user granted every audit
    permission directly (which must not help)."""
    if kind == "superuser":
        user = make_user("root", superuser=True)
    elif kind == "admin-group":
        user = make_user("boss", "admin")
    else:
        user = make_user("granted")
        user.user_permissions.add(*Permission.objects.filter(codename__in=AUDIT_PERMISSIONS))
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["delete_osversion", "change_osversion"])
        )
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


STAFF = ["superuser", "admin-group", "granted-everything"]


def post_form(client: Client, path: str, data: dict[str, Any]) -> Any:
    """POST ``data`` as a browser posts an admin form (URL-encoded)."""
    return client.post(path, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("kind", STAFF)
def test_nobody_deletes_an_audit_record_in_the_admin(make_user: Callable[..., User], kind: str) -> None:
    client = staff_client(make_user, kind)
    record = build()
    assert client.get(f"{CHANGELIST}{record.pk}/delete/").status_code == 403
    assert post_form(client, f"{CHANGELIST}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    # The bulk action: not offered, and a forged one deletes nothing.
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode() and 'name="action"' not in page.content.decode()
    post_form(
        client, CHANGELIST, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"}
    )
    assert IsoBuild.objects.filter(pk=record.pk).exists()


@pytest.mark.parametrize("kind", STAFF)
def test_nobody_changes_or_adds_an_audit_record_in_the_admin(
    make_user: Callable[..., User], kind: str
) -> None:
    client = staff_client(make_user, kind)
    record = build()
    page = client.get(f"{CHANGELIST}{record.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert (
        post_form(
            client, f"{CHANGELIST}{record.pk}/change/", {"fqdn": "changed", "outcome": "failed"}
        ).status_code
        == 403
    )
    record.refresh_from_db()
    assert (record.fqdn, record.outcome) == ("edge1.example", "built")
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert (
        post_form(
            client, f"{CHANGELIST}add/", {"fqdn": "forged", "outcome": "built", "username": "x"}
        ).status_code
        == 403
    )
    assert not IsoBuild.objects.filter(fqdn="forged").exists()


@pytest.mark.parametrize("kind", STAFF)
def test_nobody_deletes_an_os_version_row_in_the_admin(
    make_user: Callable[..., User], kickstart_location: Path, kind: str
) -> None:
    client = staff_client(make_user, kind)
    sync_catalog()
    row = OsVersion.objects.get(directory="centos72")
    assign_perm("osversions.use_osversion", Group.objects.get(name="read-only"), row)
    assert client.get(f"/admin/osversions/osversion/{row.pk}/delete/").status_code == 403
    assert (
        post_form(client, f"/admin/osversions/osversion/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    post_form(
        client,
        "/admin/osversions/osversion/",
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    assert OsVersion.objects.filter(pk=row.pk).exists()
    assert (
        Group.objects.get(name="read-only")
        .osversiongroupobjectpermission_set.filter(content_object=row)
        .exists()
    )


def test_admin_group_is_never_given_what_nobody_may_do() -> None:
    never = {codename for _, codename in NEVER_GRANTED}
    admin = Group.objects.get(name="admin")
    assert never & set(admin.permissions.values_list("codename", flat=True)) == set()
    # The promise "everything" is kept again on every migrate, still without them.
    give_admin_group_everything()
    assert never & set(admin.permissions.values_list("codename", flat=True)) == set()
    assert admin.permissions.filter(codename="view_isobuild").exists()


def test_migration_revokes_what_was_granted_before(make_user: Callable[..., User]) -> None:
    """A database migrated before the fix had the admin group holding delete_isobuild."""
    admin = Group.objects.get(name="admin")
    granted = Permission.objects.filter(codename__in=[codename for _, codename in NEVER_GRANTED])
    assert granted.count() == len(NEVER_GRANTED)
    admin.permissions.add(*granted)
    user = make_user("direct")
    user.user_permissions.add(*granted)
    migration = importlib.import_module("isos.migrations.0003_interrupted_streams_and_read_only_audit")
    migration.revoke_never_granted(apps, None)
    assert not admin.permissions.filter(pk__in=granted).exists()
    assert not user.user_permissions.filter(pk__in=granted).exists()


def test_deleting_a_user_keeps_their_audit_records(make_user: Callable[..., User]) -> None:
    user = make_user("leaver")
    record = IsoBuild.objects.create(user=user, username="leaver", fqdn="edge1.example", outcome="built")
    user.delete()
    record.refresh_from_db()
    assert record.user is None and record.username == "leaver"


def test_prune_does_nothing_without_older_than() -> None:
    build(days_old=400)
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_isobuilds", stdout=StringIO())
    assert IsoBuild.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-3", "soon"])
def test_prune_refuses_a_meaningless_age(days: str) -> None:
    build(days_old=400)
    with pytest.raises(CommandError):
        call_command("prune_isobuilds", "--older-than", days, stdout=StringIO())
    assert IsoBuild.objects.count() == 1


def test_prune_deletes_old_finished_records_only_and_logs_what(caplog: pytest.LogCaptureFixture) -> None:
    old = [
        build("built", 100, "a.example"),
        build("built", 95, "b.example"),
        build("refused", 120, "c.example"),
        build("interrupted", 91, "d.example"),
    ]
    kept = [
        build("streaming", 200, "stuck.example"),  # never pruned, however old
        build("failed", 89, "recent.example"),
        build("built", 0, "today.example"),
    ]
    out = StringIO()
    with caplog.at_level(logging.INFO, logger="isos.audit"):
        call_command("prune_isobuilds", "--older-than", "90", stdout=out)
    assert set(IsoBuild.objects.values_list("pk", flat=True)) == {record.pk for record in kept}
    first, last = old[2].started_at, old[3].started_at
    expected = (
        "prune_isobuilds: deleted 4 ISO build records started more than 90 days ago "
        f"(started {first.isoformat(timespec='seconds')} to {last.isoformat(timespec='seconds')}): "
        "built=2 refused=1 interrupted=1"
    )
    assert out.getvalue().strip() == expected
    assert [r.getMessage() for r in caplog.records if r.name == "isos.audit"] == [expected]


def test_prune_dry_run_and_nothing_to_prune() -> None:
    build("built", 100)
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "30", "--dry-run", stdout=out)
    assert "would delete 1 ISO build records" in out.getvalue() and "built=1" in out.getvalue()
    assert IsoBuild.objects.count() == 1
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "365", stdout=out)
    assert (
        out.getvalue().strip()
        == "prune_isobuilds: deleted 0 ISO build records started more than 365 days ago"
    )
    assert IsoBuild.objects.count() == 1
