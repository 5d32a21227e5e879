"""Every rule of a POST isos request, through real HTTP, with Traffic Ops' messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from isos.models import IsoBuild
from isos.serializers import IsoRequestSerializer
from tests.support.api import post_json, static_request

URL = "/api/5.0/isos"
DISK_RULE = (
    "disk must be a device name under /dev/ without the /dev/ prefix, "
    "e.g. sda, nvme0n1 or disk/by-id/wwn-0x5000c500a1b2c3d4"
)


def alert_of(response: Any) -> str:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert len(body["alerts"]) == 1 and body["alerts"][0]["level"] == "error"
    return str(body["alerts"][0]["text"])


def refused(client: Client, body: Any) -> str:
    response = post_json(client, URL, body)
    assert response.status_code == 400, response.content[:300]
    return alert_of(response)


@pytest.mark.django_db
def test_empty_object_lists_every_required_field_in_traffic_ops_order(operations_client: Client) -> None:
    assert refused(operations_client, {}) == (
        "validating: osversionDir is required, hostName is required, domainName is required, "
        "rootPass is required, dhcp is required, interfaceMtu is required"
    )


@pytest.mark.django_db
def test_static_addresses_required_when_dhcp_is_no(operations_client: Client) -> None:
    body = static_request(ipAddress=None, ipNetmask=None, ipGateway="")
    assert refused(operations_client, body) == (
        "validating: ipAddress is required if DHCP is no, ipNetmask is required if DHCP is no, "
        "ipGateway is required if DHCP is no"
    )


@pytest.mark.django_db
def test_mgmt_address_needs_interface_and_gateway(operations_client: Client) -> None:
    body = static_request(mgmtIpAddress="10.0.0.5")
    assert refused(operations_client, body) == (
        "validating: mgmtInterface is required when mgmtIpAddress is provided, "
        "mgmtIpGateway is required when mgmtIpAddress is provided"
    )


@pytest.mark.django_db
def test_all_broken_rules_reported_together_in_order(operations_client: Client) -> None:
    body = static_request(
        hostName=None, ipGateway=None, ip6Address="1.2.3.4", interfaceMtu=70000, disk="/dev/sda"
    )
    assert refused(operations_client, body) == (
        "validating: hostName is required, ipGateway is required if DHCP is no, "
        "ip6Address must be a valid IPv6 address (with optional CIDR prefix), "
        "interfaceMtu must be between 1280 and 9216 (1500 is the norm, 9000 for jumbo frames), "
        "disk must be a device name under /dev/ without the /dev/ prefix, "
        "e.g. sda, nvme0n1 or disk/by-id/wwn-0x5000c500a1b2c3d4"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hostName", "-bad", "hostName must be a valid host name (letters, digits and inner hyphens)"),
        ("hostName", "a" * 64, "hostName must be at most 63 characters"),
        ("hostName", "te st", "hostName must be a valid host name (letters, digits and inner hyphens)"),
        (
            "hostName",
            'x"; rm -rf /',
            "hostName must be a valid host name (letters, digits and inner hyphens)",
        ),
        ("domainName", "quest..com", "domainName must be a valid domain name (dot-separated host names)"),
        ("domainName", "quest.com$(id)", "domainName must be a valid domain name (dot-separated host names)"),
        ("domainName", "q" * 300, "domainName must be at most 253 characters"),
        ("rootPass", "x" * 1025, "rootPass must be at most 1024 characters"),
        ("dhcp", "maybe", "dhcp must be yes or no"),
        ("dhcp", 2, "dhcp must be yes or no"),
        ("ipAddress", "1.2.3", "ipAddress must be a valid IPv4 address"),
        ("ipAddress", "01.2.3.4", "ipAddress must be a valid IPv4 address"),
        ("ipAddress", "1.2.3.4\nX=1", "ipAddress must be a valid IPv4 address"),
        ("ipAddress", "1.2.3.4\nIPADDR=6.6.6.6", "ipAddress must be at most 15 characters"),
        ("ipNetmask", "255.0.255.0", "ipNetmask must be a valid IPv4 netmask, e.g. 255.255.255.0"),
        ("ipNetmask", "0.0.0.255", "ipNetmask must be a valid IPv4 netmask, e.g. 255.255.255.0"),
        ("ipGateway", "::1", "ipGateway must be a valid IPv4 address"),
        (
            "ip6Address",
            "::ffff:1.2.3.4",
            "ip6Address must be a valid IPv6 address (with optional CIDR prefix)",
        ),
        ("ip6Address", "fe80::1%eth0", "ip6Address must be a valid IPv6 address (with optional CIDR prefix)"),
        (
            "ip6Address",
            "2001:db8::1/129",
            "ip6Address must be a valid IPv6 address (with optional CIDR prefix)",
        ),
        ("ip6Gateway", "2001:db8::1/64", "ip6Gateway must be a valid IPv6 address (without prefix)"),
        ("interfaceMtu", "15OO", "interfaceMtu must be an integer"),
        ("interfaceMtu", 1500.5, "interfaceMtu must be an integer"),
        ("interfaceMtu", True, "interfaceMtu must be an integer"),
        (
            "interfaceMtu",
            576,
            "interfaceMtu must be between 1280 and 9216 (1500 is the norm, 9000 for jumbo frames)",
        ),
        (
            "interfaceName",
            "eth0 eth1",
            "interfaceName must be a Linux interface name (at most 15 letters, digits, _ . -)",
        ),
        ("interfaceName", "averyverylongname", "interfaceName must be at most 15 characters"),
        (
            "interfaceName",
            "$IFACE",
            "interfaceName must be a Linux interface name (at most 15 letters, digits, _ . -)",
        ),
        (
            "disk",
            "../sda",
            DISK_RULE,
        ),
        (
            "disk",
            "sda`reboot`",
            DISK_RULE,
        ),
        ("hostName", 42, "hostName must be a string"),
        ("osversionDir", ["centos72"], "osversionDir must be a string"),
        ("domainName", {"a": 1}, "domainName must be a string"),
    ],
)
def test_one_broken_rule(operations_client: Client, field: str, value: Any, message: str) -> None:
    assert refused(operations_client, static_request(**{field: value})) == f"validating: {message}"


@pytest.mark.django_db
def test_fqdn_longer_than_253_is_refused(operations_client: Client) -> None:
    domain = ".".join(["d" * 60] * 4)  # 243 characters
    assert refused(operations_client, static_request(hostName="h" * 20, domainName=domain)) == (
        "validating: the FQDN hostName.domainName must be at most 253 characters"
    )


@pytest.mark.django_db
def test_mgmt_gateway_must_match_address_family(operations_client: Client) -> None:
    body = static_request(mgmtIpAddress="10.0.0.5", mgmtIpGateway="2001:db8::1", mgmtInterface="em3")
    assert refused(operations_client, body) == (
        "validating: mgmtIpGateway must be of the same IP family as mgmtIpAddress"
    )


@pytest.mark.django_db
def test_static_fields_are_ignored_with_dhcp(operations_client: Client) -> None:
    """With dhcp yes, even broken static addresses are not checked (Traffic Ops ignores them)."""
    body = static_request(dhcp="YES", ipAddress="nonsense", ip6Address="1.2.3.4", domainName="bad..name")
    assert refused(operations_client, body) == (
        "validating: domainName must be a valid domain name (dot-separated host names)"
    )


@pytest.mark.django_db
def test_unknown_osversion_dir_has_its_own_alert(operations_client: Client) -> None:
    assert refused(operations_client, static_request(osversionDir="centos99")) == (
        'invalid OS version directory: "centos99"'
    )
    assert refused(operations_client, static_request(osversionDir="../etc")) == (
        'invalid OS version directory: "../etc"'
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("null", "application/json", "decoding: expected a JSON object, got null"),
        ("[]", "application/json", "decoding: expected a JSON object, got an array"),
        ('"text"', "application/json", "decoding: expected a JSON object, got a string"),
        ("42", "application/json", "decoding: expected a JSON object, got a number"),
        ("", "application/json", "decoding: the request body is empty; expected a JSON object"),
        ("{not json", "application/json; charset=UTF-8", None),
        (b"\xff\xfe{}", "application/json", None),
    ],
)
def test_bodies_that_are_not_a_json_object(
    operations_client: Client, body: str | bytes, content_type: str, text: str | None
) -> None:
    response = operations_client.post(URL, data=body, content_type=content_type)
    assert response.status_code == 400
    alert = alert_of(response)
    if text is None:
        assert alert.startswith("decoding: ")
    else:
        assert alert == text


@pytest.mark.django_db
def test_refusals_are_audited_without_the_password(operations_client: Client) -> None:
    refused(operations_client, static_request(hostName="-bad", rootPass="s3cret-Pa55"))
    refused(operations_client, None)
    builds = list(IsoBuild.objects.order_by("id"))
    assert [build.outcome for build in builds] == ["refused", "refused"]
    assert builds[0].detail.startswith("validating: hostName must be")
    assert builds[0].osversion_dir == "centos72" and builds[0].username == "operations"
    assert "rootPass" not in builds[0].request_settings
    assert builds[1].detail.startswith("decoding: ")
    assert all("s3cret-Pa55" not in repr(build.__dict__) for build in builds)


SHELL_METACHARACTERS = [
    '"',
    "'",
    "`",
    "$(reboot)",
    "${IFS}",
    ";",
    "|",
    "&",
    "<",
    ">",
    "\\",
    "\n",
    " ",
    "*",
    "#",
]
# Every field of the request but the hashed password and the two that are not text: a
# field added to the serializer is covered here at once.
FIELDS_THAT_REACH_THE_CFG_FILES = [
    name for name in IsoRequestSerializer().fields if name not in {"rootPass", "dhcp", "interfaceMtu"}
]
MGMT = {"mgmtIpAddress": "10.0.0.5", "mgmtIpNetmask": "255.255.255.0", "mgmtIpGateway": "10.0.0.1"}


@pytest.mark.django_db
@pytest.mark.parametrize("field", FIELDS_THAT_REACH_THE_CFG_FILES)
def test_every_fields_shell_metacharacters_are_refused(operations_client: Client, field: str) -> None:
    """Each metacharacter, inside a value that is otherwise valid for the field, is a 400 naming it.

    Inside, not at the end: whitespace around a value is trimmed, as DRF does, before any rule.
    """
    base = static_request(mgmtInterface="eth1", **MGMT)
    for character in SHELL_METACHARACTERS:
        value = f"{base[field][:1]}{character}{base[field][1:]}"
        text = refused(operations_client, {**base, field: value})
        assert field in text or "FQDN" in text or "OS version" in text, (character, text)
    assert not IsoBuild.objects.filter(outcome="built").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("rootPass", "a\x00b", "a NUL character"),
        ("hostName", "db\x001", "a NUL character"),
        ("someUnknownKey", "\x00", "a NUL character"),
        ("rootPass", "a\ud800b", "an unpaired UTF-16 surrogate"),
        ("hostName", "\udfff", "an unpaired UTF-16 surrogate"),
    ],
)
def test_text_no_database_can_store_is_refused_before_the_rules(
    operations_client: Client, field: str, value: str, problem: str
) -> None:
    """JSON allows "\\u0000" and "\\ud800"; PostgreSQL's text and UTF-8 do not."""
    body = json.dumps(static_request(**{field: value}))  # escapes both as \\uXXXX
    response = operations_client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert alert_of(response) == f"decoding: the request body holds {problem}"
    assert IsoBuild.objects.get().outcome == "refused"
