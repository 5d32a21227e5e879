"""The Django admin: the way to Generate ISO, guardian's screens, and read-only audit records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from isos.models import IsoBuild
from osversions.catalog import sync_catalog
from osversions.models import OsVersion


@pytest.fixture
def staff(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    user = make_user("boss", "admin")
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_admin_index_links_to_generate_iso(staff: Client) -> None:
    page = staff.get("/admin/").content.decode()
    assert 'href="/isos/generate/"' in page and "ISO portal administration" in page
    assert 'href="/static/portal/' not in page  # the admin keeps its own look


@pytest.mark.django_db
def test_os_versions_list_links_to_generate_iso(staff: Client) -> None:
    sync_catalog()
    page = staff.get("/admin/osversions/osversion/").content.decode()
    assert 'class="generate-iso-link"' in page and 'href="/isos/generate/"' in page
    assert "CentOS 7.2" in page


@pytest.mark.django_db
def test_os_version_has_guardians_object_permissions_screen(staff: Client) -> None:
    sync_catalog()
    row = OsVersion.objects.get(directory="centos72")
    assert staff.get(f"/admin/osversions/osversion/{row.pk}/permissions/").status_code == 200


@pytest.mark.django_db
def test_iso_builds_are_read_only(staff: Client) -> None:
    build = IsoBuild.objects.create(username="op", fqdn="edge1.example", outcome="built")
    assert staff.get("/admin/isos/isobuild/").status_code == 200
    page = staff.get(f"/admin/isos/isobuild/{build.pk}/change/").content.decode()
    assert "edge1.example" in page and 'name="_save"' not in page
    assert staff.get("/admin/isos/isobuild/add/").status_code == 403
    staff.post(f"/admin/isos/isobuild/{build.pk}/change/", {"fqdn": "changed"})
    build.refresh_from_db()
    assert build.fqdn == "edge1.example"
