"""The rules of a ``POST isos`` request, in one place for the API, the form and the admin.

Traffic Ops' decoding is kept (keys match case-insensitively, dhcp and MTU have loose
types, unknown keys are ignored), every rule of docs/api.md is checked, and *every* broken
rule is reported at once, in Traffic Ops' order first, then ours. Each message names its
field so it reads well both joined into one alert and shown beside a form field.

Every value that reaches a cfg file has passed a pattern that admits no quote,
backslash, dollar, backtick, space, line break or other control character: the installer
``source``s those files. A rule matches the whole value (``fullmatch``: ``$`` would also
match before a final newline), and digits are ASCII digits only (``str.isdigit()`` and
``\\d`` take any script's, and superscripts ``int()`` cannot read).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers

from isos.kickstart import IsoRequest
from portal.trafficops.json_body import NUL_CHARACTER, unstorable_character

# Always used with fullmatch (the whole value); ASCII only.
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
DISK_SEGMENT = re.compile(r"[A-Za-z0-9_.:+@,=-]+")
ASCII_NUMBER = re.compile(r"[0-9]{1,6}")
# Unicode's control (Cc: C0, DEL, C1 such as \x85), format (Cf), line (U+2028) and
# paragraph (U+2029) separators: what a file, a terminal or a log reader may take for a line
# break or a command.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
MTU_RANGE = (1280, 9216)
MAX_FQDN = 253
DHCP_WORDS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}

# Traffic Ops' rules and messages, in its order (docs/api.md).
REQUIRED_FIELDS = ["osversionDir", "hostName", "domainName", "rootPass", "dhcp", "interfaceMtu"]
REQUIRED_WITH_MGMT = ["mgmtInterface", "mgmtIpGateway"]
REQUIRED_WITHOUT_DHCP = ["ipAddress", "ipNetmask", "ipGateway"]
# Ignored (neither checked nor written) when dhcp is yes.
STATIC_ONLY_FIELDS = {"ipAddress", "ipNetmask", "ipGateway", "ip6Address", "ip6Gateway"}


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character, a line or paragraph separator, or an
    invisible format character (CONTROL_CATEGORIES)."""
    return any(unicodedata.category(char) in CONTROL_CATEGORIES for char in text)


class RuleField(serializers.Field):  # type: ignore[type-arg]
    """A field whose ``check`` returns the clean value or raises with a full sentence.

    Values arrive as JSON types: strings must be strings (Traffic Ops refuses a number
    where a string belongs), and are trimmed unless ``trim`` is off.
    """

    max_length = 255
    trim = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def fail_with(self, rule: str) -> serializers.ValidationError:
        return serializers.ValidationError(f"{self.field_name} {rule}")

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            raise self.fail_with("must be a string")
        text = data.strip() if self.trim else data
        if len(text) > self.max_length:
            raise self.fail_with(f"must be at most {self.max_length} characters")
        return self.check(text)

    def check(self, text: str) -> Any:
        return text

    def to_representation(self, value: Any) -> Any:
        return value


class OsVersionDirField(RuleField):
    """Checked against the user's OS versions later; only text a directory name can hold here."""

    max_length = 1024

    def check(self, text: str) -> str:
        if has_control_character(text):
            raise self.fail_with("must be a directory name without control characters or line breaks")
        return text


class HostNameField(RuleField):
    max_length = 63

    def check(self, text: str) -> str:
        if not HOST_LABEL.fullmatch(text):
            raise self.fail_with("must be a valid host name (letters, digits and inner hyphens)")
        return text


class DomainNameField(RuleField):
    max_length = MAX_FQDN

    def check(self, text: str) -> str:
        if not all(HOST_LABEL.fullmatch(label) for label in text.split(".")):
            raise self.fail_with("must be a valid domain name (dot-separated host names)")
        return text


class RootPassField(RuleField):
    max_length = 1024
    trim = False  # spaces are part of a password

    def check(self, text: str) -> str:
        # The API refuses both before any rule (portal.trafficops.json_body); the web form can still
        # bring a NUL, and manage.py generate_iso a surrogate (a non-UTF-8 environment value).
        problem = unstorable_character(text)
        if problem == NUL_CHARACTER:
            raise self.fail_with("must not contain NUL characters")
        if problem is not None:
            raise self.fail_with("must be valid Unicode text (no unpaired surrogates)")
        return text


