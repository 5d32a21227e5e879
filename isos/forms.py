"""The Generate ISO page's form: a Django form whose rules are the API's serializer.

``IsoRequestSerializer`` is the one source of the fields' labels, help texts, rules and
messages (docs/design.md). This form knows only how the page asks for the values (input
types, a DHCP switch, a password confirmation, a full name typed into the host name),
maps what a browser posts to the API's request body, and files the serializer's
messages beside the matching fields. The passwords are never rendered back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.forms.boundfield import BoundField
from django.http import QueryDict

from isos.generation import request_serializer
from isos.page_messages import CONFIRM_FIELD, CONFIRM_LABEL, MISMATCH_MESSAGE, page_message, page_wording
from isos.serializers import (
    DHCP_WORDS,
    FIELD_ATTRIBUTES,
    MTU_RANGE,
    REQUIRED_FIELDS,
    REQUIRED_WITH_MGMT,
    REQUIRED_WITHOUT_DHCP,
    IsoRequestSerializer,
    canonical_keys,
)
from portal.trafficops.json_body import unstorable_character

PASSWORD_FIELDS = frozenset({"rootPass", CONFIRM_FIELD})
DEFAULT_MTU = "1500"
OFFERED_MTUS = ("1500", "9000")
MGMT_FIELDS = ("mgmtIpAddress", "mgmtIpNetmask", "mgmtIpGateway", "mgmtInterface")

API_FIELDS = IsoRequestSerializer().fields
# Where the page asks differently from a JSON body: dhcp is a switch, and the host name
# also takes a full name.
DHCP_LABEL = "Use DHCP"
DHCP_HINT = "When on, the static addresses below are not used."
PAGE_HINTS = {
    "hostName": f"{API_FIELDS['hostName'].help_text} A full name (edge1.cdn.example) is split "
    "at the first dot when the domain is empty."
}
NAME_INPUT = {"autocapitalize": "none", "spellcheck": "false"}
IPV4_INPUT = {"inputmode": "decimal"}
NEW_PASSWORD = {"autocomplete": "new-password"}


def requirement(name: str) -> str:
    """What the label says of a field that is not always required ("" when it is)."""
    if name in REQUIRED_FIELDS or name == CONFIRM_FIELD:
        return ""
    if name in REQUIRED_WITHOUT_DHCP:
        return "required without DHCP"
    if name in REQUIRED_WITH_MGMT:
        return "required with a management address"
    return "optional"


class PageBoundField(BoundField):
    """A field as the field template draws it (isos/templates/isos/_field.html)."""

    @property
    def aria_describedby(self) -> str:
        """What a screen reader reads after the label: the errors first, then the hint."""
        ids = [f"{self.auto_id}-error"] if self.errors else []
        if self.help_text:
            ids.append(f"{self.auto_id}-hint")
        return " ".join(ids)

    @property
    def requirement(self) -> str:
        return requirement(self.name)


class RequestField(forms.Field):
    """A value handed to the serializer as typed: the rules and messages are the serializer's.

    So it is never required here (the serializer says "hostName is required") and has no
    validators of its own (not even Django's NUL check: the serializer's message and the
    audit of the refusal must be the API's).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def to_python(self, value: Any) -> str:
        return "" if value is None else str(value)


def api_field(
    name: str, widget: type[forms.Widget] = forms.TextInput, attrs: Mapping[str, Any] | None = None
) -> RequestField:
    """The form field of the request's ``name``, worded as the serializer words it."""
    source = API_FIELDS[name]
    attrs = {"autocomplete": "off", **(attrs or {})}
    if name in REQUIRED_FIELDS:
        attrs["required"] = True  # for the browser only; the serializer's rule decides
    return RequestField(
        label=source.label,
        help_text=PAGE_HINTS.get(name, source.help_text or ""),
        widget=widget(attrs=attrs),
    )


def split_fqdn(host_name: str, domain_name: str) -> tuple[str, str]:
    """A full name typed where the host name goes is split at its first dot.

    Only when the domain is empty: otherwise the serializer's rule speaks.
    """
    host_name = host_name.strip()
    if "." in host_name and not domain_name.strip():
        host, _, domain = host_name.partition(".")
        return host, domain
    return host_name, domain_name


class GenerateForm(forms.Form):
    """The page's form; ``catalog`` (display name → directory) holds the OS versions offered.

    After ``is_valid()``, ``serializer`` holds the API's verdict on the request and
    ``page_refusals`` the messages of the page's own rule, for the audit.
    """

    bound_field_class = PageBoundField

    osversionDir = api_field("osversionDir", forms.Select)
    hostName = api_field("hostName", attrs=NAME_INPUT)
    domainName = api_field("domainName", attrs=NAME_INPUT)
    dhcp = forms.BooleanField(
        required=False,
        label=DHCP_LABEL,
        help_text=DHCP_HINT,
        # Ticked, it posts the API's own word.
        widget=forms.CheckboxInput(
            attrs={"value": "yes", "role": "switch", "aria-controls": "static-addresses"}
        ),
    )
    ipAddress = api_field("ipAddress", attrs=IPV4_INPUT)
    ipNetmask = api_field("ipNetmask", attrs=IPV4_INPUT)
    ipGateway = api_field("ipGateway", attrs=IPV4_INPUT)
    ip6Address = api_field("ip6Address")
    ip6Gateway = api_field("ip6Gateway")
    interfaceMtu = api_field(
        "interfaceMtu", forms.NumberInput, {"min": MTU_RANGE[0], "max": MTU_RANGE[1], "list": "mtu-choices"}
    )
    interfaceName = api_field("interfaceName", attrs=NAME_INPUT)
    disk = api_field("disk", attrs=NAME_INPUT)
    # PasswordInput never renders a value back.
    rootPass = api_field("rootPass", forms.PasswordInput, attrs=NEW_PASSWORD)
    confirmRootPass = RequestField(
        label=CONFIRM_LABEL,
        widget=forms.PasswordInput(attrs={"required": True, **NEW_PASSWORD}),
    )
    mgmtIpAddress = api_field("mgmtIpAddress")
    mgmtIpNetmask = api_field("mgmtIpNetmask")
    mgmtIpGateway = api_field("mgmtIpGateway")
    mgmtInterface = api_field("mgmtInterface", attrs=NAME_INPUT)

    serializer: IsoRequestSerializer
    page_refusals: list[str]

    def __init__(self, data: QueryDict | None = None, *, catalog: Mapping[str, str], **kwargs: Any) -> None:
        if data is not None:
            # Shown again as the server read it: a full name split into host and domain.
            data = data.copy()
            data["hostName"], data["domainName"] = split_fqdn(
                str(data.get("hostName", "")), str(data.get("domainName", ""))
            )
        super().__init__(data, **kwargs)
        self.catalog = dict(catalog)
        select = self.fields["osversionDir"].widget
        assert isinstance(select, forms.Select)
        offered = sorted(((directory, name) for name, directory in self.catalog.items()), key=lambda d: d[1])
        select.choices = [("", "Choose an OS version…"), *offered] if offered else []
        if not offered:
            select.attrs["disabled"] = True

    @classmethod
    def from_query(cls, query: QueryDict, catalog: Mapping[str, str]) -> GenerateForm:
        """A form prefilled from a link: API keys in any case, or ``fqdn``; never a password,
        nor a value holding text no database or file can hold (a NUL: dropped, as the
        history's filters drop it)."""
        given = {
            key: value
            for key, value in query.items()
            if isinstance(value, str) and unstorable_character(value) is None
        }
        initial: dict[str, Any] = {
            name: value for name, value in canonical_keys(given).items() if name not in PASSWORD_FIELDS
        }
        fqdn = next((value for key, value in given.items() if key.lower() == "fqdn"), "")
        if fqdn and not initial.get("hostName"):
            initial["hostName"], initial["domainName"] = split_fqdn(fqdn, initial.get("domainName", ""))
        initial.setdefault("interfaceMtu", DEFAULT_MTU)
        if len(catalog) == 1:  # one choice: make it, without hiding that it is one
            initial.setdefault("osversionDir", next(iter(catalog.values())))
        initial["dhcp"] = DHCP_WORDS.get(str(initial.get("dhcp", "no")).strip().lower(), False)
        return cls(initial=initial, catalog=catalog)

    @classmethod
    def unjudged(cls, data: QueryDict) -> GenerateForm:
        """The posted values shown again without their rules (and without the passwords)."""
        initial = {name: value for name, value in data.items() if name not in PASSWORD_FIELDS}
        return cls(initial=initial, catalog={})

    def clean(self) -> dict[str, Any]:
        """The serializer's rules, then the page's own: the confirmation must match."""
        cleaned = super().clean() or {}
        self.serializer = request_serializer(self.request_body(cleaned), self.catalog)
        if not self.serializer.is_valid():
            for name, messages in self.serializer.errors.items():
                # non_field_errors (never from a form's body) would show at the top field.
                # Shown in the page's words; the audit keeps the API's (audit_validation).
                field = name if name in self.fields else "osversionDir"
                self.add_error(field, [page_message(str(m)) for m in messages])
        self.page_refusals = []
        if cleaned.get("rootPass") and cleaned.get(CONFIRM_FIELD) != cleaned.get("rootPass"):
            self.page_refusals.append(MISMATCH_MESSAGE)
            self.add_error(CONFIRM_FIELD, page_message(MISMATCH_MESSAGE))
        return cleaned

    @staticmethod
    def request_body(cleaned: Mapping[str, Any]) -> dict[str, Any]:
        """The API's request body (what a script would POST), the root password included."""
        body = {name: cleaned.get(name, "") for name in FIELD_ATTRIBUTES if name != "dhcp"}
        body["dhcp"] = "yes" if cleaned.get("dhcp") else "no"
        return body

    @property
    def error_summary(self) -> list[tuple[BoundField, str]]:
        """Every message with its field, in the page's order, for the summary at the top."""
        return [(self[name], str(message)) for name in self.fields for message in self.errors.get(name, [])]

    @property
    def offers_versions(self) -> bool:
        return bool(self.catalog)

    @property
    def chosen_version_offered(self) -> bool:
        """False when a link or a past build names an OS version this user is not offered."""
        chosen = self["osversionDir"].value()
        return not chosen or chosen in self.catalog.values()

    @property
    def mgmt_open(self) -> bool:
        """Show the management section open when it holds values or errors."""
        return any(self[name].value() or self.errors.get(name) for name in MGMT_FIELDS)

    @property
    def offered_mtus(self) -> tuple[str, ...]:
        return OFFERED_MTUS

    @property
    def wording(self) -> dict[str, Any]:
        """For the page's script: the API's messages in the page's words (isos.page_messages)."""
        return page_wording()
