"""No line break, control character or non-ASCII digit gets past a request rule (docs/api.md).

The installer ``source``s the cfg files, so a line break inside a value would start a line
of its own (``domainName`` ``"cdn\\n.example"`` once wrote ``HOSTNAME="edge1.cdn`` and a
line ``.example"``: the rules matched with ``$``, which also matches before a final
newline). Every field is tried with every kind of line break and control character at
every place inside its value (before a dot or a slash too), through the serializer, the
API, the Generate ISO page and ``manage.py generate_iso``; each is refused with the
field's own message, never a 500.

Digits are ASCII only: ``str.isdigit()`` and ``\\d`` take superscripts (``int()`` cannot
read them: a 500) and other scripts' digits (``int()`` reads them: a value the docs do not
allow).
"""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client
from passlib.hash import sha512_crypt

from isos.kickstart import render_ks_scripts
from isos.models import IsoBuild
from isos.page_messages import page_message
from isos.serializers import IsoRequestSerializer
from tests.support.api import STATIC_COMMAND_OPTIONS, download, post_json, static_request
from tests.support.isoread import read_rr_files
from tests.support.sources import CATALOG

URL = "/api/5.0/isos"
PAGE_URL = "/isos/generate/"
OFFERED = set(CATALOG.values())
PASSWORD = "twelve"

# One of each kind: C0 line breaks and controls, DEL, C1 (NEL, CSI), Unicode's line and
# paragraph separators, invisible format characters (zero-width space, right-to-left
# override, byte order mark), and the tab.
CHARACTERS = {
    "LF": "\n",
    "CR": "\r",
    "CRLF": "\r\n",
    "VT": "\v",
    "FF": "\f",
    "NUL": "\x00",
    "SOH": "\x01",
    "ESC": "\x1b",
    "FS": "\x1c",
    "US": "\x1f",
    "TAB": "\t",
    "DEL": "\x7f",
    "NEL": "\x85",
    "CSI": "\x9b",
    "LS": "\u2028",
    "PS": "\u2029",
    "ZWSP": "\u200b",
    "RLO": "\u202e",
    "BOM": "\ufeff",
}

# A request using every field (a management interface, a prefix, a disk path), so that
# each field's value is checked and written.
BASE = static_request(
    domainName="cdn.example",
    ipNetmask="255.255.255.0",
    ip6Address="1::3:3:7/64",
    interfaceMtu="1500",
    disk="disk/by-id/wwn-0x5000c500a1b2c3d4",
    mgmtIpAddress="10.0.0.5",
    mgmtIpNetmask="255.255.255.0",
    mgmtIpGateway="10.0.0.1",
    mgmtInterface="eth1",
)

IPV4 = "must be a valid IPv4 address"
NETMASK = "must be a valid IPv4 netmask, e.g. 255.255.255.0"
INTERFACE = "must be a Linux interface name (at most 15 letters, digits, _ . -)"
ANY_IP = "must be a valid IPv4 or IPv6 address"
# Each field's own message (docs/api.md), written out here rather than read from the product.
RULES = {
    "osversionDir": "must be a directory name without control characters or line breaks",
    "hostName": "must be a valid host name (letters, digits and inner hyphens)",
    "domainName": "must be a valid domain name (dot-separated host names)",
    "dhcp": "must be yes or no",
    "ipAddress": IPV4,
    "ipNetmask": NETMASK,
    "ipGateway": IPV4,
    "ip6Address": "must be a valid IPv6 address (with optional CIDR prefix)",
    "ip6Gateway": "must be a valid IPv6 address (without prefix)",
    "interfaceMtu": "must be an integer",
    "interfaceName": INTERFACE,
    "disk": (
        "must be a device name under /dev/ without the /dev/ prefix, "
        "e.g. sda, nvme0n1 or disk/by-id/wwn-0x5000c500a1b2c3d4"
    ),
    "mgmtIpAddress": ANY_IP,
    "mgmtIpNetmask": NETMASK,
    "mgmtIpGateway": ANY_IP,
    "mgmtInterface": INTERFACE,
}
# Every field the serializer has but the password, which only its hash leaves (tested below).
CHECKED_FIELDS = [name for name in IsoRequestSerializer().get_fields() if name != "rootPass"]

