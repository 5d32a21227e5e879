"""Traffic Ops-style permission checks, for DRF views and for pages.

Traffic Ops answers a logged-in user who lacks permissions with 403 and
``missing required Permissions: A, B``, naming only the ones missing, in the order the
route lists them. Django permissions carry those names as their labels.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


def missing_permission_labels(user: Any, labels: dict[str, str]) -> list[str]:
    """The Traffic Ops names of the permissions in ``labels`` that ``user`` lacks, in order."""
    return [label for perm, label in labels.items() if not user.has_perm(perm)]


def missing_permissions_message(missing: list[str]) -> str:
    return "missing required Permissions: " + ", ".join(missing)


def requires_permissions(labels: dict[str, str]) -> type[BasePermission]:
    """A DRF permission class requiring every Django permission in ``labels``.

    ``labels`` maps ``app.codename`` to the Traffic Ops name shown in the message.
    Anonymous users fail with 401 (DRF raises NotAuthenticated before using ``message``).
    """

    class RequiredPermissions(BasePermission):
        message = missing_permissions_message(list(labels.values()))

        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            if not user or not user.is_authenticated:
                return False
            missing = missing_permission_labels(user, labels)
            if missing:
                self.message = missing_permissions_message(missing)
            return not missing

    return RequiredPermissions