class DhcpField(RuleField):
    """yes/no, true/false, 1/0 in any case, or a JSON boolean."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str) and data.strip().lower() in DHCP_WORDS:
            return DHCP_WORDS[data.strip().lower()]
        raise self.fail_with("must be yes or no")


class MtuField(RuleField):
    """An integer, or a string holding one, within the range an Ethernet link allows."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            raise self.fail_with("must be an integer")
        if isinstance(data, str) and ASCII_NUMBER.fullmatch(data.strip()):
            data = int(data.strip())
        if not isinstance(data, int):
            raise self.fail_with("must be an integer")
        low, high = MTU_RANGE
        if not low <= data <= high:
            raise self.fail_with(
                f"must be between {low} and {high} (1500 is the norm, 9000 for jumbo frames)"
            )
        return data


class NetmaskField(RuleField):
    """A dotted IPv4 netmask whose one-bits are contiguous."""

    max_length = 15

    def check(self, text: str) -> str:
        normal = parse_ipv4(text)
        mask = int(ipaddress.IPv4Address(normal)) if normal else -1
        inverted = ~mask & 0xFFFFFFFF
        if mask < 0 or inverted & (inverted + 1):
            raise self.fail_with("must be a valid IPv4 netmask, e.g. 255.255.255.0")
        return text


def parse_ipv6(text: str, allow_prefix: bool) -> str | None:
    """The normal form of an IPv6 address (with its prefix when allowed), or None.

    IPv4, IPv4-mapped and dotted forms are refused, and so are zone indexes ("%eth0").
    """
    if "." in text or "%" in text:
        return None
    address, slash, prefix = text.partition("/")
    if slash and not (allow_prefix and ASCII_NUMBER.fullmatch(prefix) and int(prefix) <= 128):
        return None
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        return None
    if parsed.ipv4_mapped is not None:
        return None
    return f"{parsed}/{int(prefix)}" if slash else str(parsed)


def parse_ipv4(text: str) -> str | None:
    """The normal form of a dotted IPv4 address, or None (leading zeros are refused)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def parse_ipv6_with_prefix(text: str) -> str | None:
    return parse_ipv6(text, allow_prefix=True)


def parse_ipv6_without_prefix(text: str) -> str | None:
    return parse_ipv6(text, allow_prefix=False)


def parse_ip(text: str) -> str | None:
    """IPv4, or IPv6 with an optional prefix (the management interface may be either)."""
    return parse_ipv6_with_prefix(text) if ":" in text else parse_ipv4(text)


class AddressField(RuleField):
    """An address written in its normal form; ``parse`` gives None for a refused one."""

    def __init__(
        self, parse: Callable[[str], str | None], rule: str, max_length: int = 64, **kwargs: Any
    ) -> None:
        self.parse, self.rule, self.max_length = parse, rule, max_length
        super().__init__(**kwargs)

    def check(self, text: str) -> str:
        normal = self.parse(text)
        if normal is None:
            raise self.fail_with(self.rule)
        return normal


def ipv4_field(label: str, help_text: str) -> AddressField:
    return AddressField(
        parse_ipv4, "must be a valid IPv4 address", max_length=15, label=label, help_text=help_text
    )


class InterfaceNameField(RuleField):
    max_length = 15

    def check(self, text: str) -> str:
        if not INTERFACE_NAME.fullmatch(text) or text in {".", ".."}:
            raise self.fail_with("must be a Linux interface name (at most 15 letters, digits, _ . -)")
        return text


class DiskField(RuleField):
    """A block device name under /dev/: sda, nvme0n1, disk/by-id/wwn-0x5000c500a1b2c3d4."""

    def check(self, text: str) -> str:
        segments = text.split("/")
        if not all(DISK_SEGMENT.fullmatch(s) and s not in {".", ".."} for s in segments):
            raise self.fail_with(
                "must be a device name under /dev/ without the /dev/ prefix, "
                "e.g. sda, nvme0n1 or disk/by-id/wwn-0x5000c500a1b2c3d4"
            )
        return text


FIELD_ATTRIBUTES = {
    "osversionDir": "osversion_dir",
    "hostName": "host_name",
    "domainName": "domain_name",
    "rootPass": "root_pass",
    "dhcp": "dhcp",
    "ipAddress": "ip_address",
    "ipNetmask": "ip_netmask",
    "ipGateway": "ip_gateway",
    "ip6Address": "ip6_address",
    "ip6Gateway": "ip6_gateway",
    "interfaceMtu": "interface_mtu",
    "interfaceName": "interface_name",
    "disk": "disk",
    "mgmtIpAddress": "mgmt_ip_address",
    "mgmtIpNetmask": "mgmt_ip_netmask",
    "mgmtIpGateway": "mgmt_ip_gateway",
    "mgmtInterface": "mgmt_interface",
}
FIELDS_BY_LOWER_NAME = {name.lower(): name for name in FIELD_ATTRIBUTES}


def canonical_keys(data: Mapping[Any, Any]) -> dict[str, Any]:
    """Traffic Ops' decoding: keys match case-insensitively, the last duplicate wins."""
    canonical: dict[str, Any] = {}
    for key, value in data.items():
        name = FIELDS_BY_LOWER_NAME.get(str(key).lower())
        if name is not None:
            canonical[name] = value
    return canonical


