"""The browsable API's form of ``POST isos``, drawn as a person expects it.

The request's serializer with three fields drawn differently: the OS version a select of
the versions this user may use, DHCP a yes/no select, the MTU filled with 1500. Each is a
subclass of the field it replaces, so the rules and messages stay the serializer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.fields import iter_options

from isos.serializers import DhcpField, IsoRequestSerializer, MtuField, OsVersionDirField

DEFAULT_MTU = 1500
SELECT = {"base_template": "select.html"}


class Options:
    """What DRF's select template asks of a field: its options, as (value, text) pairs."""

    options: list[tuple[str, str]]

    def iter_options(self) -> Any:
        return iter_options(dict(self.options))


class OsVersionSelect(Options, OsVersionDirField):
    def __init__(self, catalog: Mapping[str, str], **kwargs: Any) -> None:
        offered = sorted(((directory, name) for name, directory in catalog.items()), key=lambda d: d[1])
        self.options = [("", "Choose an OS version…"), *offered]
        super().__init__(style=SELECT, **kwargs)
        self.allow_null = False  # no extra blank choice: the first option is the blank one


class DhcpSelect(Options, DhcpField):
    options = [("no", "no"), ("yes", "yes")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(style=SELECT, initial="no", **kwargs)
        self.allow_null = False


def form_serializer(catalog: Mapping[str, str], data: Any = None) -> IsoRequestSerializer:
    """The serializer the browsable API draws its form from (bound to ``data`` when given)."""
    serializer = IsoRequestSerializer(data=data) if data is not None else IsoRequestSerializer()
    fields = serializer.fields
    for name, field in (
        ("osversionDir", OsVersionSelect(catalog)),
        ("dhcp", DhcpSelect()),
        ("interfaceMtu", MtuField(initial=DEFAULT_MTU)),
    ):
        original = fields[name]
        field.label, field.help_text = original.label, original.help_text
        fields[name] = field
    return serializer
