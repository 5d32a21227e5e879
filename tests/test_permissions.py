"""Who may list OS versions and generate ISOs: groups, superusers and per-row grants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from guardian.shortcuts import assign_perm

from isos.apps import NEVER_GRANTED
from osversions.catalog import sync_catalog
from osversions.models import OsVersion
from tests.support.api import close_response, post_json, static_request


@pytest.mark.django_db
def test_data_migration_made_the_groups() -> None:
    def codenames(group: str) -> set[str]:
        return set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))

    assert {"generate_iso", "read_iso", "use_osversion"} <= codenames("admin")
    # Everything but what nobody may do: the audit trail is read-only, OS version rows
    # mirror osversions.json (isos.apps.NEVER_GRANTED, tests/test_audit_retention.py).
    never = {codename for _, codename in NEVER_GRANTED}
    assert codenames("admin") == set(Permission.objects.values_list("codename", flat=True)) - never
    assert codenames("operations") == {"generate_iso", "read_iso", "use_osversion", "view_osversion"}
    assert codenames("read-only") == {"read_iso", "view_osversion"}
    labels = dict(Permission.objects.filter(content_type__app_label="isos").values_list("codename", "name"))
    assert labels["generate_iso"] == "ISO:GENERATE" and labels["read_iso"] == "ISO:READ"


MATRIX = [
    # groups, superuser, GET osversions, POST isos, 403 text for POST isos
    ((), False, 403, 403, "missing required Permissions: ISO:GENERATE, ISO:READ"),
    (("read-only",), False, 200, 403, "missing required Permissions: ISO:GENERATE"),
    (("operations",), False, 200, 200, None),
    (("admin",), False, 200, 200, None),
    ((), True, 200, 200, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("groups", "superuser", "list_status", "generate_status", "text"), MATRIX)
def test_permission_matrix(
    client_for: Callable[..., Client],
    kickstart_location: Path,
    groups: tuple[str, ...],
    superuser: bool,
    list_status: int,
    generate_status: int,
    text: str | None,
) -> None:
    client = client_for(*groups, superuser=superuser)
    listing = client.get("/api/5.0/osversions")
    assert listing.status_code == list_status
    if list_status == 403:
        assert listing.json()["alerts"][0]["text"] == "missing required Permissions: ISO:READ"
    response = post_json(client, "/api/5.0/isos", static_request())
    assert response.status_code == generate_status
    if text is not None:
        assert response.json() == {"alerts": [{"text": text, "level": "error"}]}
    else:
        assert response["Content-Type"] == "application/download"
        close_response(response)


@pytest.mark.django_db
def test_read_only_sees_nothing_to_use_until_granted(
    client_for: Callable[..., Client], kickstart_location: Path
) -> None:
    """ISO:READ lists only the sources a user may use; read-only may use none by default."""
    client = client_for("read-only")
    assert client.get("/api/5.0/osversions").json() == {"response": {}}


@pytest.mark.django_db
def test_anonymous_gets_401_everywhere(kickstart_location: Path) -> None:
    client = Client()
    for response in (client.get("/api/5.0/osversions"), post_json(client, "/api/5.0/isos", static_request())):
        assert response.status_code == 401
        assert response.json() == {"alerts": [{"text": "unauthorized, please log in.", "level": "error"}]}


@pytest.mark.django_db
def test_per_row_grant_lets_a_user_use_one_source(row_granted_client: Client) -> None:
    """A user with ISO permissions but no global use_osversion gets only the granted row."""
    client = row_granted_client
    assert client.get("/api/5.0/osversions").json() == {"response": {"Rocky Linux 8": "rocky/8"}}
    refused = post_json(client, "/api/5.0/isos", static_request(osversionDir="centos72"))
    assert refused.status_code == 400
    assert refused.json()["alerts"][0]["text"] == 'invalid OS version directory: "centos72"'
    allowed = post_json(client, "/api/5.0/isos", static_request(osversionDir="rocky/8"))
    assert allowed.status_code == 200
    assert allowed["Content-Disposition"] == 'attachment; filename="test.quest-rocky_8.iso"'
    close_response(allowed)


@pytest.mark.django_db
def test_group_row_grant(make_user: Callable[..., User], kickstart_location: Path) -> None:
    group = Group.objects.create(name="team-b")
    group.permissions.add(*Permission.objects.filter(codename__in=["generate_iso", "read_iso"]))
    user = make_user("member", "team-b")
    sync_catalog()
    assign_perm("osversions.use_osversion", group, OsVersion.objects.get(directory="centos72"))
    client = Client()
    client.force_login(user)
    assert client.get("/api/5.0/osversions").json() == {"response": {"CentOS 7.2": "centos72"}}
