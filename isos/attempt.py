"""One attempt to generate an ISO: who, from where, since when, and by which road.

The API, the Generate ISO page and ``manage.py generate_iso`` each start an
:class:`Attempt` and hand it to every step of the shared road (``isos.generation``) and
to the audit (``isos.audit``), so no step needs an HttpRequest and the command needs no
fake one (docs/design.md). The attempt also carries what the audit may keep of the
request once it is known (never the root password) and its record once written, so each
attempt gets exactly one record, whichever step ends it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

from isos.models import IsoBuild


class Road(StrEnum):
    """Which caller started the attempt."""

    API = "api"
    PAGE = "page"
    COMMAND = "command"


@dataclass
class Attempt:
    """The state of one attempt, from its start to its audit record."""

    road: Road
    user: User | AnonymousUser
    client_address: str | None = None
    # Monotonic: the request log line's duration_ms is measured from here.
    started: float = field(default_factory=time.monotonic)
    # The request's fields the audit may keep (no password), once they are known.
    settings: dict[str, Any] = field(default_factory=dict)
    # The attempt's one audit record, once written (isos.audit.record_attempt).
    record: IsoBuild | None = None
    # The client's connection, where the WSGI server says (gunicorn's ``gunicorn.socket``):
    # a download gets a send timeout on it (isos.generation.iso_download_response).
    client_socket: socket.socket | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, road: Road) -> Attempt:
        """The attempt of a web request (the API's or the page's), by its user and address."""
        return cls(
            road=road,
            user=request.user,
            client_address=request.META.get("REMOTE_ADDR") or None,
            client_socket=request.META.get("gunicorn.socket"),
        )

    @property
    def recorded(self) -> bool:
        return self.record is not None

    @property
    def refusal_recorded(self) -> bool:
        """True once a refusal is audited: a second permission check must not record it again."""
        return self.record is not None and self.record.outcome == IsoBuild.Outcome.REFUSED
