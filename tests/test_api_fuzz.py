"""schemathesis against the portal's own OpenAPI description, on a running server.

The portal runs under gunicorn on loopback, as in production; schemathesis loads
``/api/schema/`` from it and sends what the description allows and, in its negative and
coverage cases, what it forbids (wrong types, missing fields, values outside the enums,
other methods and media types): once with an ``operations`` session, once without. Every
answer must be no 5xx, a status the description lists, its declared content type and
headers, and a body that matches its schema, ISO downloads included: about half of the
generated ISO requests take real sources and sane values, so the 200 stream is fuzzed too.

The tests after the fuzzing ones reproduce, one each, what the fuzzing once found in
product code (all mended): 404s for an unknown version or format that the description did
not list, a logout without a body refused for its missing CSRF token, and 500s for a NUL
character (on PostgreSQL) or an unpaired surrogate in a string.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.schemas import BaseSchema

from tests.support.api import static_request
from tests.support.serving import logged_in_session, serve_portal
from tests.support.sources import CATALOG

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


# No generated login can guess this name, so fuzzed logins never lock it out (django-axes
# counts failures per username and address) and never replace its session.
FUZZER = "schemathesis-operator-3f9c"
COOKIE = "mojolicious"
SEED = 20261127
MAX_EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]

# Values the server accepts, mixed into about half of the generated ISO requests (positive
# cases take only those the description allows): random strings alone almost never name a
# real source, so without them every fuzzed POST isos would stop at a 400.
DICTIONARIES: dict[str, list[str | int]] = {
    "sources": list(CATALOG.values()),
    "hosts": ["edge1", "mid-02"],
    "domains": ["cdn.example", "quest"],
    "passwords": ["changeme"],
    "dhcp": ["yes", "no", "1"],
    "mtus": [1500, "9000"],
    "ipv4": ["192.0.2.10", "198.51.100.7"],
    "netmasks": ["255.255.255.0"],
    "gateways": ["192.0.2.1"],
    "ipv6": ["2001:db8::10/64"],
    "ipv6_gateways": ["2001:db8::1"],
    "interfaces": ["eth0", "bond0"],
    "disks": ["sda", "nvme0n1"],
}
BINDINGS = {
    "osversionDir": "sources",
    "hostName": "hosts",
    "domainName": "domains",
    "rootPass": "passwords",
    "dhcp": "dhcp",
    "interfaceMtu": "mtus",
    "ipAddress": "ipv4",
    "ipNetmask": "netmasks",
    "ipGateway": "gateways",
    "ip6Address": "ipv6",
    "ip6Gateway": "ipv6_gateways",
    "interfaceName": "interfaces",
    "disk": "disks",
    "mgmtIpAddress": "ipv4",
    "mgmtIpNetmask": "netmasks",
    "mgmtIpGateway": "gateways",
    "mgmtInterface": "interfaces",
}


@dataclass
class FuzzPortal:
    """The gunicorn-served portal, the fuzzing user's session id, and what was answered."""

    url: str
    log: Path
    session_id: str
    answers: Counter[str] = field(default_factory=Counter)
    iso_bytes: int = 0


def log_in(url: str, username: str) -> str:
    """A new session's id."""
    return str(logged_in_session(url, username).cookies[COOKIE])


def fuzz_config(base_url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "request-timeout": 60,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "dictionaries": {name: {"values": values} for name, values in DICTIONARIES.items()},
            "parameters": {
                f"body.{key}": {"dictionary": name, "probability": 0.5} for key, name in BINDINGS.items()
            },
        }
    )


@pytest.fixture
def fuzz_portal(
    transactional_db: Any, kickstart_location: Path, make_user: Callable[..., User], tmp_path: Path
) -> Iterator[FuzzPortal]:
    make_user(FUZZER, "operations")
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log") as server:
        portal = FuzzPortal(server.url, server.log, log_in(server.url, FUZZER))
        yield portal
        # The figures (pytest -rP shows them); a 500's reason is in the log.
        print(f"answers: {dict(sorted(portal.answers.items()))}; ISO bytes: {portal.iso_bytes}")


@pytest.fixture
def portal_schema(fuzz_portal: FuzzPortal) -> BaseSchema:
    return schemathesis.openapi.from_url(
        f"{fuzz_portal.url}/api/schema/?format=json", config=fuzz_config(fuzz_portal.url), timeout=30
    )


def fuzz(schema: BaseSchema, portal: FuzzPortal, session_id: Callable[[], str | None]) -> dict[str, str]:
    """Every operation of ``schema`` through schemathesis' phases (the description's examples,
    its coverage cases, then generated ones); the distinct failures, each with its curl.

    Failures are collected rather than raised, so that each operation gets all its examples
    (as the CLI's ``--continue-on-failure``) and one test reports every distinct finding.
    """
    found: dict[str, str] = {}

    def check(case: Case[Any]) -> None:
        session = session_id()
        response = case.call(cookies={COOKIE: session} if session else None)
        portal.answers[f"{case.method} {case.operation.path} {response.status_code}"] += 1
        if (case.method, response.status_code) == ("POST", 200) and case.operation.path.endswith("/isos"):
            portal.iso_bytes += len(response.content)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{failure.operation} {response.status_code}: {failure.code} {failure.title}"
                found.setdefault(key, str(group))

    # The per-operation Hypothesis tests that schemathesis' pytest integration runs, without
    # its subtests: every distinct failure is collected and this test fails listing them all.
    for result in get_all_tests(schema=schema, test_func=check, settings=None, given_kwargs={}):
        if isinstance(result, Err):
            raise result.err()  # an operation the description itself gets wrong
        operation_test = result.ok()[1]
        operation_test()
    return found


