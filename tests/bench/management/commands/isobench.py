"""``manage.py isobench``: how fast an operator gets an ISO, against references.

Makes the workloads of docs/performance.md in a temporary folder, serves the real portal
with gunicorn on loopback, downloads with a real HTTP client and, in the same call, runs
the references: ``cat`` of the sources (the floor), and genisoimage / xorriso building
the ISO to a file that is then sent (Traffic Ops' way). Prints one table of medians and
the ratios, with the targets. Exits non-zero if any downloaded ISO is not byte-correct.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tests.bench import ranges, references, slow_clients
from tests.bench.serving import (
    BENCH_PASSWORD,
    BENCH_USER,
    drop_bench_database,
    start_file_server,
    start_portal,
)
from tests.support.downloads import Download, fetch, login
from tests.support.processes import RssSampler, open_write_files
from tests.support.workloads import MAKERS, WORKLOADS, request_body, source_checksums, vendor_tree

MB = 1_000_000
FIRST_BYTE_TARGET = {"netinstall": 0.050, "many-files": 0.100}
CONCURRENCY = (1, 4, 16)
SLOW_CLIENTS = "slow-clients"
RANGES = "ranges"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Command(BaseCommand):
    help = "Benchmark ISO downloads through gunicorn against genisoimage, xorriso and cat."
    # The servers it starts get a database, a secret key and sources of their own: a
    # checkout without a laptop key (portal.E001) can still measure.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--quick", action="store_true", help="Small workloads, few runs (under a minute)."
        )
        parser.add_argument("--runs", type=int, default=0, help="Timed runs per figure (default 5, quick 3).")
        parser.add_argument(
            "--workloads",
            default="netinstall,many-files,huge,vendor-iso,slow-clients",
            help="Comma-separated.",
        )
        parser.add_argument("--workdir", help="Where to make the trees (default: a temporary folder).")
        parser.add_argument(
            "--slow-clients-threads",
            type=int,
            default=0,
            help="slow-clients against the model before (gthread, 2 workers of this many threads).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quick = bool(options["quick"])
        runs = options["runs"] or (3 if quick else 5)
        names = [name.strip() for name in options["workloads"].split(",") if name.strip()]
        unknown = set(names) - set(WORKLOADS) - {SLOW_CLIENTS, RANGES}
        if unknown:
            raise CommandError(f"unknown workloads: {', '.join(sorted(unknown))}")
        workdir = Path(options["workdir"] or tempfile.mkdtemp(prefix="isobench-"))
        started = time.perf_counter()
        try:
            failures = self.run(workdir, names, runs, quick, options["slow_clients_threads"] or None)
        finally:
            if not options["workdir"]:
                drop_bench_database(workdir)
                drop_bench_database(workdir / "slow")
                drop_bench_database(workdir / RANGES)
                shutil.rmtree(workdir, ignore_errors=True)
        self.stdout.write(f"\nisobench took {time.perf_counter() - started:.0f} s")
        if failures:
            raise CommandError("not byte-correct: " + "; ".join(failures))

    def run(
        self, workdir: Path, names: list[str], runs: int, quick: bool, threads: int | None = None
    ) -> list[str]:
        failures: list[str] = []
        if SLOW_CLIENTS in names:
            names = [name for name in names if name != SLOW_CLIENTS]
            self.stdout.write("measuring slow-clients ...")
            lines, failures = slow_clients.run(workdir, quick, threads)
            self.stdout.write("\n".join(["", "slow clients:", *lines]))
        if RANGES in names:
            names = [name for name in names if name != RANGES]
            self.stdout.write("measuring ranges (ISO URL of huge) ...")
            (workdir / RANGES).mkdir(parents=True, exist_ok=True)
            lines, more = ranges.run(workdir / RANGES, quick)
            failures += more
            self.stdout.write("\n".join(["", "ranges (1 MiB at random offsets):", *lines]))
        return failures + (self.run_sources(workdir, names, runs, quick) if names else [])

    def run_sources(self, workdir: Path, names: list[str], runs: int, quick: bool) -> list[str]:
        kickstart = workdir / "kickstart"
        kickstart.mkdir(parents=True, exist_ok=True)
        for name in names:
            tree = kickstart / WORKLOADS[name].directory
            if not tree.exists():
                self.stdout.write(f"making {name} ({WORKLOADS[name].description}) ...")
                if name in ("netinstall", "vendor-iso"):
                    MAKERS[name](tree, scale=0.125 if quick else 1.0)
                else:
                    MAKERS[name](tree)
        (kickstart / "osversions.json").write_text(json.dumps({n: WORKLOADS[n].directory for n in names}))
        portal = start_portal(workdir, kickstart)
        file_server = start_file_server(workdir)
        try:
            return self.measure(workdir, kickstart, names, runs, quick, portal, file_server)
        finally:
            portal.stop()
            file_server.stop()

    def measure(
        self,
        workdir: Path,
        kickstart: Path,
        names: list[str],
        runs: int,
        quick: bool,
        portal: Any,
        files: Any,
    ) -> list[str]:
        cookie = login(portal.url, BENCH_USER, BENCH_PASSWORD)
        fetch(portal.url, "/api/5.0/osversions", cookie=cookie)
        worker = portal.worker_pid()
        idle = RssSampler(worker).rss()
        failures: list[str] = []
        rows: list[list[str]] = []
        throughput: dict[str, float] = {}  # bytes a second, by workload
        ratios: list[str] = []
        for name in names:
            source = kickstart / WORKLOADS[name].directory
            expected = source_checksums(vendor_tree(source) if source.is_file() else source)
            self.stdout.write(f"measuring {name} ...")
            # The first download lays the source out (and is checked byte for byte).
            cold = fetch(
                portal.url, "/api/5.0/isos", body=request_body(name, "cold"), cookie=cookie, verify=expected
            )
            failures += self.problems_of(name, cold, "cold")
            with RssSampler(worker) as rss:
                timed = [
                    fetch(portal.url, "/api/5.0/isos", body=request_body(name, f"run{n}"), cookie=cookie)
                    for n in range(runs if name != "huge" or not quick else 1)
                ]
                writes = open_write_files(worker, (str(workdir / "bench.sqlite3"), str(portal.log)))
            failures += [f"{name}: {d.received} of {d.content_length} bytes" for d in timed if not d.complete]
            if writes:
                failures.append(f"{name}: the server held files open for writing: {writes}")
            size = timed[0].content_length
            first = median([d.first_byte for d in timed])
            total = median([d.total for d in timed])
            floor_runs = [references.cat_floor(source) for _ in range(runs)]
            floor = median([seconds for seconds, _ in floor_runs])
            floor_bytes = floor_runs[0][1]
            rows.append(
                [
                    name,
                    f"{size / MB:,.0f}",
                    f"{cold.first_byte * 1000:.0f}",
                    f"{first * 1000:.1f}",
                    f"{total:.2f}",
                    f"{size / MB / total:,.0f}",
                    f"{floor_bytes / MB / floor:,.0f}",
                    f"{(rss.peak - idle) / MB:.0f}",
                ]
            )
            ratios.append(
                f"{name}: throughput {size / total / (floor_bytes / floor):.2f}x of the cat floor"
                " (target >= 0.5)"
                + (
                    f"; first byte {first * 1000:.1f} ms (target <= {FIRST_BYTE_TARGET[name] * 1000:.0f} ms)"
                    if name in FIRST_BYTE_TARGET
                    else ""
                )
                + f"; peak RSS {rss.peak / MB:.0f} MB (idle {idle / MB:.0f} MB; target < 100 MB)"
            )
            if name not in ("huge", "vendor-iso"):  # the builders take no vendor ISO
                rows += self.references(workdir, source, name, runs, files, total, first, ratios)
            if name == "netinstall":
                ratios.append(self.threaded_reference(workdir, kickstart, name, runs, total))
            throughput[name] = size / total
        if {"netinstall", "vendor-iso"} <= throughput.keys():
            ratios.append(
                f"vendor-iso: throughput {throughput['vendor-iso'] / throughput['netinstall']:.2f}x of the "
                "same tree as a directory source (target: as fast, >= 0.9)"
            )
        concurrency = self.concurrency(portal, cookie, worker, names, kickstart, failures)
        self.print_table(rows, concurrency, ratios, idle)
        return failures

    def references(
        self,
        workdir: Path,
        source: Path,
        name: str,
        runs: int,
        files: Any,
        total: float,
        first: float,
        ratios: list[str],
    ) -> list[list[str]]:
        rows = []
        shadow = references.shadow_tree(source, workdir / "shadow" / name)
        for tool in ("genisoimage", "xorriso"):
            if not references.available(tool):
                ratios.append(f"{name}: {tool} is not installed; no reference")
                continue
            output = workdir / f"{name}-{tool}.iso"
            builds, sends = [], []
            for _ in range(max(1, min(runs, 3))):
                builds.append(references.build_with(tool, shadow, output))
                sends.append(fetch(files.url, f"/{output.name}"))
            build, send = median(builds), median([d.total for d in sends])
            send_first = median([d.first_byte for d in sends])
            size = sends[0].received
            rows.append(
                [
                    f"  {tool} then send",
                    f"{size / MB:,.0f}",
                    "",
                    f"{(build + send_first) * 1000:.0f}",
                    f"{build + send:.2f}",
                    f"{size / MB / (build + send):,.0f}",
                    "",
                    "",
                ]
            )
            ratios.append(
                f"{name}: whole ISO {total / (build + send):.2f}x of {tool}-then-send (target <= 0.5); "
                f"first byte {first / (build + send_first):.3f}x"
            )
            output.unlink()
        return rows

    def threaded_reference(self, workdir: Path, kickstart: Path, name: str, runs: int, total: float) -> str:
        """The same download from the serving model the portal had before (gthread: a thread
        per download), in the same call: the fast client must lose nothing to gevent."""
        threaded = start_portal(workdir, kickstart, threads=16)
        try:
            cookie = login(threaded.url, BENCH_USER, BENCH_PASSWORD)
            fetch(threaded.url, "/api/5.0/isos", body=request_body(name, "warm"), cookie=cookie)
            before = median(
                [
                    fetch(
                        threaded.url, "/api/5.0/isos", body=request_body(name, f"t{n}"), cookie=cookie
                    ).total
                    for n in range(runs)
                ]
            )
        finally:
            threaded.stop()
        return (
            f"{name}: one fast download {before / total:.2f}x the throughput of the gthread model "
            "(before: a thread per download) measured now (target >= 0.8)"
        )

    def concurrency(
        self, portal: Any, cookie: str, worker: int, names: list[str], kickstart: Path, failures: list[str]
    ) -> list[str]:
        name = "netinstall" if "netinstall" in names else names[0]
        expected = source_checksums(kickstart / WORKLOADS[name].directory)
        lines = []
        for count in CONCURRENCY:
            with RssSampler(worker) as rss, ThreadPoolExecutor(max_workers=count) as pool:
                started = time.perf_counter()
                downloads = list(
                    pool.map(
                        lambda n: fetch(
                            portal.url,
                            "/api/5.0/isos",
                            body=request_body(name, f"c{n}"),
                            cookie=cookie,
                            verify=expected,
                        ),
                        range(count),
                    )
                )
                wall = time.perf_counter() - started
            problems = [self.problems_of(name, d, f"concurrent {count}") for d in downloads]
            failures += [problem for listed in problems for problem in listed]
            correct = sum(1 for listed in problems if not listed)
            received = sum(d.received for d in downloads)
            lines.append(
                f"{count:>3} concurrent {name}: {wall:.2f} s, {received / MB / wall:,.0f} MB/s in all, "
                f"{correct}/{count} byte-correct, peak RSS {rss.peak / MB:.0f} MB"
            )
        return lines

    def problems_of(self, name: str, download: Download, label: str) -> list[str]:
        problems = [f"{name} ({label}): {problem}" for problem in download.problems]
        if download.status != 200:
            problems.append(f"{name} ({label}): HTTP {download.status}")
        network = download.kept.get("ks_scripts/network.cfg", b"")
        if download.status == 200 and b'NAMESERVER="192.0.2.53"' not in network:
            problems.append(f"{name} ({label}): network.cfg is not this request's")
        return problems

    def print_table(
        self, rows: list[list[str]], concurrency: list[str], ratios: list[str], idle: int
    ) -> None:
        header = [
            "workload",
            "ISO MB",
            "cold 1st ms",
            "1st byte ms",
            "whole s",
            "MB/s",
            "cat MB/s",
            "RSS +MB",
        ]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        self.stdout.write("")
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(
                    str(cell).rjust(width) if i else str(cell).ljust(width)
                    for i, (cell, width) in enumerate(zip(row, widths, strict=True))
                )
            )
        self.stdout.write("")
        for line in concurrency + ratios:
            self.stdout.write(line)
