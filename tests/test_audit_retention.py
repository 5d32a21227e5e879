"""The audit trail cannot be deleted, changed or added to through the portal (whoever asks,
whatever they were granted); old records leave only through ``manage.py prune_isobuilds``,
which also empties the stored ks_scripts files of ISO URLs no longer live (revoking one
empties them at once). OS version rows are not deleted by hand either (their grants would go
with them)."""

from __future__ import annotations

import base64
import hashlib
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

from isos import media_views
from isos.apps import NEVER_GRANTED, give_admin_group_everything
from isos.media import revoke
from isos.models import IsoBuild, IsoMedia, RedfishMount
from osversions.catalog import sync_catalog
from osversions.models import OsVersion
from tests.support.api import make_iso_url

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
    lines = [
        expected,
        "prune_isobuilds: emptied the stored ks_scripts files of 0 ISO URLs no longer live",
        "prune_isobuilds: deleted 0 ISO URL records expired or revoked more than 90 days ago",
        "prune_isobuilds: deleted 0 Redfish mount records started more than 90 days ago",
    ]
    assert out.getvalue().splitlines() == lines
    assert [r.getMessage() for r in caplog.records if r.name == "isos.audit"] == lines


def test_prune_dry_run_and_nothing_to_prune() -> None:
    build("built", 100)
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "30", "--dry-run", stdout=out)
    assert "would delete 1 ISO build records" in out.getvalue() and "built=1" in out.getvalue()
    assert IsoBuild.objects.count() == 1
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "365", stdout=out)
    assert (
        out.getvalue().splitlines()[0]
        == "prune_isobuilds: deleted 0 ISO build records started more than 365 days ago"
    )
    assert IsoBuild.objects.count() == 1


# --------------------------------------------------------------------------------------
# ISO URLs and Redfish mounts: files emptied once no longer live, rows deleted when old
# --------------------------------------------------------------------------------------

FILES = {
    "ks_scripts/password.cfg": base64.b64encode(b"rootpw --iscrypted $6$salt$hash\n").decode("ascii"),
    "ks_scripts/network.cfg": base64.b64encode(b"HOSTNAME=edge1").decode("ascii"),
}


def url_record(
    name: str,
    *,
    made: float = 0,
    expires: float = 1,
    revoked: float | None = None,
    build: IsoBuild | None = None,
) -> IsoMedia:
    """An ISO URL made ``made`` days ago, expiring in ``expires`` days (negative: that many
    days ago), revoked ``revoked`` days ago if given (its files still held, as a URL revoked
    before revoking emptied them)."""
    now = timezone.now()
    record = IsoMedia.objects.create(
        token_hash=hashlib.sha256(name.encode()).hexdigest(),
        username="op",
        build=build,
        expires_at=now + timedelta(days=expires),
        iso_name=f"{name}-centos72.iso",
        fqdn=name,
        osversion_dir="centos72",
        source_path="/srv/ks/centos72",
        source_fingerprint="f" * 64,
        volume_id="CDROM",
        layout_time=1_700_000_000,
        layout_digest="d" * 64,
        files=FILES,
        size=1234,
        sha256="a" * 64,
        fetch_count=3,
        bytes_served=3702,
    )
    IsoMedia.objects.filter(pk=record.pk).update(
        created_at=now - timedelta(days=made),
        revoked_at=None if revoked is None else now - timedelta(days=revoked),
        revoked_by="" if revoked is None else "boss",
    )
    record.refresh_from_db()
    return record


def mount(media: IsoMedia | None, days_old: float, outcome: str = "mounted") -> RedfishMount:
    record = RedfishMount.objects.create(
        username="op", media=media, iso_name="x.iso", bmc="10.0.0.5", outcome=outcome
    )
    started = timezone.now() - timedelta(days=days_old)
    RedfishMount.objects.filter(pk=record.pk).update(started_at=started, finished_at=started)
    record.refresh_from_db()
    return record


def ended(record: IsoMedia) -> str:
    """When a URL stopped being live, as the command's lines write it."""
    moment = record.expires_at if record.revoked_at is None else min(record.revoked_at, record.expires_at)
    return moment.isoformat(timespec="seconds")


