"""The history page shows an OS version's display name only to those who may see it.

A record keeps the directory its request named, whether it exists or not. Showing that
directory's display name to a user who may not use it told them the directory exists
(a refused attempt on "centos72" read "CentOS 7.2"), so a name is shown only for the OS
versions the viewer may use (a global permission or a grant on the row); admins see all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.test import Client
from guardian.shortcuts import assign_perm

from isos.models import IsoBuild
from osversions.catalog import sync_catalog
from osversions.models import OsVersion

URL = "/isos/history/"


def add_build(user: User, directory: str, outcome: str = IsoBuild.Outcome.REFUSED) -> IsoBuild:
    return IsoBuild.objects.create(
        user=user,
        username=user.username,
        fqdn=f"edge.{directory.replace('/', '-')}",
        osversion_dir=directory,
        outcome=outcome,
        detail=f'invalid OS version directory: "{directory}"',
        request_settings={"osversionDir": directory, "hostName": "edge"},
    )


@pytest.fixture
def granted(make_user: Callable[..., User], kickstart_location: Path) -> User:
    """ISO:GENERATE and ISO:READ, and only "Rocky Linux 8" (a grant on its row)."""
    user = make_user("team-a")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["generate_iso", "read_iso"]))
    sync_catalog()
    assign_perm("osversions.use_osversion", user, OsVersion.objects.get(directory="rocky/8"))
    return user


def history_of(user: User, query: str = "") -> Any:
    client = Client()
    client.force_login(user)
    response = client.get(URL + query)
    assert response.status_code == 200
    return response


def shown_names(response: Any) -> dict[str, str]:
    return {build.osversion_dir: name for build, name, _again in response.context["rows"]}


@pytest.mark.django_db
def test_a_refused_attempt_on_a_version_not_granted_shows_no_display_name(granted: User) -> None:
    for directory in ("centos72", "rocky/8", "centos99"):
        add_build(granted, directory)
    response = history_of(granted)
    assert shown_names(response) == {"centos72": "", "rocky/8": "Rocky Linux 8", "centos99": ""}
    page = response.content.decode()
    assert "CentOS 7.2" not in page  # neither in the rows nor in the filter's choices
    assert "Rocky Linux 8" in page
    assert dict(response.context["osversion_choices"]) == {
        "centos72": "centos72",
        "centos99": "centos99",
        "rocky/8": "Rocky Linux 8",
    }


@pytest.mark.django_db
def test_a_group_grant_shows_that_versions_name(
    make_user: Callable[..., User], kickstart_location: Path
) -> None:
    user = make_user("team-b")
    team = Group.objects.create(name="team-b")
    user.groups.add(team)
    sync_catalog()
    assign_perm("osversions.use_osversion", team, OsVersion.objects.get(directory="centos72"))
    add_build(user, "centos72")
    add_build(user, "rocky/8")
    assert shown_names(history_of(user)) == {"centos72": "CentOS 7.2", "rocky/8": ""}


@pytest.mark.django_db
def test_a_global_permission_shows_every_name(
    make_user: Callable[..., User], kickstart_location: Path
) -> None:
    user = make_user("ops", "operations")
    sync_catalog()
    add_build(user, "centos72")
    add_build(user, "rocky/8")
    assert shown_names(history_of(user)) == {"centos72": "CentOS 7.2", "rocky/8": "Rocky Linux 8"}


@pytest.mark.django_db
@pytest.mark.parametrize("admin", ["group", "superuser"])
def test_admins_see_every_name_on_everyones_records(
    make_user: Callable[..., User], granted: User, admin: str
) -> None:
    viewer = make_user("boss", "admin") if admin == "group" else make_user("root", superuser=True)
    add_build(granted, "centos72")
    add_build(granted, "rocky/8")
    assert shown_names(history_of(viewer)) == {"centos72": "CentOS 7.2", "rocky/8": "Rocky Linux 8"}


@pytest.mark.django_db
def test_a_granted_version_no_longer_in_osversions_json_keeps_its_name(granted: User) -> None:
    OsVersion.objects.filter(directory="rocky/8").update(available=False)
    add_build(granted, "rocky/8", outcome=IsoBuild.Outcome.BUILT)
    assert shown_names(history_of(granted)) == {"rocky/8": "Rocky Linux 8"}


@pytest.mark.django_db
def test_version_names_of_nobody(granted: User) -> None:
    from isos.history import version_names  # (here: the test module imports on an older tree too)

    assert version_names(AnonymousUser()) == {}
    assert version_names(granted) == {"rocky/8": "Rocky Linux 8"}