# ASCII digits only: superscripts, other scripts' digits, full-width, mathematical.
NON_ASCII_DIGITS = {
    "superscript two": "\u00b2",
    "arabic-indic": "\u0666\u0664",
    "extended arabic-indic": "\u06f6\u06f4",
    "devanagari": "\u096c\u096a",
    "full-width": "\uff16\uff14",
    "mathematical bold": "\U0001d7d4\U0001d7d2",
}
DIGIT_CASES = [
    ("ip6Address", "2001:db8::1/\u00b2"),  # the attack: a 500 before
    ("ip6Address", "2001:db8::1/\u00b9\u00b2\u2078"),
    ("ip6Address", "2001:db8::1/\u0666\u0664"),
    ("ip6Address", "2001:db8::1/\uff16\uff14"),
    ("ip6Address", "2001:db8::1/\U0001d7d4\U0001d7d2"),
    ("ip6Address", "2001:db8::\uff11"),
    ("ip6Gateway", "8::\u0668"),
    ("ipAddress", "\u0661.3.3.7"),
    ("ipAddress", "1.3.3.\uff17"),
    ("ipNetmask", "255.255.255.\u00b2"),
    ("ipGateway", "8.0.0.\u0668"),
    ("mgmtIpAddress", "2001:db8::5/\u00b2"),
    ("mgmtIpAddress", "2001:db8::5/\u0666\u0664"),
    ("mgmtIpAddress", "10.0.0.\u0665"),
    ("mgmtIpAddress", "\uff11\uff10.0.0.5"),
    ("mgmtIpGateway", "10.0.0.\u0661"),
    ("mgmtIpGateway", "10.0.0.\u00b9"),
    ("mgmtIpNetmask", "255.255.255.\uff10"),
    ("interfaceMtu", "\u0661\u0665\u0660\u0660"),  # 1500, Arabic-Indic
    ("interfaceMtu", "\uff11\uff15\uff10\uff10"),  # 1500, full-width
    ("interfaceMtu", "\u00b9\u2075\u2070\u2070"),  # superscripts
    ("interfaceMtu", "15\u0660\u0660"),
    ("interfaceMtu", "\U0001d7cf\U0001d7d3\U0001d7ce\U0001d7ce"),
    ("dhcp", "\uff11"),
]


def validated(body: dict[str, Any]) -> IsoRequestSerializer:
    serializer = IsoRequestSerializer(data=body, context={"offered_directories": OFFERED})
    serializer.is_valid()
    return serializer


def spliced(value: str, at: int, character: str) -> str:
    return value[:at] + character + value[at:]


def is_control(text: str) -> bool:
    return any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in text)


# ---- every field, every character, every place ---------------------------------------------


def test_the_base_request_passes_every_rule() -> None:
    assert validated(BASE).errors == {}


@pytest.mark.parametrize("field", CHECKED_FIELDS)
def test_a_control_character_anywhere_in_a_value_is_refused_with_the_fields_message(field: str) -> None:
    """Inside the value (next to a dot or a slash too) it is refused; at either end, one the
    rules trim as blank (a line break) is dropped and the value written is the clean one."""
    base = str(BASE[field])
    clean = validated(BASE).validated_data[field]
    for name, character in CHARACTERS.items():
        for at in range(len(base) + 1):
            value = spliced(base, at, character)
            serializer = validated({**BASE, field: value})
            where = (name, at, value)
            if value.strip() == base:
                assert serializer.errors == {}, where
                assert serializer.validated_data[field] == clean, where
                continue
            assert serializer.errors == {field: [f"{field} {RULES[field]}"]}, where
            assert serializer.alert_text == f"validating: {field} {RULES[field]}", where


