"""Property tests of the ``POST isos`` request rules: whatever the body, either one 400 alert or
an ISO whose cfg files parse back to exactly the input, and never a value escaping its quotes.

The example tests (``test_iso_request_rules.py``, ``test_kickstart_files.py``) pin each rule and
each byte; these let hypothesis mix valid values (in their loose forms: padded, odd key case,
``"YES"``/``True``/``1``, MTU as a string) with hostile ones (quotes, backslashes, ``$``,
backticks, ``;``, newlines, NUL, unicode, very long strings, wrong JSON types, missing keys,
decoy duplicate keys, unknown keys). The cfg files are read back by an independent parser of
docs/api.md's ``KEY="value"`` lines, by ``shlex`` and, for the ISOs, by bash itself (the installer
``source``s them). The expected values come from docs/api.md, computed here, not from the product.

Property A runs the serializer and the kickstart rendering only (many examples); property B
goes through real HTTP and reads the ISO back with pycdlib (fewer examples). Both are
derandomized, so CI always runs the same inputs.

A product bug these properties found (a lone surrogate in rootPass reaching the hashing, past
the rules) is mended; its reproduction is the last test.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import shlex
import string
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from passlib.hash import sha512_crypt

from isos.kickstart import render_ks_scripts
from isos.serializers import IsoRequestSerializer
from tests.support.api import close_response, post_json, static_request
from tests.support.isoread import read_rr_files
from tests.support.sources import CATALOG

URL = "/api/5.0/isos"
OFFERED = frozenset(CATALOG.values())
NAMESERVERS = ["8.8.8.8", "8.8.4.4"]  # what the kickstart_location fixture configures
BOOT_DESCRIPTION = "property test boot"
BONDING_OPTS = "miimon=100 mode=4 lacp_rate=fast xmit_hash_policy=layer3+4"
CFG_FILES = ("network.cfg", "mgmt_network.cfg", "disk.cfg")
KS_FILES = {f"ks_scripts/{name}" for name in (*CFG_FILES, "password.cfg", "state.out")}

# docs/api.md's request keys; written out here so the oracle does not borrow the product's tables.
FIELDS = (
    "osversionDir",
    "hostName",
    "domainName",
    "rootPass",
    "dhcp",
    "ipAddress",
    "ipNetmask",
    "ipGateway",
    "ip6Address",
    "ip6Gateway",
    "interfaceMtu",
    "interfaceName",
    "disk",
    "mgmtIpAddress",
    "mgmtIpNetmask",
    "mgmtIpGateway",
    "mgmtInterface",
)
FIELD_BY_LOWER = {name.lower(): name for name in FIELDS}
STATIC_ONLY = {"ipAddress", "ipNetmask", "ipGateway", "ip6Address", "ip6Gateway"}
DHCP_YES: list[Any] = ["yes", "YES", "Yes", "true", "TRUE", "1", " yes ", True, 1]
DHCP_NO: list[Any] = ["no", "NO", "No", "false", "False", "0", "\tno\n", False, 0]

# One assignment per line, docs/api.md's shape; the value class leaves out everything a shell
# would still interpret between double quotes, line breaks of every kind and control characters.
ASSIGNMENT = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"\\$`\x00-\x1f\x7f-\x9f\u2028\u2029]*)"')
SHA512_CRYPT = re.compile(r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}")

ALNUM = string.ascii_letters + string.digits
INTERFACE_ALPHABET = ALNUM + "_.-"
DISK_ALPHABET = ALNUM + "_.:+@,=-"
HOSTILE_FRAGMENTS = [
    '"',
    "'",
    "\\",
    "$",
    "`",
    ";",
    "\n",
    "\r",
    "\x00",
    " ",
    "\t",
    "$(id)",
    "`reboot`",
    '";reboot;"',
    '\\"',
    "${IFS}",
    "#",
    "=",
    "|",
    "&",
    "/",
    "..",
    "%eth0",
    "\x1b[31m",
    "\u2028",
    "\u00a0",
    "\u200b",
    "é",
    "\U0001f600",
    "\ud800",  # a lone surrogate: valid JSON ("\ud800"), not encodable as UTF-8
    "\udfff",
]
# The ones a shell still acts on between double quotes, or that end the line.
SHELL_FRAGMENTS = ['"', "\\", "$", "`", "\n", "\r", "$(id)", "`reboot`", '";reboot;"', '\\"']
MODES = ("none", "one", "one", "some", "many")
HTTP_MODES = ("none", "none", "none", "none", "one", "some")  # more ISOs: each one is worth reading back
# One at a time into each field, by the focused test.
SHELL_CHARACTERS = {
    "dquote": '"',
    "backslash": "\\",
    "dollar": "$",
    "backtick": "`",
    "newline": "\n",
    "cr": "\r",
    # Line breaks to readers other than the shell (Python's splitlines, log readers, editors).
    "vt": "\v",
    "nel": "\x85",
    "line-separator": "\u2028",
}
PAD_BEFORE = ["", "", " ", "\t"]
PAD_AFTER = ["", "", " ", "\n", " \r\n"]

A_EXAMPLES = 300
FOCUSED_EXAMPLES = 4  # for each of the 17 fields and 6 shell characters
B_EXAMPLES = 40


@dataclass(frozen=True)
class Case:
    """A request body, and whether it was built only from valid parts (then it must pass)."""

    body: dict[str, Any]
    must_pass: bool


# ---- strategies -------------------------------------------------------------------------------


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """The value with the blanks around it that the rules trim (a trailing newline too)."""
    return st.tuples(st.sampled_from(PAD_BEFORE), values, st.sampled_from(PAD_AFTER)).map("".join)


@st.composite
def host_labels(draw: st.DrawFn, long: bool = False) -> str:
    size = draw(st.integers(55, 63) if long else st.integers(1, 12))
    if size == 1:
        return draw(st.sampled_from(ALNUM))
    inner = draw(st.text(ALNUM + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(ALNUM)) + inner + draw(st.sampled_from(ALNUM))


def domain_names() -> st.SearchStrategy[str]:
    short = st.lists(host_labels(), min_size=1, max_size=4).map(".".join)
    # Near the 253-character FQDN limit, on both sides of it.
    near_limit = st.lists(host_labels(long=True), min_size=4, max_size=4).map(".".join)
    return st.one_of(short, short, short, near_limit)


def ipv4_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["192.0.2.10", "10.0.0.1", "255.255.255.255"]), st.ip_addresses(v=4).map(str)
    )


def netmask_texts() -> st.SearchStrategy[str]:
    return st.integers(0, 32).map(lambda prefix: str(ipaddress.IPv4Network((0, prefix)).netmask))


@st.composite
def ipv6_texts(draw: st.DrawFn, prefix: bool) -> str:
    address = ipaddress.IPv6Address(
        draw(st.one_of(st.sampled_from(["2001:db8::1", "::1"]), st.ip_addresses(v=6).map(str)))
    )
    assume(address.ipv4_mapped is None)  # refused by the rules: not a valid value
    # Loose spellings: the rules write the normal form (docs/api.md).
    text: str = draw(
        st.sampled_from(
            [address.compressed, address.exploded, address.compressed.upper(), address.exploded.upper()]
        )
    )
    if prefix and draw(st.booleans()):
        text += "/" + draw(st.sampled_from(["64", "128", "0", "064"]) | st.integers(0, 128).map(str))
    return text


def mtus() -> st.SearchStrategy[Any]:
    in_range = st.integers(1280, 9216)
    return st.one_of(
        st.sampled_from([1500, 9000, "1500", "9000", " 1500 ", "9000\n"]), in_range, in_range.map(str)
    )


def interface_names() -> st.SearchStrategy[str]:
    examples = ["eth0", "em3", "ens1f0", "br-lan", "eno1_2"]
    # docs/api.md: a name matching ^bond\d+ gets a bond (so bond0.100 does too); bondx does not.
    bonds = ["bond0", "bond12", "bond0.100", "bond1-lacp", "bondx", "Bond0"]
    generated = st.text(INTERFACE_ALPHABET, min_size=1, max_size=15).filter(lambda n: n not in {".", ".."})
    return st.one_of(st.sampled_from(examples), st.sampled_from(bonds), generated)


def disk_names() -> st.SearchStrategy[str]:
    examples = ["sda", "nvme0n1", "disk/by-id/wwn-0x5000c500a1b2c3d4", "disk/by-path/pci-0000:00:1f.2-ata-1"]
    segment = st.text(DISK_ALPHABET, min_size=1, max_size=20).filter(lambda s: s not in {".", ".."})
    return st.one_of(st.sampled_from(examples), st.lists(segment, min_size=1, max_size=4).map("/".join))


def root_passwords() -> st.SearchStrategy[str]:
    # Valid passwords may hold anything but NUL: they are only ever hashed.
    anything = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
    hostile = st.sampled_from(['pa"ss', "it's", "back\\slash", "$(reboot)", "`id`", "a\nb", " spaced "])
    return st.one_of(anything, hostile).filter(lambda p: p.strip() != "")


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (and NaN/Infinity, which Python's json writes and a strict parser refuses)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
        max_leaves=4,
    )


VALID: dict[str, st.SearchStrategy[Any]] = {
    "osversionDir": padded(st.sampled_from(sorted(OFFERED))),
    "hostName": padded(host_labels()),
    "domainName": padded(domain_names()),
    "rootPass": root_passwords(),
    "ipAddress": padded(ipv4_texts()),
    "ipNetmask": padded(netmask_texts()),
    "ipGateway": padded(ipv4_texts()),
    "ip6Address": padded(ipv6_texts(prefix=True)),
    "ip6Gateway": padded(ipv6_texts(prefix=False)),
    "interfaceMtu": mtus(),
    "interfaceName": padded(interface_names()),
    "disk": padded(disk_names()),
    "mgmtIpNetmask": padded(netmask_texts()),
    "mgmtInterface": padded(interface_names()),
}


# What a splice starts from, for the fields VALID leaves to request_cases.
SPLICE_BASES: dict[str, st.SearchStrategy[Any]] = {
    **VALID,
    "dhcp": st.sampled_from([word for word in DHCP_YES + DHCP_NO if isinstance(word, str)]),
    "mgmtIpAddress": padded(ipv4_texts() | ipv6_texts(prefix=True)),
    "mgmtIpGateway": padded(ipv4_texts() | ipv6_texts(prefix=True)),
}


@st.composite
def spliced_values(draw: st.DrawFn, name: str, fragment: str | None = None) -> str:
    """A valid value with a hostile fragment (``fragment``, or one drawn: half the time one a
    shell would still act on between double quotes) put in anywhere."""
    base = str(draw(SPLICE_BASES[name]))
    at = draw(st.integers(0, len(base)))
    if fragment is None:
        fragment = draw(st.sampled_from(SHELL_FRAGMENTS) | st.sampled_from(HOSTILE_FRAGMENTS))
    return base[:at] + fragment + base[at:]


@st.composite
def spoiled_values(draw: st.DrawFn, name: str) -> Any:
    """A value meant to break ``name``'s rule (it may still pass by chance)."""
    kind = draw(st.sampled_from(["splice"] * 5 + ["long", "type", "blank", "text"]))
    if kind == "splice":
        return draw(spliced_values(name))
    if kind == "long":
        size = draw(st.sampled_from([16, 64, 254, 256, 1025, 4096]))
        return draw(st.sampled_from(["a", "9", "a.", "1:", "x$"])) * size
    if kind == "type":
        return draw(json_values().filter(lambda v: not isinstance(v, str)))
    if kind == "blank":
        return draw(st.sampled_from(["", " ", "\n", None]))
    return draw(st.text(max_size=30))


