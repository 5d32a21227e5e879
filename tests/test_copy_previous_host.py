"""Copy from a previous host: the builds a user may see, by FQDN, fill every field but the
password; without JavaScript the copy box is a GET answered with the prefilled form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.support.api import close_response, post_json, static_request

pytestmark = pytest.mark.django_db

HOSTS = "/isos/generate/previous/"
PAGE = "/isos/generate/"


def build(client: Client, **overrides: Any) -> None:
    response = post_json(client, "/api/5.0/isos", static_request(**overrides))
    if response.status_code == 200:
        close_response(response)


@pytest.fixture
def operator_with_builds(client_for: Callable[..., Client], kickstart_location: Path) -> Client:
    client = client_for("operations", username="olivia")
    build(client, hostName="edge1", domainName="cdn.example", ipAddress="192.0.2.11", interfaceMtu=9000)
    build(client, hostName="edge1", domainName="cdn.example", ipAddress="192.0.2.12")  # newer
    build(client, hostName="edge2", domainName="cdn.example", mgmtIpAddress="10.0.0.5",
          mgmtIpNetmask="255.255.255.0", mgmtIpGateway="10.0.0.1", mgmtInterface="eth1")  # fmt: skip
    build(client, hostName="edge3", domainName="cdn.example", ipAddress="bad")  # refused
    other = client_for("operations", username="someone-else")
    build(other, hostName="edge9", domainName="cdn.example")
    return client


def test_the_newest_build_of_each_host_the_user_may_see(operator_with_builds: Client) -> None:
    answer = operator_with_builds.get(HOSTS).json()
    assert [host["fqdn"] for host in answer["hosts"]] == ["edge2.cdn.example", "edge1.cdn.example"]
    edge1 = answer["hosts"][1]
    assert edge1["osversion"] == "CentOS 7.2"
    assert edge1["settings"]["ipAddress"] == "192.0.2.12" and edge1["settings"]["interfaceMtu"] == 1500
    assert "rootPass" not in edge1["settings"] and "twelve" not in str(answer)
    filtered = operator_with_builds.get(HOSTS, {"q": "EDGE2"}).json()["hosts"]
    assert [host["fqdn"] for host in filtered] == ["edge2.cdn.example"]
    assert filtered[0]["settings"]["mgmtInterface"] == "eth1"
    assert operator_with_builds.get(HOSTS, {"q": "edge\x00"}).status_code == 200  # dropped, never a 500


def test_an_admin_may_copy_anyones(operator_with_builds: Client, client_for: Callable[..., Client]) -> None:
    hosts = client_for("admin", username="ada").get(HOSTS).json()["hosts"]
    assert {host["fqdn"] for host in hosts} == {"edge1.cdn.example", "edge2.cdn.example", "edge9.cdn.example"}


def test_copying_needs_the_generate_permission(
    client_for: Callable[..., Client], kickstart_location: Path
) -> None:
    response = client_for("read-only").get(HOSTS)
    assert response.status_code == 403
    assert response.json()["alerts"][0]["text"] == "missing required Permissions: ISO:GENERATE"
    assert Client().get(HOSTS).status_code == 302  # to the login page


def test_without_javascript_the_copy_box_redirects_to_the_prefilled_form(
    operator_with_builds: Client,
) -> None:
    response = operator_with_builds.get(PAGE, {"copyFrom": "Edge1.CDN.example"})
    assert response.status_code == 302
    assert response["Location"].startswith(f"{PAGE}?") and "rootPass" not in response["Location"]
    page = operator_with_builds.get(response["Location"]).content.decode()
    assert 'value="192.0.2.12"' in page and 'value="edge1"' in page and 'value="cdn.example"' in page


def test_an_unknown_or_unseen_host_is_said_at_the_copy_box(operator_with_builds: Client) -> None:
    for fqdn in ["edge9.cdn.example", "edge3.cdn.example", "nowhere.example"]:
        response = operator_with_builds.get(PAGE, {"copyFrom": fqdn})
        assert response.status_code == 200
        page = response.content.decode()
        assert f"No earlier build of “{fqdn}” that you may see." in page
        assert 'aria-invalid="true"' in page.split('id="copy-from"')[1].split(">")[0]


def test_the_page_offers_the_previous_hosts(operator_with_builds: Client) -> None:
    page = operator_with_builds.get(PAGE).content.decode()
    datalist = page.split('<datalist id="previous-hosts">')[1].split("</datalist>")[0]
    assert (
        '<option value="edge2.cdn.example">' in datalist and '<option value="edge1.cdn.example">' in datalist
    )
    assert "edge9" not in datalist and "edge3" not in datalist
