"""The Generate ISO page: roles, the form's fields, its errors, and the download it answers with.

The page is driven by the API's serializer, so its messages are the API's own; these
tests check that they land beside their fields, that the form stays filled (never with
the password), that every attempt is audited, and that a valid form downloads the ISO.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from isos.models import IsoBuild
from tests.support.api import FormClient, close_response, post_json, static_request
from tests.support.isoread import ks_script

URL = "/isos/generate/"
SECRET = "S3cret root pass!"


def form_data(**overrides: Any) -> dict[str, str]:
    """What the browser posts for the docs/api.md example: the DHCP switch off (absent)."""
    data = {k: str(v) for k, v in static_request(rootPass=SECRET).items() if k != "dhcp"}
    data["confirmRootPass"] = SECRET
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def field_html(page: str, name: str) -> str:
    """The markup of the field block holding input ``name``."""
    start = page.index(f'id="id_{name}"')
    block_start = page.rindex('<div class="field', 0, start)
    return page[block_start : page.index("</div>", start)]


# --- who may open it ------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page() -> None:
    response = FormClient().get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/isos/generate/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("groups", "missing"), [(("read-only",), "ISO:GENERATE"), ((), "ISO:GENERATE, ISO:READ")]
)
def test_user_without_iso_generate_gets_a_polite_403(
    client_for: Callable[..., Client], kickstart_location: Path, groups: tuple[str, ...], missing: str
) -> None:
    """Read-only users may list OS versions but not generate: a 403 page, never a traceback."""
    client = client_for(*groups)
    response = client.get(URL)
    assert response.status_code == 403
    page = response.content.decode()
    assert "Not allowed" in page and f"missing required Permissions: {missing}" in page
    assert "Traceback" not in page
    posted = client.post(URL, form_data())
    assert posted.status_code == 403
    refused = IsoBuild.objects.get()
    assert refused.outcome == "refused" and refused.detail == f"missing required Permissions: {missing}"


@pytest.mark.django_db
def test_operations_get_the_form_with_their_os_versions(operations_client: Client) -> None:
    response = operations_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<option value="centos72">CentOS 7.2</option>' in page
    assert '<option value="rocky/8">Rocky Linux 8</option>' in page
    assert 'name="csrfmiddlewaretoken"' in page
    # Labels are tied to their inputs; the MTU offers 1500 and 9000 but allows others.
    labelled = ["hostName", "domainName", "ipAddress", "interfaceMtu", "rootPass", "confirmRootPass"]
    for name in labelled:
        assert f'<label for="id_{name}">' in page, name
    mtu = field_html(page, "interfaceMtu")
    assert 'type="number"' in mtu and 'list="mtu-choices"' in mtu and 'value="1500"' in mtu
    assert 'min="1280"' in mtu and 'max="9216"' in mtu
    assert '<option value="1500">' in page and '<option value="9000">' in page
    assert "bondN" in field_html(page, "interfaceName")
    assert 'role="switch"' in page and 'name="dhcp"' in page


@pytest.mark.django_db
def test_per_row_grant_offers_only_that_version(row_granted_client: Client) -> None:
    client = row_granted_client
    page = client.get(URL).content.decode()
    assert "Rocky Linux 8" in page and "CentOS 7.2" not in page
    assert '<option value="rocky/8" selected>' in page  # the only choice is made


@pytest.mark.django_db
def test_no_os_version_offered_explains_why(make_user: Callable[..., User], kickstart_location: Path) -> None:
    """ISO permissions but no OS version granted: an empty, disabled select and the reason."""
    user = make_user("nobody-yet")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["generate_iso", "read_iso"]))
    client = FormClient()
    client.force_login(user)
    page = client.get(URL).content.decode()
    assert "No OS version is offered to you yet" in page
    assert "<option" not in page.split('id="id_osversionDir"')[1].split("</select>")[0]


@pytest.mark.django_db
def test_broken_catalog_is_a_polite_500_page(operations_client: Client, kickstart_location: Path) -> None:
    (kickstart_location / "osversions.json").write_text("{not json")
    response = operations_client.get(URL)
    assert response.status_code == 500
    assert "problem on our side" in response.content.decode()
    posted = operations_client.post(URL, form_data())
    assert posted.status_code == 500
    assert "not valid JSON" not in posted.content.decode()  # the reason is for the log
    failed = IsoBuild.objects.get()
    assert failed.outcome == "failed" and "not valid JSON" in failed.detail


# --- prefill --------------------------------------------------------------------------


@pytest.mark.django_db
def test_query_parameters_prefill_the_form_but_never_a_password(operations_client: Client) -> None:
    query = urlencode(
        {
            "hostName": "edge7",
            "DomainName": "cdn.example",  # keys match case-insensitively, as in the API
            "ipAddress": "192.0.2.7",
            "osversionDir": "rocky/8",
            "interfaceMtu": "9000",
            "rootPass": "leaked",
            "confirmRootPass": "leaked",
        }
    )
    page = operations_client.get(f"{URL}?{query}").content.decode()
    assert 'value="edge7"' in field_html(page, "hostName")
    assert 'value="cdn.example"' in field_html(page, "domainName")
    assert 'value="192.0.2.7"' in field_html(page, "ipAddress")
    assert 'value="9000"' in field_html(page, "interfaceMtu")
    assert '<option value="rocky/8" selected>' in page
    assert "leaked" not in page


@pytest.mark.django_db
def test_fqdn_and_dhcp_prefill(operations_client: Client) -> None:
    page = operations_client.get(f"{URL}?fqdn=edge9.pop1.cdn.example&dhcp=yes").content.decode()
    assert 'value="edge9"' in field_html(page, "hostName")
    assert 'value="pop1.cdn.example"' in field_html(page, "domainName")
    assert re.search(r'id="id_dhcp"[^>]*checked', page)


@pytest.mark.django_db
def test_version_no_longer_offered_is_explained(operations_client: Client) -> None:
    page = operations_client.get(f"{URL}?osversionDir=gone7").content.decode()
    assert "is not offered to you" in page


# --- submitting -----------------------------------------------------------------------


@pytest.mark.django_db
def test_valid_form_downloads_the_iso(operations_client: Client) -> None:
    response = operations_client.post(URL, form_data())
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/download"
    assert response["Content-Disposition"] == 'attachment; filename="test.quest-centos72.iso"'
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data)
    cfg = ks_script(data)
    assert b'IPADDR="1.3.3.7"' in cfg and b'DHCP="no"' in cfg and b'HOSTNAME="test.quest"' in cfg
    build = IsoBuild.objects.get()
    assert build.outcome == "built" and build.user is not None and build.user.username == "operations"
    assert build.bytes_sent == len(data)
    assert "rootPass" not in build.request_settings and "confirmRootPass" not in build.request_settings
    assert SECRET not in str(build.request_settings)
    assert build.request_settings["dhcp"] == "no"


@pytest.mark.django_db
def test_dhcp_switch_on_ignores_the_static_fields(operations_client: Client) -> None:
    response = operations_client.post(URL, form_data(dhcp="yes", ipAddress="not an address", ipNetmask=""))
    assert response.status_code == 200
    cfg = ks_script(b"".join(response.streaming_content))
    assert b'DHCP="yes"' in cfg and b'IPADDR=""' in cfg


@pytest.mark.django_db
def test_fqdn_in_the_host_name_is_split_at_the_first_dot(operations_client: Client) -> None:
    response = operations_client.post(URL, form_data(hostName="edge3.pop.cdn.example", domainName=""))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="edge3.pop.cdn.example-centos72.iso"'
    close_response(response)


@pytest.mark.django_db
def test_errors_show_at_their_fields_and_the_form_stays_filled(operations_client: Client) -> None:
    response = operations_client.post(
        URL, form_data(ipAddress="192.0.2.300", interfaceMtu="99999", hostName="edge_1")
    )
    assert response.status_code == 400
    page = response.content.decode()
    ip = field_html(page, "ipAddress")
    # The serializer's message naming the field by its label, tied to the input for screen readers.
    error = ip.split('id="id_ipAddress-error">')[1].split("</p>")[0]
    assert error == "<span>IPv4 address must be a valid IPv4 address</span>"
    assert 'aria-describedby="id_ipAddress-error id_ipAddress-hint"' in ip and 'aria-invalid="true"' in ip
    assert 'value="192.0.2.300"' in ip
    assert "Interface MTU must be between 1280 and 9216" in field_html(page, "interfaceMtu")
    assert "Host name must be a valid host name" in field_html(page, "hostName")
    assert "Please fix 3 problems" in page and 'href="#id_ipAddress"' in page
    # Everything else is kept; the passwords are not.
    assert 'value="quest"' in field_html(page, "domainName")
    assert 'value="sda"' in field_html(page, "disk")
    assert '<option value="centos72" selected>' in page
    assert SECRET not in page
    refused = IsoBuild.objects.get()
    assert refused.outcome == "refused"
    assert refused.detail.startswith("validating: ")
    assert "ipAddress must be a valid IPv4 address" in refused.detail
    assert SECRET not in str(refused.request_settings) + refused.detail


@pytest.mark.django_db
def test_messages_are_the_apis_own_in_the_pages_words(operations_client: Client) -> None:
    """The same request refused by the API and by the page: the same rules and the same
    audit (the API's texts); the page names each field by its label."""
    body = static_request(ipGateway="", ip6Address="1.2.3.4", disk="/dev/sda")
    api_text = post_json(operations_client, "/api/5.0/isos", body).json()["alerts"][0]["text"]
    response = operations_client.post(URL, form_data(ipGateway="", ip6Address="1.2.3.4", disk="/dev/sda"))
    page = response.content.decode()
    assert "IPv4 gateway is required without DHCP" in field_html(page, "ipGateway")
    ip6 = field_html(page, "ip6Address")
    assert "IPv6 address must be a valid IPv6 address (with optional CIDR prefix)" in ip6
    assert "Boot disk must be a device name under /dev/ without the /dev/ prefix" in field_html(page, "disk")
    assert "ipGateway is required if DHCP is no" in api_text
    api_record, page_record = IsoBuild.objects.order_by("id")
    assert page_record.detail == api_record.detail == api_text


@pytest.mark.django_db
def test_password_mismatch_is_an_error_at_the_confirmation(operations_client: Client) -> None:
    response = operations_client.post(URL, form_data(confirmRootPass="something else"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "The two root passwords differ" in field_html(page, "confirmRootPass")
    assert SECRET not in page and "something else" not in page
    refused = IsoBuild.objects.get()
    assert refused.outcome == "refused"
    assert refused.detail == "validating: confirmRootPass must be the same as rootPass"


@pytest.mark.django_db
def test_missing_password_is_the_apis_rule(operations_client: Client) -> None:
    response = operations_client.post(URL, form_data(rootPass="", confirmRootPass=""))
    assert response.status_code == 400
    assert "Root password is required" in field_html(response.content.decode(), "rootPass")


@pytest.mark.django_db
def test_os_version_not_offered_is_an_error_at_the_select(row_granted_client: Client) -> None:
    client = row_granted_client
    response = client.post(URL, form_data(osversionDir="centos72"))
    assert response.status_code == 400
    select = response.content.decode().split('id="id_osversionDir"')[1].split("</div>")[0]
    assert "This OS version is not offered to you: &quot;centos72&quot;" in select


@pytest.mark.django_db
def test_source_directory_gone_is_a_polite_failure(
    operations_client: Client, kickstart_location: Path
) -> None:
    shutil.rmtree(kickstart_location / "centos72")
    response = operations_client.post(URL, form_data())
    assert response.status_code == 500
    page = response.content.decode()
    assert "problem on our side" in page and str(kickstart_location) not in page
    assert 'value="test"' in field_html(page, "hostName")
    assert IsoBuild.objects.get().outcome == "failed"


@pytest.mark.django_db
def test_the_form_needs_the_csrf_token(make_user: Callable[..., User], kickstart_location: Path) -> None:
    client = FormClient(enforce_csrf_checks=True)
    client.force_login(make_user("careful", "operations"))
    refused = client.post(URL, form_data())
    assert refused.status_code == 403
    assert "CSRF check failed" in refused.content.decode() and "Not allowed" in refused.content.decode()
    token = client.get(URL).cookies["csrftoken"].value
    response = client.post(URL, {**form_data(), "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    close_response(response)


@pytest.mark.django_db
def test_password_never_reaches_the_log(operations_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        operations_client.post(URL, form_data(ipAddress="bad"))
        close_response(operations_client.post(URL, form_data()))
    assert SECRET not in caplog.text


@pytest.mark.django_db
def test_management_fields_errors_open_their_section(operations_client: Client) -> None:
    closed = operations_client.get(URL).content.decode()
    assert '<details class="section">' in closed
    response = operations_client.post(URL, form_data(mgmtIpAddress="10.0.0.5"))
    assert response.status_code == 400
    page = response.content.decode()
    assert '<details class="section" open>' in page
    mgmt_interface, mgmt_gateway = field_html(page, "mgmtInterface"), field_html(page, "mgmtIpGateway")
    assert "Management interface is required with a management IP address" in mgmt_interface
    assert "Management gateway is required with a management IP address" in mgmt_gateway
    assert 'value="10.0.0.5"' in field_html(page, "mgmtIpAddress")


@pytest.mark.django_db
def test_management_interface_reaches_the_iso(operations_client: Client) -> None:
    body = form_data(
        mgmtIpAddress="10.0.0.5",
        mgmtIpNetmask="255.255.255.0",
        mgmtIpGateway="10.0.0.1",
        mgmtInterface="eth1",
    )
    response = operations_client.post(URL, body)
    assert response.status_code == 200
    mgmt_cfg = ks_script(b"".join(response.streaming_content), "mgmt_network.cfg")
    assert mgmt_cfg == b'IPADDR="10.0.0.5"\nNETMASK="255.255.255.0"\nGATEWAY="10.0.0.1"\nDEVICE="eth1"'


@pytest.mark.django_db
def test_a_nul_character_is_refused_at_its_field_and_audited(operations_client: Client) -> None:
    """PostgreSQL's text cannot hold a NUL: the refusal must still be answered and recorded."""
    response = operations_client.post(URL, form_data(hostName="db\x001"))
    assert response.status_code == 400
    assert "Host name must be" in field_html(response.content.decode(), "hostName")
    record = IsoBuild.objects.get()
    assert record.outcome == "refused" and "\x00" not in record.request_settings["hostName"]