def spellings(name: str) -> st.SearchStrategy[str]:
    """Keys match case-insensitively (Traffic Portal sends osVersionDir)."""
    return st.sampled_from([name, name, name.lower(), name.upper(), name.swapcase()])


def unknown_keys() -> st.SearchStrategy[str]:
    # ("stream" is a field now: "yes" or "no", "no" answering an ISO URL; tests/test_media_urls.py.)
    known = st.sampled_from(["confirmRootPass", "osversion", "host_name", "mtu", "x\x00", "\ud800k"])
    return st.one_of(known, st.text(max_size=12)).filter(
        lambda key: key.lower() not in FIELD_BY_LOWER and key.lower() != "stream"
    )


@st.composite
def request_cases(
    draw: st.DrawFn, modes: tuple[str, ...] = MODES, focus: str | None = None, fragment: str | None = None
) -> Case:
    """A body mixing valid values (loose forms included) with spoiled ones, and its expectation.

    ``modes``: none spoiled (the body must pass), exactly "one" (so that one value meets the
    renderer when its rule lets it through), or each field at a 10 % ("some") or 30 % ("many")
    chance. With ``focus``, only that field is spoiled, by a splice of ``fragment``, in a body
    where its value is used (static fields without dhcp, a whole management interface).
    """
    hostility = "one" if focus else draw(st.sampled_from(modes))
    target = focus or draw(st.sampled_from(FIELDS))
    values: dict[str, Any] = {}
    for name in ("osversionDir", "hostName", "domainName", "rootPass", "interfaceMtu"):
        values[name] = draw(VALID[name])
    dhcp = False if focus in STATIC_ONLY else draw(st.booleans())
    values["dhcp"] = draw(st.sampled_from(DHCP_YES if dhcp else DHCP_NO))
    for name in ("ipAddress", "ipNetmask", "ipGateway", "ip6Address", "ip6Gateway"):
        # Required without dhcp (ip6 never); with dhcp they may be sent and are then ignored.
        required = not dhcp and name in {"ipAddress", "ipNetmask", "ipGateway"}
        if required or draw(st.booleans()):
            values[name] = draw(VALID[name])
    for name in ("interfaceName", "disk"):
        if draw(st.integers(0, 9)) < 7:
            values[name] = draw(VALID[name])

    must_pass = True
    mgmt = draw(
        st.sampled_from(["ipv4", "ipv6"])
        if focus and focus.startswith("mgmt")
        else st.sampled_from(["none", "none", "ipv4", "ipv6", "interface only", "mixed families"])
    )
    if mgmt in {"ipv4", "ipv6", "mixed families"}:
        v6_address, v6_gateway = mgmt == "ipv6", mgmt != "ipv4"
        values["mgmtIpAddress"] = draw(padded(ipv6_texts(prefix=True) if v6_address else ipv4_texts()))
        values["mgmtIpGateway"] = draw(padded(ipv6_texts(prefix=True) if v6_gateway else ipv4_texts()))
        values["mgmtInterface"] = draw(VALID["mgmtInterface"])
        must_pass = mgmt != "mixed families"
    if mgmt != "none" and draw(st.booleans()):
        values["mgmtIpNetmask"] = draw(VALID["mgmtIpNetmask"])
    if mgmt == "interface only":
        values["mgmtInterface"] = draw(VALID["mgmtInterface"])

    for name in FIELDS:
        if hostility == "one":
            spoil = name == target
        else:
            chance = {"none": 0, "some": 10, "many": 30}[hostility]
            spoil = chance > 0 and draw(st.integers(0, 99)) < chance
        if spoil and focus:
            values[name] = draw(spliced_values(name, fragment))
            must_pass = False
        elif spoil:
            if draw(st.integers(0, 4)) == 0:
                values.pop(name, None)
            else:
                values[name] = draw(spoiled_values(name))
            # Static fields are ignored with dhcp, so spoiling them cannot refuse the body.
            if not (dhcp and name in STATIC_ONLY):
                must_pass = False
    host, domain = values.get("hostName"), values.get("domainName")
    if isinstance(host, str) and isinstance(domain, str) and len(f"{host.strip()}.{domain.strip()}") > 253:
        must_pass = False

    pairs = [(draw(spellings(name)), value) for name, value in values.items()]
    if draw(st.booleans()):
        pairs += draw(st.lists(st.tuples(unknown_keys(), json_values()), min_size=1, max_size=3))
    pairs = list(draw(st.permutations(pairs)))
    # Decoys: the same field under another spelling, earlier in the body; the last one wins.
    decoys = []
    for key, _ in pairs:
        field = FIELD_BY_LOWER.get(key.lower())
        if field is not None and draw(st.integers(0, 9)) == 0:
            decoy = draw(spellings(field))
            if decoy != key:
                decoys.append((decoy, draw(spoiled_values(field))))
    return Case(dict(decoys + pairs), must_pass)


