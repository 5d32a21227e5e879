"""isobench's slow-clients workload (docs/performance.md): a thousand slow downloads at once.

The portal runs in its production model (two gevent workers). A child process of asyncio
clients starts ``CLIENTS`` downloads of a 64 MB ISO, each read at about 1 MB/s for
``SECONDS``; the first ``TO_END`` then read the rest and check every byte, the others hang
up. Meanwhile ``/healthz`` and ``POST user/login`` are timed from here, and each worker's RSS
is sampled, in two rounds; the same probes with no download running are the reference.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.serving import BENCH_PASSWORD, BENCH_USER, start_portal
from tests.support.downloads import fetch, login
from tests.support.processes import RssSampler, open_descriptor_targets
from tests.support.slow_clients import SlowClients, SlowJob
from tests.support.workloads import make_netinstall, request_body, source_checksums

MB = 1_000_000
SOURCE = "slow64"
SCALE = 0.061  # netinstall's shape (~300 files) at about 64 MB
RATE = 1_000_000
# (clients, seconds of slow reading, readers to the end, rounds, seconds over which the
# clients start: BMCs and operators arrive over time, not in one instant): the issue's, and
# --quick's.
FULL, QUICK = (1000, 20.0, 50, 2, 10.0), (100, 8.0, 10, 1, 3.0)
HEALTH_P99_TARGET, LOGIN_P99_TARGET = 0.100, 0.300
RSS_BASE, RSS_PER_STREAM = 100 * MB, 0.25 * MB


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


@dataclass
class Probes:
    """``/healthz`` and login latencies, taken in a thread until stopped."""

    port: int
    health: list[float] = field(default_factory=list)
    logins: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _timed(self, method: str, path: str, body: str | None) -> float:
        """Seconds to the whole answer (to the timeout, counted as a failure, if none came)."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                self.failures.append(f"{method} {path}: HTTP {response.status}")
        except OSError as error:
            self.failures.append(f"{method} {path}: {type(error).__name__}: {error}")
        finally:
            connection.close()
        return time.perf_counter() - started

    def _run(self) -> None:
        credentials = json.dumps({"u": BENCH_USER, "p": BENCH_PASSWORD})
        count = 0
        while not self._stop.is_set():
            self.health.append(self._timed("GET", "/healthz", None))
            if count % 10 == 0:  # a login every half second
                self.logins.append(self._timed("POST", "/api/5.0/user/login", credentials))
            count += 1
            time.sleep(0.05)

    def __enter__(self) -> Probes:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def line(self, label: str) -> str:
        return (
            f"{label}: /healthz p50 {statistics.median(self.health) * 1000:.0f} ms, "
            f"p99 {p99(self.health) * 1000:.0f} ms (n={len(self.health)}; target < 100 ms); "
            f"login p50 {statistics.median(self.logins) * 1000:.0f} ms, p99 {p99(self.logins) * 1000:.0f} ms "
            f"(n={len(self.logins)}; target < 300 ms)"
        )


def job_seconds(seconds: float) -> float:
    return seconds + 10


def rss_target(streams: int) -> float:
    return RSS_BASE + RSS_PER_STREAM * streams


def open_sockets(pid: int) -> int:
    return sum(1 for target in open_descriptor_targets(pid) if target.startswith("socket:"))


def run(workdir: Path, quick: bool, threads: int | None = None) -> tuple[list[str], list[str]]:
    """The workload's report lines, and what was wrong (not byte-correct, refused, ...).

    ``threads``: the serving model the portal had before (gthread, two workers of that many
    threads) instead of the production one, for the figures before and after."""
    clients, seconds, to_end, rounds, arriving = QUICK if quick else FULL
    kickstart = workdir / "slow-kickstart"
    source = kickstart / SOURCE
    if not source.exists():
        make_netinstall(source, scale=SCALE)
    (kickstart / "osversions.json").write_text(json.dumps({SOURCE: SOURCE}))
    expected = source_checksums(source)
    (workdir / "slow").mkdir(exist_ok=True)
    portal = start_portal(workdir / "slow", kickstart, workers=2, threads=threads)
    lines, failures = [], []
    try:
        cookie = login(portal.url, BENCH_USER, BENCH_PASSWORD)
        body = request_body(SOURCE, "slow")
        warm = fetch(portal.url, "/api/5.0/isos", body=body, cookie=cookie, verify=expected)
        if not warm.complete:
            failures.append(f"slow-clients: the warm-up download is not byte-correct: {warm.problems}")
        with Probes(portal.port) as idle:
            time.sleep(5)
        lines.append(idle.line("no downloads"))
        workers = portal.worker_pids()
        for number in range(1, rounds + 1):
            job = SlowJob(
                port=portal.port,
                cookie=cookie,
                body=body,
                clients=clients,
                rate=RATE,
                seconds=seconds,
                to_end=to_end,
                expected=expected,
                connect_over=arriving,
                # Under gthread most wait for a thread: they give up after the round's time.
                answer_within=job_seconds(seconds),
            )
            samplers = [RssSampler(pid) for pid in workers]
            started = time.perf_counter()
            with ExitStack() as sampling, Probes(portal.port) as busy:
                for sampler in samplers:
                    sampling.enter_context(sampler)
                slow = SlowClients(job)
                time.sleep(job.connect_over + seconds / 2)
                streams = [open_sockets(pid) for pid in workers]
                results = slow.results(timeout=seconds + 180)
            wall = time.perf_counter() - started
            ok = sum(1 for r in results if r.status == 200)
            unanswered = sum(1 for r in results if r.status == 0)
            whole = [r for r in results if r.read_to_end]
            correct = sum(1 for r in whole if not r.problems)
            statuses = sorted({r.status for r in results if r.status != 200})
            received = sum(r.received for r in results)
            lines.append(busy.line(f"round {number}, {clients} slow downloads"))
            rss = ", ".join(
                f"{s.peak / MB:.0f} MB with ~{n} streams (target < {rss_target(n) / MB:.0f})"
                for s, n in zip(samplers, streams, strict=True)
            )
            lines.append(
                f"round {number}: {ok}/{clients} answered 200 ({unanswered} no answer within "
                f"{job_seconds(seconds):.0f} s), {correct}/{len(whole)} read to the end byte-correct, "
                f"{received / MB:,.0f} MB in {wall:.0f} s; worker peak RSS {rss}"
            )
            failures += [f"slow-clients: {ok}/{clients} downloads answered 200 (others: {statuses})"] * (
                ok < clients
            )
            failures += [f"slow-clients: {r.problems}" for r in whole if r.problems]
            failures += [f"slow-clients probe: {failure}" for failure in busy.failures]
    finally:
        portal.stop()
    return lines, failures
