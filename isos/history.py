"""Which audit records a user may see, the history page's filters, and "Generate again".

Everyone sees their own attempts; an admin (a superuser, or a member of the group
``admin``) sees everyone's. A record's ``request_settings`` never hold the root
password, so "Generate again" can link them into the form as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import QueryDict

from isos.models import IsoBuild

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


@dataclass(frozen=True)
class HistoryFilters:
    """The filters of the history page, read from its query string."""

    fqdn: str = ""
    user: str = ""
    osversion: str = ""
    outcome: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> HistoryFilters:
        outcome = query.get("outcome", "").strip()
        return cls(
            fqdn=query.get("fqdn", "").strip(),
            user=query.get("user", "").strip(),
            osversion=query.get("osversion", "").strip(),
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