# ---- the oracle: what docs/api.md says the files hold --------------------------------------------


def canonical(body: dict[str, Any]) -> dict[str, Any]:
    """Case-insensitive keys, last one wins, unknown keys dropped (docs/api.md)."""
    return {
        FIELD_BY_LOWER[key.lower()]: value for key, value in body.items() if key.lower() in FIELD_BY_LOWER
    }


def text_of(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    return value.strip() if isinstance(value, str) else ""


def dhcp_of(value: Any) -> bool:
    if isinstance(value, str):
        return {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}[
            value.strip().lower()
        ]
    return bool(value)


def normal_ip(text: str) -> str:
    """docs/api.md's normal form: IPv4 as is, IPv6 compressed and lower-case, prefix as a plain number."""
    if not text:
        return ""
    address, slash, prefix = text.partition("/")
    normal = str(ipaddress.ip_address(address))
    return f"{normal}/{int(prefix)}" if slash else normal


def expected_cfgs(raw: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    dhcp = dhcp_of(raw["dhcp"])

    def static(name: str, normalize: bool = True) -> str:
        if dhcp:
            return ""
        return normal_ip(text_of(raw, name)) if normalize else text_of(raw, name)

    interface = text_of(raw, "interfaceName")
    bonded = re.match(r"bond\d+", interface) is not None
    network = [
        ("IPADDR", static("ipAddress")),
        ("NETMASK", static("ipNetmask", normalize=False)),
        ("GATEWAY", static("ipGateway")),
        ("BOND_DEVICE" if bonded else "DEVICE", interface),
        ("MTU", str(int(raw["interfaceMtu"]))),
        ("NAMESERVER", ",".join(NAMESERVERS)),
        ("HOSTNAME", f"{text_of(raw, 'hostName')}.{text_of(raw, 'domainName')}"),
        ("NETWORKING_IPV6", "yes"),
        ("IPV6ADDR", static("ip6Address")),
        ("IPV6_DEFAULTGW", static("ip6Gateway")),
    ]
    if bonded:
        network.append(("BONDING_OPTS", BONDING_OPTS))
    network.append(("DHCP", "yes" if dhcp else "no"))
    mgmt_address = normal_ip(text_of(raw, "mgmtIpAddress"))
    mgmt = [
        ("IPV6ADDR" if ":" in mgmt_address else "IPADDR", mgmt_address),
        ("NETMASK", text_of(raw, "mgmtIpNetmask")),
        ("GATEWAY", normal_ip(text_of(raw, "mgmtIpGateway"))),
        ("DEVICE", text_of(raw, "mgmtInterface")),
    ]
    return {
        "network.cfg": network,
        "mgmt_network.cfg": mgmt,
        "disk.cfg": [("boot_drives", text_of(raw, "disk"))],
    }


# ---- reading the files back ------------------------------------------------------------------


def parse_cfg(data: bytes) -> list[tuple[str, str]]:
    """docs/api.md's ``KEY="value"`` lines, no newline at the end; each line must be one inert
    assignment, to our pattern and to shlex (a shell-like lexer that splits on ; & | too)."""
    text = data.decode("utf-8")
    assert not text.endswith("\n"), text
    pairs = []
    for line in text.split("\n"):
        match = ASSIGNMENT.fullmatch(line)
        assert match is not None, f'not one inert KEY="value" assignment: {line!r}'
        key, value = match.groups()
        assert shlex.split(line, posix=True) == [f"{key}={value}"], line
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        assert list(lexer) == [f"{key}={value}"], line
        pairs.append((key, value))
    return pairs


def bash_sourced(cfg: Path) -> dict[str, str]:
    """The variables bash defines when it sources ``cfg``, as the installer does.

    Called only after ``parse_cfg`` proved every value inert (no $, backtick, quote,
    backslash or line break), so sourcing cannot run anything.
    """
    script = 'set -a; source "$1" >&2; exec env -0'
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script, "bash", str(cfg)],
        capture_output=True,
        env={},
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    variables = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if item)
    for shell_own in ("PWD", "SHLVL", "_", "OLDPWD"):
        variables.pop(shell_own, None)
    return variables


