"""The Generate ISO page's form: its fields, and the way from HTML form data to a request.

The rules and their messages live in ``IsoRequestSerializer`` only. This module knows
how the page asks for the values (labels, hints, input types), turns what a browser
posts (a DHCP checkbox, an FQDN typed into the host name, a password confirmation) into
the API's request body, and puts the serializer's messages back beside their fields.
The root password is never kept for display: it goes into the request body, nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.forms.utils import flatatt
from django.http import QueryDict
from django.utils.safestring import SafeString

from isos.serializers import DHCP_WORDS, MTU_RANGE, canonical_keys

CONFIRM_FIELD = "confirmRootPass"
PASSWORD_FIELDS = frozenset({"rootPass", CONFIRM_FIELD})
MISMATCH_MESSAGE = f"{CONFIRM_FIELD} must be the same as rootPass"
DEFAULT_MTU = "1500"
OFFERED_MTUS = ("1500", "9000")


@dataclass(frozen=True)
class FieldSpec:
    """How the page asks for one value of the request (``name`` is the API's key)."""

    name: str
    label: str
    hint: str = ""
    input_type: str = "text"
    required: bool = False
    attrs: Mapping[str, str] = field(default_factory=dict)
    # Said after the label of a field that is not always required.
    condition: str = "optional"


IPV4_INPUT = {"inputmode": "decimal"}
WITHOUT_DHCP = "required without DHCP"
WITH_MGMT = "required with a management address"

# In the order the page shows them. The select (osversionDir) and the DHCP switch have
# markup of their own in the template; they are listed for their labels and errors.
FIELD_SPECS = [
    FieldSpec("osversionDir", "OS version", required=True),
    FieldSpec(
        "hostName",
        "Host name",
        "A single label, e.g. edge1. A full name (edge1.cdn.example) is split at the first dot "
        "when the domain is empty.",
        required=True,
        attrs={"autocapitalize": "none", "spellcheck": "false"},
    ),
    FieldSpec(
        "domainName",
        "Domain name",
        "e.g. cdn.example",
        required=True,
        attrs={"autocapitalize": "none", "spellcheck": "false"},
    ),
    FieldSpec("dhcp", "Use DHCP", "When on, the static addresses below are not used."),
    FieldSpec("ipAddress", "IPv4 address", "e.g. 192.0.2.10", attrs=IPV4_INPUT, condition=WITHOUT_DHCP),
    FieldSpec("ipNetmask", "IPv4 netmask", "e.g. 255.255.255.0", attrs=IPV4_INPUT, condition=WITHOUT_DHCP),
    FieldSpec("ipGateway", "IPv4 gateway", "e.g. 192.0.2.1", attrs=IPV4_INPUT, condition=WITHOUT_DHCP),
    FieldSpec("ip6Address", "IPv6 address", "Optional /prefix, e.g. 2001:db8::10/64"),
    FieldSpec("ip6Gateway", "IPv6 gateway", "Without prefix, e.g. 2001:db8::1"),
    FieldSpec(
        "interfaceMtu",
        "MTU",
        f"1500 is the norm, 9000 for jumbo frames; {MTU_RANGE[0]} to {MTU_RANGE[1]}.",
        input_type="number",
        required=True,
        attrs={"min": str(MTU_RANGE[0]), "max": str(MTU_RANGE[1]), "list": "mtu-choices"},
    ),
    FieldSpec(
        "interfaceName",
        "Interface name",
        "e.g. eth0 or ens3. A name like bond0 (bondN) makes an LACP bond.",
        attrs={"autocapitalize": "none", "spellcheck": "false"},
    ),
    FieldSpec(
        "disk",
        "Boot disk",
        "A device under /dev/, without /dev/: sda, nvme0n1 or disk/by-id/...",
        attrs={"autocapitalize": "none", "spellcheck": "false"},
    ),
    FieldSpec(
        "rootPass",
        "Root password",
        "Stored in the ISO as a salted hash only; never shown again.",
        input_type="password",
        required=True,
        attrs={"autocomplete": "new-password"},
    ),
    FieldSpec(
        CONFIRM_FIELD,
        "Confirm root password",
        input_type="password",
        required=True,
        attrs={"autocomplete": "new-password"},
    ),
    FieldSpec("mgmtIpAddress", "Management IP address", "IPv4 or IPv6"),
    FieldSpec("mgmtIpNetmask", "Management netmask", "e.g. 255.255.255.0"),
    FieldSpec("mgmtIpGateway", "Management gateway", condition=WITH_MGMT),
    FieldSpec(
        "mgmtInterface",
        "Management interface",
        "e.g. eth1",
        attrs={"autocapitalize": "none", "spellcheck": "false"},
        condition=WITH_MGMT,
    ),
]
SPECS_BY_NAME = {spec.name: spec for spec in FIELD_SPECS}
MGMT_FIELDS = ("mgmtIpAddress", "mgmtIpNetmask", "mgmtIpGateway", "mgmtInterface")
# Fields a link or a past build may fill in (never a password).
PREFILL_FIELDS = frozenset(SPECS_BY_NAME) - PASSWORD_FIELDS


@dataclass
class BoundField:
    """One field as the template draws it: its value (never a password) and its errors."""

    spec: FieldSpec
    value: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def id(self) -> str:
        return f"id_{self.spec.name}"

    @property
    def hint_id(self) -> str:
        return f"{self.id}-hint"

    @property
    def error_id(self) -> str:
        return f"{self.id}-error"

    @property
    def describedby(self) -> str:
        """The ids a screen reader reads after the label: the errors first, then the hint."""
        ids = [self.error_id] if self.errors else []
        if self.spec.hint:
            ids.append(self.hint_id)
        return " ".join(ids)

    @property
    def input_attrs(self) -> SafeString:
        """The input's attributes, escaped; a password input never carries a value."""
        attrs: dict[str, Any] = {
            "type": self.spec.input_type,
            "id": self.id,
            "name": self.name,
            "autocomplete": "off",
            **self.spec.attrs,
        }
        if self.spec.input_type != "password" and self.value:
            attrs["value"] = self.value
        if self.spec.required:
            attrs["required"] = True
        if self.describedby:
            attrs["aria-describedby"] = self.describedby
        if self.errors:
            attrs["aria-invalid"] = "true"
        return flatatt(attrs)


def split_fqdn(host_name: str, domain_name: str) -> tuple[str, str]:
    """A full name typed where the host name goes is split at its first dot.

    Only when the domain is empty: otherwise the serializer's rule speaks.
    """
    host_name = host_name.strip()
    if "." in host_name and not domain_name.strip():
        host, _, domain = host_name.partition(".")
        return host, domain
    return host_name, domain_name


def dhcp_word(value: Any) -> bool | None:
    """yes/no (and the API's other spellings) as a bool, or None when unclear."""
    if isinstance(value, bool):
        return value
    return DHCP_WORDS.get(str(value).strip().lower())


class GenerateForm:
    """The page's form: values to show, errors by field, and the OS versions to offer."""

    def __init__(
        self,
        values: Mapping[str, str],
        catalog: Mapping[str, str],
        dhcp: bool = False,
        root_pass: str = "",
        confirm_root_pass: str = "",
    ) -> None:
        self.catalog = dict(catalog)
        self.dhcp = dhcp
        self._root_pass = root_pass
        self._confirm_root_pass = confirm_root_pass
        self.fields = {
            spec.name: BoundField(spec, "" if spec.name in PASSWORD_FIELDS else values.get(spec.name, ""))
            for spec in FIELD_SPECS
        }

    @classmethod
    def from_query(cls, query: QueryDict, catalog: Mapping[str, str]) -> GenerateForm:
        """A form prefilled from a link: API keys in any case, or ``fqdn``; never a password."""
        given = {key: value for key, value in query.items() if isinstance(value, str)}
        values = {name: value for name, value in canonical_keys(given).items() if name in PREFILL_FIELDS}
        fqdn = next((value for key, value in given.items() if key.lower() == "fqdn"), "")
        if fqdn and not values.get("hostName"):
            values["hostName"], values["domainName"] = split_fqdn(fqdn, values.get("domainName", ""))
        values.setdefault("interfaceMtu", DEFAULT_MTU)
        if len(catalog) == 1:  # one choice: make it, without hiding that it is one
            values.setdefault("osversionDir", next(iter(catalog.values())))
        dhcp = dhcp_word(values.pop("dhcp", "no")) or False
        return cls(values, catalog, dhcp=dhcp)

    @classmethod
    def from_post(cls, post: QueryDict, catalog: Mapping[str, str]) -> GenerateForm:
        """The submitted form; an unticked DHCP switch is not sent, so it means no."""
        values = {spec.name: str(post.get(spec.name, "")) for spec in FIELD_SPECS}
        values["hostName"], values["domainName"] = split_fqdn(values["hostName"], values["domainName"])
        return cls(
            values,
            catalog,
            dhcp="dhcp" in post,
            root_pass=values.pop("rootPass"),
            confirm_root_pass=values.pop(CONFIRM_FIELD),
        )

    def request_body(self) -> dict[str, Any]:
        """The API's request body (what a script would POST), password included."""
        body: dict[str, Any] = {
            name: bound.value for name, bound in self.fields.items() if name not in PASSWORD_FIELDS
        }
        body["dhcp"] = "yes" if self.dhcp else "no"
        body["rootPass"] = self._root_pass
        return body

    def form_refusals(self) -> dict[str, list[str]]:
        """The page's own rule, beyond the API's: the confirmation must match."""
        if self._root_pass and self._confirm_root_pass != self._root_pass:
            return {CONFIRM_FIELD: [MISMATCH_MESSAGE]}
        return {}

    def add_errors(self, errors: Mapping[str, Any]) -> None:
        """File each message beside its field (``errors``: field name → messages)."""
        for name, messages in errors.items():
            target = self.fields.get(name)
            if target is None:
                target = self.fields["osversionDir"]  # non_field_errors: shown at the top field
            target.errors.extend(str(message) for message in messages)

    @property
    def error_summary(self) -> list[tuple[BoundField, str]]:
        """Every message with its field, in the page's order, for the summary at the top."""
        return [(bound, message) for bound in self.fields.values() for message in bound.errors]

    @property
    def os_versions(self) -> list[tuple[str, str]]:
        """(directory, display name) of the OS versions offered, by display name."""
        return sorted(((directory, name) for name, directory in self.catalog.items()), key=lambda d: d[1])

    @property
    def chosen_version_offered(self) -> bool:
        """False when a link or a past build names an OS version this user is not offered."""
        chosen = self.fields["osversionDir"].value
        return not chosen or chosen in self.catalog.values()

    @property
    def mgmt_open(self) -> bool:
        """Show the management section open when it holds values or errors."""
        return any(self.fields[name].value or self.fields[name].errors for name in MGMT_FIELDS)

    @property
    def offered_mtus(self) -> tuple[str, ...]:
        return OFFERED_MTUS