def without_build(record: IsoMedia) -> dict[str, Any]:
    values = IsoMedia.objects.filter(pk=record.pk).values().get()
    values.pop("build_id")
    return values


def scene() -> dict[str, Any]:
    """Every kind of URL, mount and build the command meets, with --older-than 90 in mind."""
    old_build = build("url_made", 200, "live-old.example")
    young_expired_build = build("url_made", 95, "expired-young.example")
    urls = {
        "live_new": url_record("live-new"),
        # Live for a long time (a long ISO_MEDIA_TTL): never touched, whatever its age.
        "live_old": url_record("live-old", made=200, expires=1, build=old_build),
        "expired_young": url_record("expired-young", made=3, expires=-2, build=young_expired_build),
        "revoked_young": url_record("revoked-young", made=2, expires=0.5, revoked=1),
        "expired_89": url_record("expired-89", made=90, expires=-89),
        "expired_old": url_record("expired-old", made=101, expires=-100),
        "revoked_old": url_record("revoked-old", made=100, expires=-99, revoked=99.5),
        # Revoked (in the admin) ten days ago, long after it expired: it ended at its expiry.
        "revoked_late": url_record("revoked-late", made=102, expires=-101, revoked=10),
    }
    mounts = {
        "old_on_live": mount(urls["live_old"], 100),
        "old_failed": mount(None, 120, "failed"),
        "young_on_old_url": mount(urls["expired_old"], 5),
    }
    return {"builds": [old_build, young_expired_build], "urls": urls, "mounts": mounts}


def test_revoking_a_url_empties_its_files_and_keeps_its_audit() -> None:
    record = url_record("edge1")
    before = without_build(record)
    assert revoke(record, "boss")
    after = without_build(record)
    assert after["files"] == {} and after["revoked_by"] == "boss" and after["revoked_at"] is not None
    for key in ("files", "revoked_at", "revoked_by"):
        before.pop(key), after.pop(key)
    assert after == before  # names, size, sha256, counts, dates, the source's pin: kept
    assert not revoke(record, "again")
    assert IsoMedia.objects.get(pk=record.pk).revoked_by == "boss"


def test_prune_empties_urls_no_longer_live_and_deletes_old_ones(caplog: pytest.LogCaptureFixture) -> None:
    made = scene()
    urls: dict[str, IsoMedia] = made["urls"]
    live_before = {name: without_build(urls[name]) for name in ("live_new", "live_old")}
    out = StringIO()
    with caplog.at_level(logging.INFO, logger="isos.audit"):
        call_command("prune_isobuilds", "--older-than", "90", stdout=out)

    # Live URLs: untouched, files and all (the old one's build went: its link is emptied).
    for name, values in live_before.items():
        assert without_build(urls[name]) == values
        assert IsoMedia.objects.get(pk=urls[name].pk).files == FILES
    assert IsoMedia.objects.get(pk=urls["live_old"].pk).build is None
    # Young ones no longer live: kept, files emptied.
    for name in ("expired_young", "revoked_young", "expired_89"):
        kept = IsoMedia.objects.get(pk=urls[name].pk)
        assert kept.files == {} and (kept.size, kept.sha256, kept.fetch_count) == (1234, "a" * 64, 3)
    assert IsoMedia.objects.get(pk=urls["expired_young"].pk).build is None
    # Old ones: deleted.
    gone = ("expired_old", "revoked_old", "revoked_late")
    assert set(IsoMedia.objects.values_list("pk", flat=True)) == {
        record.pk for name, record in urls.items() if name not in gone
    }
    # Mounts: the old ones deleted, the young one kept, its URL's link emptied.
    young = made["mounts"]["young_on_old_url"]
    assert list(RedfishMount.objects.values_list("pk", "media_id")) == [(young.pk, None)]
    assert not IsoBuild.objects.exists()

    builds, mounts = made["builds"], made["mounts"]
    no_longer_live = [urls[name] for name in urls if not name.startswith("live")]
    wiped = sorted(ended(record) for record in no_longer_live)
    deleted = sorted(ended(urls[name]) for name in gone)
    lines = [
        "prune_isobuilds: deleted 2 ISO build records started more than 90 days ago (started "
        f"{builds[0].started_at.isoformat(timespec='seconds')} to "
        f"{builds[1].started_at.isoformat(timespec='seconds')}): url_made=2",
        "prune_isobuilds: emptied the stored ks_scripts files of 6 ISO URLs no longer live "
        f"(ended {wiped[0]} to {wiped[-1]}): expired=3 revoked=3",
        "prune_isobuilds: deleted 3 ISO URL records expired or revoked more than 90 days ago "
        f"(ended {deleted[0]} to {deleted[-1]}): expired=1 revoked=2",
        "prune_isobuilds: deleted 2 Redfish mount records started more than 90 days ago (started "
        f"{mounts['old_failed'].started_at.isoformat(timespec='seconds')} to "
        f"{mounts['old_on_live'].started_at.isoformat(timespec='seconds')}): mounted=1 failed=1",
    ]
    assert out.getvalue().splitlines() == lines
    assert [r.getMessage() for r in caplog.records if r.name == "isos.audit"] == lines
    assert all(record.token_hash not in caplog.text for record in urls.values())

    # Again: nothing left to empty or delete; the live URLs still untouched.
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "90", stdout=out)
    assert out.getvalue().splitlines() == [
        "prune_isobuilds: deleted 0 ISO build records started more than 90 days ago",
        "prune_isobuilds: emptied the stored ks_scripts files of 0 ISO URLs no longer live",
        "prune_isobuilds: deleted 0 ISO URL records expired or revoked more than 90 days ago",
        "prune_isobuilds: deleted 0 Redfish mount records started more than 90 days ago",
    ]
    assert IsoMedia.objects.get(pk=urls["live_new"].pk).files == FILES


