"""isobench's ranges workload (docs/performance.md): what a BMC does with an ISO URL.

The huge workload (a 4.5 GiB sparse file: a 4.8 GB ISO) made into an ISO URL (``"stream":
"no"``), then 1 MiB ranges at random offsets read by 1 and by 16 concurrent readers: each
range's first-byte latency (p50, p99) and the throughput. The reference: the same ranges of
the finished ISO, on disk, from the sendfile file server (what a static server would do
after building the ISO). Every range is checked against that file.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench.serving import BENCH_PASSWORD, BENCH_USER, start_file_server, start_portal
from tests.support.downloads import login
from tests.support.workloads import make_huge, request_body

MB = 1_000_000
MiB = 1 << 20
RANGE = MiB
READERS = (1, 16)
FIRST_BYTE_P99_TARGET = 0.020
THROUGHPUT_TARGET = 0.5


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def read_range(base: str, path: str, first: int, last: int) -> tuple[int, float, bytes]:
    """(status, seconds to the first body byte, body) of one Range GET, no session."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Range": f"bytes={first}-{last}"})
    response = connection.getresponse()
    head = response.read1(RANGE)
    first_byte = time.perf_counter() - started
    body = head + response.read()
    connection.close()
    return response.status, first_byte, body


def save_sparse(base: str, path: str, destination: Path) -> int:
    """The whole ISO from the URL into ``destination``, all-zero blocks left as holes."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    connection.request("GET", path)
    response = connection.getresponse()
    zeros = bytes(MiB)
    size = 0
    with destination.open("wb") as out:
        while block := response.read(MiB):
            if block == zeros[: len(block)]:
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
            size += len(block)
        out.truncate(size)
    connection.close()
    return size


def run(workdir: Path, quick: bool) -> tuple[list[str], list[str]]:
    """The result lines and the failures."""
    kickstart = workdir / "kickstart"
    tree = kickstart / "huge"
    if not tree.exists():
        make_huge(tree)
    past = time.time_ns() - 10 * 10**9  # settled: an ISO URL pins only a settled source
    for item in [tree, *tree.rglob("*")]:
        os.utime(item, ns=(past, past), follow_symlinks=False)
    (kickstart / "osversions.json").write_text(json.dumps({"huge": "huge"}))
    portal = start_portal(workdir, kickstart)
    files = start_file_server(workdir)
    failures: list[str] = []
    lines: list[str] = []
    try:
        cookie = login(portal.url, BENCH_USER, BENCH_PASSWORD)
        parts = urlsplit(portal.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
        body = {**request_body("huge", "ranges"), "stream": "no"}
        started = time.perf_counter()
        connection.request(
            "POST", "/api/5.0/isos", json.dumps(body), {"Cookie": cookie, "Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        made = json.loads(answer.read())
        connection.close()
        if answer.status != 200:
            return [], [f"ranges: POST isos with stream no answered {answer.status}: {made}"]
        making = time.perf_counter() - started
        url, size = made["response"]["isoURL"], made["response"]["size"]
        path = urlsplit(url).path
        reference = workdir / "ranges.iso"
        if save_sparse(portal.url, path, reference) != size:
            failures.append("ranges: the whole ISO from the URL is not its size")
        lines.append(f"ISO URL of huge ({size / MB:,.0f} MB) made in {making:.1f} s (its SHA-256: one pass)")
        rng = random.Random(13)
        count = 48 if quick else 200
        spans = [
            (offset, offset + RANGE - 1) for offset in (rng.randrange(size - RANGE) for _ in range(count))
        ]
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        with reference.open("rb") as expected:
            for label, base, target in (
                ("portal URL", portal.url, path),
                ("sendfile of the file", files.url, "/ranges.iso"),
            ):
                for warm in spans[:4]:  # warm: the layout cached, the connection paths hot
                    read_range(base, target, *warm)
                for readers in READERS:
                    with ThreadPoolExecutor(readers) as pool:
                        wall_started = time.perf_counter()
                        got = list(pool.map(lambda span, b=base, t=target: read_range(b, t, *span), spans))
                        wall = time.perf_counter() - wall_started
                    for (first, last), (status, _, data) in zip(spans, got, strict=True):
                        if status != 206 or data != os.pread(expected.fileno(), last - first + 1, first):
                            failures.append(
                                f"ranges ({label}, {readers} readers): bytes {first}-{last} wrong"
                            )
                    latencies = [seconds for _, seconds, _ in got]
                    results[(label, readers)] = (
                        statistics.median(latencies),
                        quantile(latencies, 0.99),
                        count * RANGE / wall,
                    )
        for readers in READERS:
            for label in ("portal URL", "sendfile of the file"):
                p50, p99, throughput = results[(label, readers)]
                lines.append(
                    f"{readers:>2} reader{'s' if readers > 1 else ' '} {label:<21} first byte p50 "
                    f"{p50 * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms; {throughput / MB:7,.0f} MB/s"
                )
            p50, p99, throughput = results[("portal URL", readers)]
            ratio = throughput / results[("sendfile of the file", readers)][2]
            lines.append(
                f"   {readers} reader{'s' if readers > 1 else ''}: p99 first byte {p99 * 1000:.1f} ms "
                f"(target <= {FIRST_BYTE_P99_TARGET * 1000:.0f} ms), throughput {ratio:.2f}x of sendfile "
                f"(target >= {THROUGHPUT_TARGET})"
            )
        reference.unlink()
    finally:
        portal.stop()
        files.stop()
    return lines, failures