def check_files(files: dict[str, bytes], raw: dict[str, Any], boot_description: str | None) -> None:
    """The ks_scripts files parse back to exactly the accepted input (docs/api.md)."""
    expected = expected_cfgs(raw)
    for name in CFG_FILES:
        assert parse_cfg(files[f"ks_scripts/{name}"]) == expected[name], name

    password = files["ks_scripts/password.cfg"].decode("utf-8")
    assert password.endswith("\n") and password.count("\n") == 1, password
    tokens = shlex.split(password)
    assert tokens[:2] == ["rootpw", "--iscrypted"] and len(tokens) == 3, password
    assert SHA512_CRYPT.fullmatch(tokens[2]), password
    assert sha512_crypt.verify(raw["rootPass"], tokens[2])  # the untrimmed password

    fqdn = f"{text_of(raw, 'hostName')}.{text_of(raw, 'domainName')}"
    state = files["ks_scripts/state.out"].decode("utf-8")
    prefix = f"portal build of {text_of(raw, 'osversionDir')} for {fqdn}; "
    assert state.startswith(prefix) and state.endswith("\n") and state.count("\n") == 1, state
    if boot_description is not None:
        assert state == f"{prefix}{boot_description}\n"


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    return False


def unusable_text(value: Any) -> set[str]:
    """What in ``value`` (keys too, at any depth) no database column or file can hold: NUL,
    and lone surrogates (JSON's "\\ud800" decodes to one; it has no UTF-8 form)."""
    if isinstance(value, str):
        found = {"a NUL character"} if "\x00" in value else set()
        if any("\ud800" <= char <= "\udfff" for char in value):
            found.add("an unpaired UTF-16 surrogate")
        return found
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    if isinstance(items, list):
        return set().union(*(unusable_text(item) for item in items))
    return set()


