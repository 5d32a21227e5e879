"""Many slow downloads at once, as BMCs and far-away operators read them: an asyncio client.

Each client sends ``POST isos`` on its own connection, reads the ISO at ``rate`` bytes a
second for ``seconds``, and then either hangs up or (the first ``to_end`` of them) reads the
rest at full speed through a :class:`~tests.support.verify.StreamVerifier`. Run it in a
process of its own (:class:`SlowClients`) so the test's or the benchmark's own probes of the
server are not slowed by it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.support.verify import StreamVerifier

RECEIVE = 256 << 10
TICK = 0.5  # seconds between a slow client's reads


@dataclass
class SlowJob:
    port: int
    cookie: str  # "name=value"
    body: dict[str, Any]
    clients: int
    rate: int  # bytes a second per client
    seconds: float
    to_end: int = 0
    expected: dict[str, tuple[int, int]] | None = None  # source_checksums(), for to_end
    connect_over: float = 2.0  # the clients start spread over this many seconds
    answer_within: float = 60.0  # a client that has no answer by then gives up (status 0)


@dataclass
class SlowResult:
    status: int = 0
    content_length: int = 0
    received: int = 0
    read_to_end: bool = False
    problems: list[str] = field(default_factory=list)
    alert: str = ""


def request_bytes(job: SlowJob, index: int) -> bytes:
    body = json.dumps({**job.body, "hostName": f"{job.body['hostName']}{index}"}).encode()
    return (
        f"POST /api/5.0/isos HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {job.cookie}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


async def read_head(
    loop: asyncio.AbstractEventLoop, sock: socket.socket
) -> tuple[int, dict[str, str], bytes]:
    """The status, the headers (lower-case names) and whatever body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, rest


async def one_client(job: SlowJob, index: int) -> SlowResult:
    loop = asyncio.get_running_loop()
    result = SlowResult()
    await asyncio.sleep(job.connect_over * index / max(1, job.clients))
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", job.port))
        await loop.sock_sendall(sock, request_bytes(job, index))
        try:
            result.status, headers, rest = await asyncio.wait_for(read_head(loop, sock), job.answer_within)
        except TimeoutError:
            result.problems.append(f"no answer within {job.answer_within:.0f} s")
            return result
        result.content_length = int(headers.get("content-length", 0))
        if result.status != 200:
            body = rest
            while len(body) < result.content_length:
                body += await loop.sock_recv(sock, 65536)
            result.alert = json.loads(body or b"{}").get("alerts", [{}])[0].get("text", "")
            return result
        verifier = None
        if index < job.to_end and job.expected is not None:
            verifier = StreamVerifier(result.content_length, job.expected)
        buffer = bytearray(RECEIVE)
        view = memoryview(buffer)

        def take(data: memoryview) -> None:
            result.received += len(data)
            if verifier is not None:
                verifier.feed(data)

        take(memoryview(rest))
        deadline = time.monotonic() + job.seconds
        while time.monotonic() < deadline and result.received < result.content_length:
            # One tick's worth, then sleep out the tick: about ``rate`` bytes a second.
            tick_started, due = time.monotonic(), int(job.rate * TICK)
            while due > 0:
                count = await loop.sock_recv_into(sock, view[: min(due, RECEIVE)])
                if not count:
                    break
                take(view[:count])
                due -= count
            await asyncio.sleep(max(0.0, TICK - (time.monotonic() - tick_started)))
        if index < job.to_end:
            while count := await loop.sock_recv_into(sock, view):
                take(view[:count])
            result.read_to_end = True
            if result.received != result.content_length:
                result.problems.append(f"{result.received} of {result.content_length} bytes")
            if verifier is not None:
                result.problems += verifier.problems()
    except OSError as error:
        result.problems.append(f"{type(error).__name__}: {error}")
    finally:
        sock.close()
    return result


async def run_job(job: SlowJob) -> list[SlowResult]:
    return list(await asyncio.gather(*(one_client(job, index) for index in range(job.clients))))


class SlowClients:
    """A :class:`SlowJob` running in a child process of its own."""

    def __init__(self, job: SlowJob) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.slow_clients", json.dumps(asdict(job))],
            stdout=subprocess.PIPE,
        )

    def results(self, timeout: float) -> list[SlowResult]:
        """What each client saw, once all have ended (killed after ``timeout`` seconds)."""
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        if self.process.returncode != 0:
            raise RuntimeError(f"the slow clients exited {self.process.returncode}")
        return [SlowResult(**item) for item in json.loads(output)]


def main() -> None:
    raw = json.loads(sys.argv[1])
    if raw.get("expected") is not None:
        raw["expected"] = {path: tuple(sums) for path, sums in raw["expected"].items()}
    job = SlowJob(**raw)
    # A thousand sockets and more: as many descriptors as this process may have.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    outcome = asyncio.run(run_job(job))
    json.dump([asdict(item) for item in outcome], sys.stdout)


if __name__ == "__main__":
    main()
