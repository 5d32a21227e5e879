"""A real HTTP client for the load test and the benchmark: log in, download, time the bytes.

http.client from the standard library, one connection per download, the body read with
``readinto`` into one reused 1 MiB buffer; optionally every byte goes through a
:class:`~tests.support.verify.StreamVerifier`.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from tests.support.verify import StreamVerifier

CHUNK = 1 << 20


@dataclass
class Download:
    status: int
    content_length: int
    received: int
    first_byte: float  # seconds from sending the request to the first body byte
    total: float  # seconds from sending the request to the last byte
    problems: list[str] = field(default_factory=list)
    kept: dict[str, bytes] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == 200 and self.received == self.content_length and not self.problems


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)


def login(url: str, username: str, password: str) -> str:
    """The session cookie ("name=value") for the user."""
    connection = _connection(url)
    body = json.dumps({"u": username, "p": password})
    connection.request("POST", "/api/5.0/user/login", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"login failed: {response.status}")
    cookie: SimpleCookie = SimpleCookie(response.getheader("Set-Cookie"))
    connection.close()
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())


def fetch(
    url: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    cookie: str = "",
    verify: dict[str, tuple[int, int]] | None = None,
) -> Download:
    """POST ``body`` as JSON (or GET without one) and read the whole answer."""
    connection = _connection(url)
    connection.connect()
    headers = {"Cookie": cookie}
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    started = time.perf_counter()
    connection.request("POST" if body is not None else "GET", path, payload, headers)
    response = connection.getresponse()
    length = int(response.getheader("Content-Length") or 0)
    # Only an ISO is verified: a refusal's alert is reported by its status.
    verifier = StreamVerifier(length, verify) if verify is not None and response.status == 200 else None
    # read1 returns what the first socket read brings (readinto would wait for 1 MiB).
    first = response.read1(CHUNK)
    first_byte = time.perf_counter() - started
    received = len(first)
    if verifier is not None:
        verifier.feed(first)
    while count := response.readinto(view):
        received += count
        if verifier is not None:
            verifier.feed(view[:count])
    total = time.perf_counter() - started
    connection.close()
    problems = verifier.problems() if verifier is not None else []
    kept = verifier.kept if verifier is not None else {}
    return Download(response.status, length, received, first_byte, total, problems, kept)
