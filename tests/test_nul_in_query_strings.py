"""A NUL in any query-string value is never a 500 (PostgreSQL's text refuses it).

The history page's filters reach the database: a filter holding a NUL (``%00``) is
dropped, as if not given. The Generate ISO page's prefill drops such a value too (it
could only be refused later). Run on PostgreSQL as well: ``DATABASE_URL=postgres://...``
(SQLite stores a NUL, so there only the dropping shows).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client

from isos.models import IsoBuild

HISTORY_URL = "/isos/history/"
GENERATE_URL = "/isos/generate/"
NUL = "\x00"


@pytest.fixture
def admin_client(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    """An admin (every record, every filter, the user filter included) with two records."""
    user = make_user("boss", "admin")
    for fqdn, outcome in (("edge1.cdn.example", "built"), ("edge2.cdn.example", "refused")):
        IsoBuild.objects.create(
            user=user, username="boss", fqdn=fqdn, osversion_dir="centos72", outcome=outcome
        )
    client = Client()
    client.force_login(user)
    return client


def get(client: Client, url: str, **query: str) -> Any:
    return client.get(url + "?" + "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items()))


@pytest.mark.django_db
@pytest.mark.parametrize("value", [NUL, f"edge{NUL}1", f"centos72{NUL}", f"built{NUL}"])
@pytest.mark.parametrize("key", ["fqdn", "user", "osversion", "outcome", "page"])
def test_a_history_filter_holding_a_nul_is_dropped(admin_client: Client, key: str, value: str) -> None:
    response = get(admin_client, HISTORY_URL, **{key: value})
    assert response.status_code == 200
    filters = response.context["filters"]
    assert not filters.active
    fqdns = {build.fqdn for build, _name, _again in response.context["rows"]}
    assert fqdns == {"edge1.cdn.example", "edge2.cdn.example"}
    assert NUL not in response.content.decode()


@pytest.mark.django_db
def test_every_history_filter_at_once_with_a_nul_and_the_others_still_apply(admin_client: Client) -> None:
    response = get(admin_client, HISTORY_URL, fqdn=f"edge{NUL}", user=NUL, osversion=NUL, outcome="built")
    assert response.status_code == 200
    fqdns = [build.fqdn for build, _name, _again in response.context["rows"]]
    assert fqdns == ["edge1.cdn.example"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["hostName", "domainName", "osversionDir", "disk", "dhcp", "interfaceMtu", "fqdn", "HOSTNAME"]
)
def test_the_generate_page_prefill_drops_a_value_holding_a_nul(operations_client: Client, key: str) -> None:
    response = get(operations_client, GENERATE_URL, **{key: f"edge{NUL}1"})
    assert response.status_code == 200
    page = response.content.decode()
    assert NUL not in page and "edge\ufffd1" not in page
    assert response.context["form"]["hostName"].value() in {None, ""}


@pytest.mark.django_db
def test_the_generate_page_prefill_keeps_the_clean_values(operations_client: Client) -> None:
    response = get(operations_client, GENERATE_URL, hostName="edge1", domainName=f"cdn{NUL}.example")
    form = response.context["form"]
    assert form["hostName"].value() == "edge1"
    assert form["domainName"].value() in {None, ""}
