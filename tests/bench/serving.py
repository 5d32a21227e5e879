"""The servers isobench measures: the portal under gunicorn, and a plain file server.

Both run as gunicorn processes on loopback. The portal gets its own SQLite database, a
user in ``operations`` and the benchmark's kickstart files location; the file server
sends finished reference ISOs with ``wsgi.file_wrapper`` (sendfile), which is how a
server would send a file that genisoimage made.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings

BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password"
CREATE_USER = (
    "import django; django.setup()\n"
    "from django.contrib.auth.models import Group, User\n"
    f"user = User.objects.create_user({BENCH_USER!r}, password={BENCH_PASSWORD!r})\n"
    "user.groups.add(Group.objects.get(name='operations'))\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.05)


class Gunicorn:
    """One gunicorn master with one worker (so its RSS and its cache are one process's)."""

    def __init__(self, app: str, env: dict[str, str], workdir: Path, threads: int) -> None:
        self.port = free_port()
        self.log = workdir / f"gunicorn-{app.split(':')[0].replace('.', '-')}.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                str(threads),
                "--timeout",
                "600",
            ],
            env={**os.environ, **env},
            cwd=settings.BASE_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process, self.log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pid(self) -> int:
        return child_pids(self.process.pid)[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid`` (gunicorn's workers, for its master), from /proc.

    Read from every thread of the process (a child belongs to the thread that made it); a
    process that is gone has none.
    """
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                found += [
                    int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return sorted(found)


def start_portal(workdir: Path, kickstart: Path, threads: int) -> Gunicorn:
    env = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "KICKSTART_FILES_LOCATION": str(kickstart),
        "ISO_NAMESERVERS": "192.0.2.53",
        "SECRET_KEY": "isobench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # As the README advises for threaded workers: two malloc arenas, not one per
        # thread, so freed stream buffers are reused instead of piling up.
        "MALLOC_ARENA_MAX": "2",
    }
    full_env = {**os.environ, **env}
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=full_env, check=True)
    subprocess.run([sys.executable, "-c", CREATE_USER], env=full_env, check=True, cwd=settings.BASE_DIR)
    return Gunicorn("portal.wsgi", env, workdir, threads)


def start_file_server(workdir: Path) -> Gunicorn:
    return Gunicorn("tests.bench.serving:file_application", {"ISOBENCH_FILES": str(workdir)}, workdir, 4)


def file_application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Serve ``/<name>`` from ISOBENCH_FILES with sendfile (the reference's "send it")."""
    root = Path(os.environ["ISOBENCH_FILES"])
    path = root / environ["PATH_INFO"].lstrip("/")
    if "/" in environ["PATH_INFO"].lstrip("/") or not path.is_file():
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    handle = path.open("rb")
    start_response(
        "200 OK", [("Content-Type", "application/download"), ("Content-Length", str(path.stat().st_size))]
    )
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(handle, 1 << 20) if wrapper else iter(lambda: handle.read(1 << 20), b"")


class RssSampler:
    """Samples a process's resident memory every few milliseconds while running."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def open_write_files(pid: int, allowed: tuple[str, ...]) -> list[str]:
    """Regular files the process holds open for writing, but for the allowed prefixes."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        writable = flags & (os.O_WRONLY | os.O_RDWR)
        if writable and not target.startswith(tuple(allowed)) and Path(target).is_file():
            found.append(target)
    return found