def listed(found: dict[str, str]) -> str:
    return "\n\n".join([", ".join(found), *found.values()])


def test_every_operation_with_an_operations_session(
    portal_schema: BaseSchema, fuzz_portal: FuzzPortal
) -> None:
    # The fuzzing user's session goes with every request; logout is fuzzed on its own
    # below, with a fresh session each time, so that it never ends this one.
    schema = portal_schema.exclude(operation_id="user_logout_create")
    found = fuzz(schema, fuzz_portal, lambda: fuzz_portal.session_id)
    # The session held to the end, and the fuzzing got past the rules to real ISOs.
    assert fuzz_portal.answers["GET /api/{version}/osversions 200"] > 0
    assert fuzz_portal.answers["POST /api/{version}/isos 200"] > 0
    assert not found, listed(found)


def test_logout_with_a_fresh_session_each_time(portal_schema: BaseSchema, fuzz_portal: FuzzPortal) -> None:
    schema = portal_schema.include(operation_id="user_logout_create")
    found = fuzz(schema, fuzz_portal, lambda: log_in(fuzz_portal.url, FUZZER))
    assert not found, listed(found)


def test_every_operation_without_a_session(portal_schema: BaseSchema, fuzz_portal: FuzzPortal) -> None:
    found = fuzz(portal_schema, fuzz_portal, lambda: None)
    assert fuzz_portal.answers["GET /api/{version}/osversions 401"] > 0
    assert not found, listed(found)


def test_an_iso_download_conforms(portal_schema: BaseSchema, fuzz_portal: FuzzPortal) -> None:
    """The 200 stream itself, from each source: declared type and headers, every byte sent."""
    for source in CATALOG.values():
        case = iso_case(portal_schema, osversionDir=source)
        response = case.call_and_validate(cookies={COOKIE: fuzz_portal.session_id}, checks=CHECKS)
        assert response.status_code == 200
        assert response.headers["content-type"] == ["application/download"]
        assert int(response.headers["content-length"][0]) == len(response.content) > 32 * 1024


def failures_of(case: Case[Any], session_id: str | None) -> list[str]:
    """What schemathesis' checks say about one request (with its curl reproduction)."""
    try:
        case.call_and_validate(cookies={COOKIE: session_id} if session_id else None, checks=CHECKS)
    except FailureGroup as group:
        return [str(group)]
    return []


def iso_case(portal_schema: BaseSchema, version: str = "5.0", **body: Any) -> Case[Any]:
    operation = portal_schema["/api/{version}/isos"]["POST"]
    return operation.Case(path_parameters={"version": version}, body=static_request(**body))


def login_case(portal_schema: BaseSchema, body: dict[str, Any], version: str = "5.0") -> Case[Any]:
    operation = portal_schema["/api/{version}/user/login"]["POST"]
    return operation.Case(path_parameters={"version": version}, body=body, media_type="application/json")


def test_an_unknown_api_version_gets_a_documented_answer(
    portal_schema: BaseSchema, fuzz_portal: FuzzPortal
) -> None:
    # The coverage phase's first negative case, e.g. curl http://127.0.0.1:PORT/api/AAA/osversions
    version = "AAA"
    cases = [
        iso_case(portal_schema, version),
        portal_schema["/api/{version}/osversions"]["GET"].Case(path_parameters={"version": version}),
        login_case(portal_schema, {"u": "nobody", "p": "wrong"}, version),
        portal_schema["/api/{version}/user/logout"]["POST"].Case(path_parameters={"version": version}),
    ]
    failures = [failure for case in cases for failure in failures_of(case, fuzz_portal.session_id)]
    assert not failures, "\n\n".join(failures)


def test_an_unknown_iso_format_gets_a_documented_answer(
    portal_schema: BaseSchema, fuzz_portal: FuzzPortal
) -> None:
    case = iso_case(portal_schema)
    case.query = {"format": "AAA"}
    failures = failures_of(case, fuzz_portal.session_id)
    assert not failures, "\n\n".join(failures)


def test_logout_as_described_gets_a_documented_answer(
    portal_schema: BaseSchema, fuzz_portal: FuzzPortal
) -> None:
    # The description gives logout no request body, so a client sends no Content-Type.
    case = portal_schema["/api/{version}/user/logout"]["POST"].Case(path_parameters={"version": "5.0"})
    failures = failures_of(case, log_in(fuzz_portal.url, FUZZER))
    assert not failures, "\n\n".join(failures)


def test_a_lone_surrogate_is_no_server_error(portal_schema: BaseSchema, fuzz_portal: FuzzPortal) -> None:
    # JSON allows "\ud800"; Python decodes it to a str that cannot be encoded as UTF-8.
    failures = failures_of(iso_case(portal_schema, rootPass="a\ud800"), fuzz_portal.session_id)
    failures += failures_of(iso_case(portal_schema, hostName="a\ud800"), fuzz_portal.session_id)
    failures += failures_of(login_case(portal_schema, {"u": "a\ud800", "p": "wrong"}), None)
    assert not failures, "\n\n".join(failures)


def test_a_nul_character_is_no_server_error(portal_schema: BaseSchema, fuzz_portal: FuzzPortal) -> None:
    failures = failures_of(iso_case(portal_schema, hostName="a\x00"), fuzz_portal.session_id)
    failures += failures_of(login_case(portal_schema, {"u": "a\x00b", "p": "wrong"}), None)
    assert not failures, "\n\n".join(failures)