def test_prune_dry_run_changes_nothing() -> None:
    scene()

    def everything() -> list[list[dict[str, Any]]]:
        return [list(model.objects.order_by("pk").values()) for model in (IsoBuild, IsoMedia, RedfishMount)]

    before = everything()
    out = StringIO()
    call_command("prune_isobuilds", "--older-than", "90", "--dry-run", stdout=out)
    assert everything() == before
    said = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in said] == [
        "prune_isobuilds: would delete 2 ISO build records started more than 90 days ago",
        "prune_isobuilds: would empty the stored ks_scripts files of 6 ISO URLs no longer live",
        "prune_isobuilds: would delete 3 ISO URL records expired or revoked more than 90 days ago",
        "prune_isobuilds: would delete 2 Redfish mount records started more than 90 days ago",
    ]
    assert said[1].endswith(": expired=3 revoked=3") and said[2].endswith(": expired=1 revoked=2")


def test_a_url_whose_files_were_emptied_answers_404_and_is_never_served(
    operations_client: Client, media_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only live URLs are served, and only live URLs keep their files: the serving never meets
    a record without them."""
    served: list[int] = []
    real_files_of = media_views.files_of

    def checked_files_of(record: IsoMedia) -> dict[str, bytes]:
        assert record.files, f"ISO URL {record.pk} reached the serving without its files"
        served.append(record.pk)
        return real_files_of(record)

    monkeypatch.setattr(media_views, "files_of", checked_files_of)

    def get(path: str) -> int:
        response = Client().get(path, HTTP_RANGE="bytes=0-0")
        if response.streaming:
            b"".join(response.streaming_content)  # the test client closes it at the end
        return int(response.status_code)

    paths = []
    for _ in range(3):
        paths.append(make_iso_url(operations_client)["isoURL"].removeprefix("http://testserver"))
    revoked, expired, live = IsoMedia.objects.order_by("id")
    assert [get(path) for path in paths] == [206, 206, 206]
    assert served == [revoked.pk, expired.pk, live.pk]

    # Revoked: emptied at once. Expired: emptied by the next prune, the row kept (young).
    assert operations_client.delete(f"/api/5.0/isos/urls/{revoked.pk}").status_code == 200
    assert IsoMedia.objects.get(pk=revoked.pk).files == {}
    IsoMedia.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("prune_isobuilds", "--older-than", "30", stdout=StringIO())
    assert IsoMedia.objects.get(pk=expired.pk).files == {}
    assert IsoMedia.objects.get(pk=live.pk).files == live.files != {}

    served.clear()
    for path in paths[:2]:
        assert get(path) == 404 and get(path + ".sha256") == 404
    assert served == []
    assert get(paths[2]) == 206 and served == [live.pk]