def refusal_matches_errors(serializer: IsoRequestSerializer, raw: dict[str, Any]) -> None:
    """A refusal is one alert text made of every message, each naming its field."""
    errors = serializer.errors
    assert errors
    alert = serializer.alert_text
    if alert.startswith("invalid OS version directory: "):
        assert alert == f'invalid OS version directory: "{text_of(raw, "osversionDir")}"'
        assert list(errors) == ["osversionDir"]
        assert text_of(raw, "osversionDir") not in OFFERED
        return
    messages = [str(message) for field_messages in errors.values() for message in field_messages]
    assert alert == "validating: " + ", ".join(messages)
    for name, field_messages in errors.items():
        assert name in FIELDS and all(name in str(message) for message in field_messages), errors


def validated(body: dict[str, Any]) -> IsoRequestSerializer:
    serializer = IsoRequestSerializer(data=body, context={"offered_directories": set(OFFERED)})
    serializer.is_valid()
    return serializer


# ---- property A: the rules and the rendering, many inputs ------------------------------------

RENDER_SETTINGS = settings(
    max_examples=A_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_through_rules(case: Case) -> None:
    """Refused in one alert, or rendered to files that parse back to the input."""
    raw = canonical(case.body)
    serializer = validated(case.body)
    event("must pass" if case.must_pass else "spoiled")
    event("refused" if serializer.errors else "rendered")
    if serializer.errors:
        assert not case.must_pass, (serializer.alert_text, case)
        refusal_matches_errors(serializer, raw)
        return
    files = render_ks_scripts(serializer.iso_request(), NAMESERVERS, "sha512", BOOT_DESCRIPTION)
    assert set(files) == KS_FILES
    check_files(files, raw, BOOT_DESCRIPTION)


@RENDER_SETTINGS
@given(case=request_cases())
def test_any_body_is_refused_in_one_alert_or_rendered_to_files_that_parse_back(case: Case) -> None:
    check_through_rules(case)


@pytest.mark.parametrize("character", SHELL_CHARACTERS.values(), ids=SHELL_CHARACTERS.keys())
@pytest.mark.parametrize("field", FIELDS)
@settings(RENDER_SETTINGS, max_examples=FOCUSED_EXAMPLES)
@given(data=st.data())
def test_a_shell_character_in_one_used_field_is_refused_or_written_inert(
    field: str, character: str, data: st.DataObject
) -> None:
    check_through_rules(data.draw(request_cases(focus=field, fragment=character), label="case"))


# ---- property B: through real HTTP, ISOs read back ----------------------------------------------

HTTP_SETTINGS = settings(
    max_examples=B_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch folder whose files each example overwrites (tmp_path is per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="request-properties-") as folder:
        yield Path(folder)


@pytest.mark.django_db
@HTTP_SETTINGS
@given(case=request_cases(HTTP_MODES))
def test_any_body_posted_is_a_400_alert_or_an_iso_whose_files_parse_back(
    operations_client: Client, scratch: Path, case: Case
) -> None:
    response = post_json(operations_client, URL, case.body)
    event(f"HTTP {response.status_code}")
    if response.status_code != 200 and response["Content-Type"] == "application/json":
        event(f"alert {json.loads(response.content)['alerts'][0]['text'].split(':')[0]}")
    if response.status_code != 200:
        refusable = not case.must_pass or has_non_finite(case.body) or unusable_text(case.body)
        assert refusable, (response.status_code, response.content[:300], case)
        assert response.status_code == 400, (response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/json"
        body = json.loads(response.content)
        assert set(body) == {"alerts"} and len(body["alerts"]) == 1, body
        assert body["alerts"][0]["level"] == "error" and set(body["alerts"][0]) == {"text", "level"}
        text = body["alerts"][0]["text"]
        unusable = unusable_text(case.body)
        if has_non_finite(case.body):
            assert text.startswith("decoding: "), text  # NaN and Infinity are not JSON
        elif unusable:
            # Refused before any rule, wherever it is (an ignored key too): never a 500.
            assert text in {f"decoding: the request body holds {problem}" for problem in unusable}, text
        else:
            assert text == validated(case.body).alert_text
        return

    try:
        assert response["Content-Type"] == "application/download"
        data = b"".join(response.streaming_content)
    finally:
        close_response(response)
    assert int(response["Content-Length"]) == len(data)
    raw = canonical(case.body)
    assert not validated(case.body).errors, case
    fqdn = f"{text_of(raw, 'hostName')}.{text_of(raw, 'domainName')}"
    filename = f"{fqdn}-{text_of(raw, 'osversionDir')}.iso".replace("/", "_")
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'

    iso = scratch / "out.iso"
    iso.write_bytes(data)
    files = {name: content for name, content in read_rr_files(iso).items() if name in KS_FILES}
    assert set(files) == KS_FILES
    check_files(files, raw, None)
    # Last, once the values are known inert: bash, as the installer, reads the same values.
    for name in CFG_FILES:
        cfg = scratch / name
        cfg.write_bytes(files[f"ks_scripts/{name}"])
        assert bash_sourced(cfg) == dict(parse_cfg(files[f"ks_scripts/{name}"])), name


# ---- a bug once found here, mended --------------------------------------------------------------

# The API refuses these before any rule (portal.trafficops.json_body), but the serializer is also reached
# from ``manage.py generate_iso``, whose --root-pass-env hands over a non-UTF-8 environment
# value as a lone surrogate (os.environ's surrogateescape): it once reached the hashing.


def test_lone_surrogate_in_root_password_is_refused() -> None:
    serializer = validated(static_request(rootPass="pa\udcffss"))
    assert serializer.alert_text == (
        "validating: rootPass must be valid Unicode text (no unpaired surrogates)"
    )