@pytest.mark.parametrize("character", CHARACTERS.values(), ids=CHARACTERS.keys())
def test_whatever_passes_writes_cfg_files_of_inert_single_lines(character: str) -> None:
    """Every field at once holding the character at its end: what the rules let through (the
    trimmed values) is written with no control character at all."""
    body = {name: f"{value}{character}" for name, value in BASE.items() if name != "rootPass"}
    body["rootPass"] = PASSWORD
    serializer = validated(body)
    if serializer.errors:
        assert not character.isspace()  # only a trimmed blank may pass
        return
    files = render_ks_scripts(serializer.iso_request(), ["8.8.8.8"], "sha512", "boot")
    for name in ("network.cfg", "mgmt_network.cfg", "disk.cfg", "state.out"):
        text = files[f"ks_scripts/{name}"].decode()
        assert not is_control(text.replace("\n", "")), (name, text)
        assert len(text.rstrip("\n").split("\n")) == len(text.rstrip("\n").splitlines()), name


# ---- the attack, through the API -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domainName", "cdn\n.example"),
        ("disk", "sda\n/reboot"),
        ("hostName", "edge1\u2028x"),
        ("domainName", "cdn\u0085.example"),
        ("disk", "sda\r/reboot"),
        ("interfaceName", "eth0\x0bx"),
        ("osversionDir", "centos72\nx"),
    ],
)
def test_the_api_refuses_a_line_break_inside_a_value(
    operations_client: Client, field: str, value: str
) -> None:
    response = post_json(operations_client, URL, static_request(**{field: value}))
    assert response.status_code == 400, response.content[:300]
    assert response.json()["alerts"] == [{"text": f"validating: {field} {RULES[field]}", "level": "error"}]
    assert list(IsoBuild.objects.values_list("outcome", flat=True)) == ["refused"]


@pytest.mark.django_db
def test_a_trailing_line_break_is_trimmed_and_never_written(
    operations_client: Client, tmp_path: Path
) -> None:
    body = static_request(domainName="cdn.example\n", disk="sda\r\n", hostName="\u2028edge1")
    _, data = download(operations_client, body)
    iso = tmp_path / "out.iso"
    iso.write_bytes(data)
    files = read_rr_files(iso)
    assert b'HOSTNAME="edge1.cdn.example"\n' in files["ks_scripts/network.cfg"]
    assert files["ks_scripts/disk.cfg"] == b'boot_drives="sda"'


# ---- the root password: kept as sent, only its hash leaves -----------------------------------


@pytest.mark.parametrize("character", [c for c in CHARACTERS.values() if c != "\x00"])
def test_a_root_password_with_control_characters_is_hashed_onto_one_line(character: str) -> None:
    """docs/api.md: the password is kept as sent (only NUL and surrogates are refused); it
    never reaches a file but as a hash, so password.cfg stays one line."""
    password = f"pa{character}ss"
    serializer = validated({**BASE, "rootPass": password})
    assert serializer.errors == {}
    files = render_ks_scripts(serializer.iso_request(), ["8.8.8.8"], "sha512", "boot")
    line = files["ks_scripts/password.cfg"].decode()
    assert line.count("\n") == 1 and line.endswith("\n") and not is_control(line[:-1])
    assert sha512_crypt.verify(password, line.split()[2])


# ---- ASCII digits only ---------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), DIGIT_CASES)
def test_non_ascii_digits_are_refused_by_the_fields_rule(field: str, value: str) -> None:
    serializer = validated({**BASE, field: value})
    assert serializer.errors == {field: [f"{field} {RULES[field]}"]}


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS.values(), ids=NON_ASCII_DIGITS.keys())
@pytest.mark.parametrize("field", ["ip6Address", "mgmtIpAddress", "mgmtIpGateway"])
def test_an_ipv6_prefix_of_non_ascii_digits_is_refused(field: str, digits: str) -> None:
    body = {**BASE, "mgmtIpAddress": "2001:db8::5/64", "mgmtIpGateway": "2001:db8::1"}
    body[field] = f"2001:db8::9/{digits}"
    assert validated(body).errors == {field: [f"{field} {RULES[field]}"]}