def is_blank(value: Any) -> bool:
    """Missing, null or an empty string: Go's zero value, which Traffic Ops treats as absent."""
    return value is None or (isinstance(value, str) and value.strip() == "")


class IsoRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Validates a request; ``validated_data`` becomes an :class:`IsoRequest`.

    ``context["offered_directories"]`` holds the osversionDir values this user may use.
    After ``is_valid()`` fails, ``alert_text`` is the one line an API client gets and
    ``errors`` maps each field to its messages (for forms).
    """

    # The labels and help texts are the Generate ISO page's too (isos.forms).
    osversionDir = OsVersionDirField(label="OS version", help_text="The ISO source the host installs from.")
    hostName = HostNameField(label="Host name", help_text="A single label, e.g. edge1.")
    domainName = DomainNameField(label="Domain name", help_text="e.g. cdn.example")
    rootPass = RootPassField(
        label="Root password",
        help_text="Stored in the ISO as a salted hash only; never shown again.",
        write_only=True,
        style={"input_type": "password"},
    )
    dhcp = DhcpField(label="DHCP", help_text="yes or no; when yes, the static addresses are not used.")
    ipAddress = ipv4_field("IPv4 address", "e.g. 192.0.2.10")
    ipNetmask = NetmaskField(label="IPv4 netmask", help_text="e.g. 255.255.255.0")
    ipGateway = ipv4_field("IPv4 gateway", "e.g. 192.0.2.1")
    ip6Address = AddressField(
        parse_ipv6_with_prefix,
        "must be a valid IPv6 address (with optional CIDR prefix)",
        label="IPv6 address",
        help_text="e.g. 2001:db8::10/64 (the /prefix may be left out).",
    )
    ip6Gateway = AddressField(
        parse_ipv6_without_prefix,
        "must be a valid IPv6 address (without prefix)",
        label="IPv6 gateway",
        help_text="Without prefix, e.g. 2001:db8::1",
    )
    interfaceMtu = MtuField(
        label="Interface MTU",
        help_text=f"1500 is the norm, 9000 for jumbo frames; {MTU_RANGE[0]} to {MTU_RANGE[1]}.",
    )
    interfaceName = InterfaceNameField(
        label="Interface name", help_text="e.g. eth0, ens3, or bond0 (bondN makes an LACP bond)."
    )
    disk = DiskField(
        label="Boot disk",
        help_text="A device under /dev/, without /dev/: sda, nvme0n1 or disk/by-id/...",
    )
    mgmtIpAddress = AddressField(
        parse_ip,
        "must be a valid IPv4 or IPv6 address",
        label="Management IP address",
        help_text="IPv4 or IPv6",
    )
    mgmtIpNetmask = NetmaskField(label="Management netmask", help_text="e.g. 255.255.255.0")
    mgmtIpGateway = AddressField(
        parse_ip,
        "must be a valid IPv4 or IPv6 address",
        label="Management gateway",
        help_text="Of the same IP family as the address.",
    )
    mgmtInterface = InterfaceNameField(label="Management interface", help_text="e.g. eth1")

    alert_text = ""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        raw = canonical_keys(data)
        values: dict[str, Any] = {}
        format_errors: dict[str, str] = {}
        dhcp_given = not is_blank(raw.get("dhcp"))
        dhcp = self._check("dhcp", raw, values, format_errors) if dhcp_given else None
        for name in FIELD_ATTRIBUTES:
            if name == "dhcp" or is_blank(raw.get(name)):
                continue
            if dhcp is True and name in STATIC_ONLY_FIELDS:
                continue  # ignored with dhcp, as in Traffic Ops
            self._check(name, raw, values, format_errors)

        required: list[tuple[str, str]] = [
            (name, f"{name} is required") for name in REQUIRED_FIELDS if is_blank(raw.get(name))
        ]
        if not is_blank(raw.get("mgmtIpAddress")):
            required += [
                (name, f"{name} is required when mgmtIpAddress is provided")
                for name in REQUIRED_WITH_MGMT
                if is_blank(raw.get(name))
            ]
        if dhcp is False:
            required += [
                (name, f"{name} is required if DHCP is no")
                for name in REQUIRED_WITHOUT_DHCP
                if is_blank(raw.get(name))
            ]
        ordered = required
        # ip6Address's message is one of Traffic Ops' own and keeps its place.
        if "ip6Address" in format_errors:
            ordered.append(("ip6Address", format_errors.pop("ip6Address")))
        ordered += list(format_errors.items())
        ordered += self._cross_field_errors(values)
        if ordered:
            errors: dict[str, list[str]] = {}
            for name, message in ordered:
                errors.setdefault(name, []).append(message)
            self.alert_text = "validating: " + ", ".join(message for _, message in ordered)
            raise serializers.ValidationError(errors)

        offered = self.context.get("offered_directories", ())
        if values["osversionDir"] not in offered:
            message = f'invalid OS version directory: "{values["osversionDir"]}"'
            self.alert_text = message  # Traffic Ops' own alert, without "validating: "
            raise serializers.ValidationError({"osversionDir": [message]})
        return values

    def _check(self, name: str, raw: dict[str, Any], values: dict[str, Any], errors: dict[str, str]) -> Any:
        """Run one field's rule, filing its value or its message."""
        try:
            values[name] = self.fields[name].run_validation(raw[name])
        except serializers.ValidationError as error:
            detail = error.detail
            errors[name] = str(detail[0] if isinstance(detail, list) else detail)
            return None
        return values[name]

    @staticmethod
    def _cross_field_errors(values: dict[str, Any]) -> list[tuple[str, str]]:
        """Rules between fields that each passed their own rule."""
        errors = []
        host, domain = values.get("hostName"), values.get("domainName")
        if host and domain and len(f"{host}.{domain}") > MAX_FQDN:
            errors.append(
                ("domainName", f"the FQDN hostName.domainName must be at most {MAX_FQDN} characters")
            )
        address, gateway = values.get("mgmtIpAddress"), values.get("mgmtIpGateway")
        if address and gateway and (":" in address) != (":" in gateway):
            errors.append(("mgmtIpGateway", "mgmtIpGateway must be of the same IP family as mgmtIpAddress"))
        return errors

    def get_initial(self) -> Any:
        """The values a form drawn from this serializer shows again: never the password."""
        initial = super().get_initial()
        initial.pop("rootPass", None)
        return initial

    def iso_request(self) -> IsoRequest:
        """The validated request as the value kickstart rendering takes."""
        data = self.validated_data
        return IsoRequest(**{FIELD_ATTRIBUTES[name]: value for name, value in data.items()})

    def safe_settings(self) -> dict[str, Any]:
        """What the audit may keep of the request: everything but the root password."""
        raw = canonical_keys(self.initial_data if isinstance(self.initial_data, Mapping) else {})
        return {
            name: value
            for name, value in raw.items()
            if name != "rootPass" and isinstance(value, (str, int, bool)) and len(str(value)) <= 1024
        }
