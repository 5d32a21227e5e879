"""Which audit records a user may see, the history page's filters, and "Generate again".

Everyone sees their own attempts; an admin (a superuser, or a member of the group
``admin``) sees everyone's. A record's ``request_settings`` never hold the root
password, so "Generate again" can link them into the form as they are.

A record names the directory its request asked for, whether it exists or not; its display
name is shown only for an OS version the viewer may use (admins: all), so a refused
attempt never tells a user which other directories exist. A filter holding text no
database can store (a NUL) is dropped: PostgreSQL would refuse the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import QueryDict
from guardian.shortcuts import get_objects_for_user

from isos.models import IsoBuild
from osversions.models import USE_OSVERSION, OsVersion
from portal.trafficops.json_body import unstorable_character

ADMIN_GROUP = "admin"
PAGE_SIZE = 25


def sees_every_build(user: User | AnonymousUser) -> bool:
    """Admins see everyone's attempts, as Traffic Ops' admin role sees every change log."""
    if not isinstance(user, User):
        return False
    return user.is_superuser or user.groups.filter(name=ADMIN_GROUP).exists()


def visible_builds(user: User | AnonymousUser) -> QuerySet[IsoBuild]:
    """The records this user may see, newest first."""
    builds = IsoBuild.objects.order_by("-started_at", "-id")
    if sees_every_build(user):
        return builds
    if not isinstance(user, User):
        return builds.none()
    return builds.filter(user=user)


def version_names(user: User | AnonymousUser) -> dict[str, str]:
    """Directory → display name of the OS versions whose names ``user`` may see.

    Those the user may use (the global permission or a grant on the row, unavailable rows
    too: the grant outlives the osversions.json entry); an admin sees every name.
    """
    rows = OsVersion.objects.all()
    if not sees_every_build(user):
        if not isinstance(user, User) or not user.is_active:
            return {}
        rows = get_objects_for_user(user, USE_OSVERSION, klass=rows, accept_global_perms=True)
    return dict(rows.order_by("name").values_list("directory", "name"))


def query_text(query: QueryDict, key: str) -> str:
    """A query-string value, trimmed; "" when absent or holding text no database can store."""
    text = query.get(key, "").strip()
    return "" if unstorable_character(text) is not None else text


@dataclass(frozen=True)
class HistoryFilters:
    """The filters of the history page, read from its query string."""

    fqdn: str = ""
    user: str = ""
    osversion: str = ""
    outcome: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> HistoryFilters:
        outcome = query_text(query, "outcome")
        return cls(
            fqdn=query_text(query, "fqdn"),
            user=query_text(query, "user"),
            osversion=query_text(query, "osversion"),
            outcome=outcome if outcome in IsoBuild.Outcome.values else "",
        )

    def apply(self, builds: QuerySet[IsoBuild]) -> QuerySet[IsoBuild]:
        if self.fqdn:
            builds = builds.filter(fqdn__icontains=self.fqdn)
        if self.user:
            builds = builds.filter(username__icontains=self.user)
        if self.osversion:
            builds = builds.filter(osversion_dir=self.osversion)
        if self.outcome:
            builds = builds.filter(outcome=self.outcome)
        return builds

    @property
    def active(self) -> bool:
        return any((self.fqdn, self.user, self.osversion, self.outcome))

    def query_string(self) -> str:
        """The filters as a query string, for the pagination links (``page`` is added there)."""
        pairs = {"fqdn": self.fqdn, "user": self.user, "osversion": self.osversion, "outcome": self.outcome}
        return urlencode({key: value for key, value in pairs.items() if value})


COPYABLE_OUTCOMES = [outcome for outcome in IsoBuild.Outcome.values if outcome != IsoBuild.Outcome.REFUSED]


def previous_hosts(user: User | AnonymousUser, text: str, limit: int = 10) -> list[IsoBuild]:
    """For "Copy from a previous host": the newest record of each FQDN holding ``text`` among
    the records this user may see whose request passed the rules (refusals are left out)."""
    text = "" if unstorable_character(text) is not None else text.strip()
    builds = visible_builds(user).filter(outcome__in=COPYABLE_OUTCOMES).exclude(fqdn="")
    if text:
        builds = builds.filter(fqdn__icontains=text)
    newest: dict[str, IsoBuild] = {}
    for build in builds[: limit * 20]:
        if build.request_settings and build.fqdn.lower() not in newest:
            newest[build.fqdn.lower()] = build
            if len(newest) == limit:
                break
    return list(newest.values())


def latest_build_of(user: User | AnonymousUser, fqdn: str) -> IsoBuild | None:
    """The newest copyable record of exactly ``fqdn`` (any case) this user may see."""
    return next(
        (build for build in previous_hosts(user, fqdn, 50) if build.fqdn.lower() == fqdn.strip().lower()),
        None,
    )


def copyable_settings(build: IsoBuild) -> dict[str, Any]:
    """A record's request as the form's fields: never a password (none is ever stored)."""
    return {
        name: value
        for name, value in build.request_settings.items()
        if name not in {"rootPass", "confirmRootPass"} and isinstance(value, (str, int, bool))
    }


def generate_again_query(build: IsoBuild) -> str:
    """The form's prefill for the same request again (the password is never stored)."""
    prefill: dict[str, Any] = {}
    for name, value in build.request_settings.items():
        if name in {"rootPass", "confirmRootPass"} or value is None or value == "":
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        prefill[name] = value
    return urlencode(prefill)
