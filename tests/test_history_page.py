"""The history page: who sees which records, the filters, the pages, and "Generate again"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from isos.history import PAGE_SIZE
from isos.models import IsoBuild
from osversions.catalog import sync_catalog

URL = "/isos/history/"


def add_build(user: User | None, fqdn: str, minutes_ago: int = 0, **fields: Any) -> IsoBuild:
    host, _, domain = fqdn.partition(".")
    settings = {"osversionDir": "centos72", "hostName": host, "domainName": domain, "dhcp": "no"}
    settings.update(fields.pop("request_settings", {}))
    build = IsoBuild.objects.create(
        user=user,
        username=user.username if user else "",
        fqdn=fqdn,
        osversion_dir=fields.pop("osversion_dir", "centos72"),
        outcome=fields.pop("outcome", IsoBuild.Outcome.BUILT),
        request_settings=settings,
        **fields,
    )
    # started_at is auto_now_add: set it afterwards to order the records.
    IsoBuild.objects.filter(pk=build.pk).update(started_at=timezone.now() - timedelta(minutes=minutes_ago))
    return build


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {
        "alice": make_user("alice", "operations"),
        "bob": make_user("bob", "operations"),
        "admin": make_user("boss", "admin"),
        "root": make_user("root", superuser=True),
        "reader": make_user("reader", "read-only"),
    }


def fqdns(response: Any) -> list[str]:
    return [build.fqdn for build, _name, _again in response.context["rows"]]


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page() -> None:
    response = Client().get(URL)
    assert response.status_code == 302 and response["Location"] == "/login/?next=/isos/history/"


@pytest.mark.django_db
def test_a_user_sees_only_their_own_newest_first(people: dict[str, User]) -> None:
    add_build(people["alice"], "old.alice", minutes_ago=10)
    add_build(people["alice"], "new.alice", minutes_ago=1)
    add_build(people["bob"], "edge.bob", minutes_ago=5)
    response = logged_in(people["alice"]).get(URL)
    assert response.status_code == 200
    assert fqdns(response) == ["new.alice", "old.alice"]
    page = response.content.decode()
    assert "edge.bob" not in page
    assert 'id="filter-user"' not in page  # filtering by user is for admins


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["admin", "root"])
def test_admins_see_everyones(people: dict[str, User], who: str) -> None:
    add_build(people["alice"], "a.example", minutes_ago=3)
    add_build(people["bob"], "b.example", minutes_ago=2)
    add_build(None, "gone.example", minutes_ago=1)  # the user was deleted: the record stays
    response = logged_in(people[who]).get(URL)
    assert fqdns(response) == ["gone.example", "b.example", "a.example"]
    assert 'id="filter-user"' in response.content.decode()


@pytest.mark.django_db
def test_read_only_sees_their_refusals_without_generate_again(people: dict[str, User]) -> None:
    add_build(people["reader"], "try.example", outcome=IsoBuild.Outcome.REFUSED, detail="missing")
    page = logged_in(people["reader"]).get(URL).content.decode()
    assert "try.example" in page and "refused" in page
    assert ">Generate again</a>" not in page


@pytest.mark.django_db
def test_filters(people: dict[str, User]) -> None:
    add_build(people["alice"], "edge1.cdn.example", minutes_ago=4)
    add_build(people["bob"], "edge2.cdn.example", minutes_ago=3, osversion_dir="rocky/8")
    add_build(people["bob"], "mid1.cdn.example", minutes_ago=2, outcome=IsoBuild.Outcome.REFUSED)
    add_build(people["alice"], "edge3.other", minutes_ago=1, outcome=IsoBuild.Outcome.FAILED)
    admin = logged_in(people["admin"])
    assert fqdns(admin.get(URL, {"fqdn": "EDGE"})) == [
        "edge3.other",
        "edge2.cdn.example",
        "edge1.cdn.example",
    ]
    assert fqdns(admin.get(URL, {"user": "bob"})) == ["mid1.cdn.example", "edge2.cdn.example"]
    assert fqdns(admin.get(URL, {"osversion": "rocky/8"})) == ["edge2.cdn.example"]
    assert fqdns(admin.get(URL, {"outcome": "refused"})) == ["mid1.cdn.example"]
    assert fqdns(admin.get(URL, {"fqdn": "cdn", "user": "alice", "outcome": "built"})) == [
        "edge1.cdn.example"
    ]
    assert len(fqdns(admin.get(URL, {"outcome": "no-such-outcome"}))) == 4  # ignored
    page = admin.get(URL, {"fqdn": "nothing-matches"}).content.decode()
    assert "No attempt matches these filters." in page
    # The OS version filter offers the versions of the records this user may see.
    assert admin.get(URL).context["osversion_choices"] == [("centos72", "centos72"), ("rocky/8", "rocky/8")]


@pytest.mark.django_db
def test_a_user_cannot_filter_their_way_into_others_records(people: dict[str, User]) -> None:
    add_build(people["bob"], "edge.bob")
    assert fqdns(logged_in(people["alice"]).get(URL, {"user": "bob"})) == []


@pytest.mark.django_db
def test_pagination_keeps_the_filters(people: dict[str, User]) -> None:
    for number in range(PAGE_SIZE + 5):
        add_build(people["alice"], f"edge{number}.example", minutes_ago=number)
    add_build(people["alice"], "other.host", minutes_ago=1000)
    client = logged_in(people["alice"])
    first = client.get(URL, {"fqdn": "edge"})
    assert len(fqdns(first)) == PAGE_SIZE and fqdns(first)[0] == "edge0.example"
    page = first.content.decode()
    assert "Page 1 of 2" in page and 'href="?fqdn=edge&amp;page=2"' in page
    second = client.get(URL, {"fqdn": "edge", "page": "2"})
    assert fqdns(second) == [f"edge{n}.example" for n in range(PAGE_SIZE, PAGE_SIZE + 5)]
    assert fqdns(client.get(URL, {"fqdn": "edge", "page": "99"})) == fqdns(second)  # the last page


@pytest.mark.django_db
def test_generate_again_links_the_settings_without_the_password(
    people: dict[str, User], kickstart_location: Path
) -> None:
    build = add_build(
        people["alice"],
        "edge5.cdn.example",
        request_settings={
            "ipAddress": "192.0.2.5",
            "interfaceMtu": 9000,
            "dhcp": False,
            "interfaceName": "bond0",
            "ip6Address": "",
        },
    )
    sync_catalog()  # the rows that give OS versions their display names
    client = logged_in(people["alice"])
    response = client.get(URL)
    [(row, version_name, again)] = response.context["rows"]
    assert row == build and version_name == "CentOS 7.2"
    link = urlsplit(again)
    assert link.path == "/isos/generate/"
    query = parse_qs(link.query)
    assert query == {
        "osversionDir": ["centos72"],
        "hostName": ["edge5"],
        "domainName": ["cdn.example"],
        "dhcp": ["no"],
        "ipAddress": ["192.0.2.5"],
        "interfaceMtu": ["9000"],
        "interfaceName": ["bond0"],
    }
    form = client.get(again).content.decode()
    assert 'value="edge5"' in form and 'value="192.0.2.5"' in form and 'value="9000"' in form
    assert '<option value="centos72" selected>' in form


@pytest.mark.django_db
def test_a_record_without_settings_has_no_generate_again(people: dict[str, User]) -> None:
    IsoBuild.objects.create(
        user=people["alice"], username="alice", outcome=IsoBuild.Outcome.REFUSED, detail="decoding: ..."
    )
    [(_build, _name, again)] = logged_in(people["alice"]).get(URL).context["rows"]
    assert again == ""