def test_ascii_prefixes_and_mtus_still_pass() -> None:
    serializer = validated({**BASE, "ip6Address": "2001:db8::1/064", "interfaceMtu": " 9000 "})
    assert serializer.errors == {}
    assert serializer.validated_data["ip6Address"] == "2001:db8::1/64"
    assert serializer.validated_data["interfaceMtu"] == 9000


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), DIGIT_CASES)
def test_the_api_answers_non_ascii_digits_with_a_400_and_audits_the_refusal(
    operations_client: Client, field: str, value: str
) -> None:
    response = post_json(operations_client, URL, {**BASE, field: value})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["alerts"][0]["text"] == f"validating: {field} {RULES[field]}"
    build = IsoBuild.objects.get()
    assert build.outcome == "refused" and build.detail == f"validating: {field} {RULES[field]}"


# ---- the Generate ISO page and manage.py generate_iso walk the same rules -------------------


def post_form(client: Client, data: dict[str, str]) -> Any:
    """What a browser posts: the form, URL-encoded."""
    return client.post(PAGE_URL, urlencode(data), content_type="application/x-www-form-urlencoded")


def form_data(**overrides: str) -> dict[str, str]:
    data = {name: str(value) for name, value in BASE.items() if name != "dhcp"}
    data["confirmRootPass"] = data["rootPass"]
    data.update(overrides)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("field", [name for name in CHECKED_FIELDS if name != "dhcp"])
def test_the_page_refuses_a_line_break_or_a_non_ascii_digit_beside_the_field(
    operations_client: Client, field: str
) -> None:
    values = [spliced(str(BASE[field]), 1, "\n"), spliced(str(BASE[field]), 1, "\u2028")]
    values += [value for name, value in DIGIT_CASES if name == field]
    for value in values:
        response = post_form(operations_client, form_data(**{field: value}))
        assert response.status_code == 400, (value, response.status_code)
        errors = response.context["form"].errors
        assert set(errors) == {field}, (value, errors)
        # The API's message, naming the field by its label (isos.page_messages).
        assert [str(message) for message in errors[field]] == [page_message(f"{field} {RULES[field]}")], value
    assert set(IsoBuild.objects.values_list("outcome", flat=True)) == {"refused"}


@pytest.mark.django_db
def test_the_page_answers_the_superscript_prefix_with_a_400(operations_client: Client) -> None:
    response = post_form(operations_client, form_data(ip6Address="2001:db8::1/\u00b2"))
    assert response.status_code == 400
    assert IsoBuild.objects.get().outcome == "refused"


def run_command(*options: str) -> tuple[int, str]:
    err = io.StringIO()
    try:
        call_command("generate_iso", *options, stdout=io.StringIO(), stderr=err)
    except SystemExit as exit:
        return int(exit.code or 0), err.getvalue()
    return 0, err.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("--domain-name", "domainName", "cdn\n.example"),
        ("--disk", "disk", "sda\n/reboot"),
        ("--host-name", "hostName", "te\rst"),
        ("--osversion-dir", "osversionDir", "cent\x1bos72"),
        ("--ip6-address", "ip6Address", "2001:db8::1/\u00b2"),
        ("--interface-mtu", "interfaceMtu", "\u0661\u0665\u0660\u0660"),
        ("--mgmt-ip-address", "mgmtIpAddress", "10.0.0.\u0665"),
    ],
)
def test_the_command_refuses_them_too(
    operator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, field: str, value: str
) -> None:
    monkeypatch.setenv("ISO_ROOT_PASS", PASSWORD)
    options = [o for o in STATIC_COMMAND_OPTIONS if not o.startswith(f"{option}=")]
    output = f"--output={tmp_path / 'x.iso'}"
    status, err = run_command(
        *options, f"{option}={value}", "--user=op", "--root-pass-env=ISO_ROOT_PASS", output
    )
    assert status == 2
    assert f"{field} {RULES[field]}" in err
    assert not (tmp_path / "x.iso").exists()
    assert IsoBuild.objects.get().outcome == "refused"
