"""The portal under gunicorn on loopback, and HTTP sessions logged in to it.

``Gunicorn`` starts one gunicorn master from the checkout on a free port, with the portal's
own production settings (portal/gunicorn_conf.py, as ``manage.py serve`` does), and waits
until it answers; ``serve_portal`` runs the portal that way on the test database (the
tests), and the benchmark (tests/bench/) starts its own servers with ``Gunicorn`` too.
"""

from __future__ import annotations

import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection

from portal.management.commands.serve import SETTINGS as PRODUCTION_SETTINGS
from tests.support.api import PASSWORD
from tests.support.processes import child_pids, poll


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait (up to a minute) until ``port`` accepts connections; RuntimeError with the end of
    ``log`` if ``process`` exits first or the minute is up."""
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
    """One gunicorn master serving ``app`` on loopback, started and answering; ``stop()`` ends it.

    The production settings, on a free port; one worker by default (so its RSS and its cache
    are one process's). ``worker_class`` and ``threads`` replace the production model (the
    benchmark's references); ``log`` defaults to a file in ``workdir`` named after the app.
    """

    def __init__(
        self,
        app: str,
        env: dict[str, str],
        workdir: Path,
        *,
        workers: int = 1,
        worker_class: str | None = None,
        threads: int | None = None,
        timeout: int = 600,
        log: Path | None = None,
        open_files: int | None = None,
    ) -> None:
        self.port = free_port()
        self.log = log or workdir / f"gunicorn-{app.split(':')[0].replace('.', '-')}.log"
        self._log = self.log.open("wb")
        model = ["--worker-class", worker_class] if worker_class else []
        model += ["--threads", str(threads)] if threads else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                PRODUCTION_SETTINGS,  # what ``manage.py serve`` runs
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--timeout",
                str(timeout),
                # A test's server stops at once, running downloads or not.
                "--graceful-timeout",
                "5",
                *model,
            ],
            env={**os.environ, **env},
            cwd=settings.BASE_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # A lower hard limit on open files, to see the portal run out of them.
            preexec_fn=(lambda: limit_open_files(open_files)) if open_files else None,
        )
        try:
            wait_for_port(self.port, self.process, self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the master's child processes."""
        return child_pids(self.process.pid)

    def worker_pid(self) -> int:
        return self.worker_pids()[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


def limit_open_files(count: int) -> None:
    """In the child before gunicorn starts: at most ``count`` open files (soft and hard)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


def database_url() -> str:
    """A URL for the test database, for a server process of its own."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"


@contextmanager
def serve_portal(
    kickstart_location: Path,
    log: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    open_files: int | None = None,
) -> Iterator[Gunicorn]:
    """Run the portal under gunicorn on loopback, on the test database, until the block ends.

    ``env`` adds to (or overrides) the server's environment, e.g. ``AXES_ENABLED``-style settings.
    """
    server_env = {
        "DATABASE_URL": database_url(),
        "KICKSTART_FILES_LOCATION": str(kickstart_location),
        "ISO_NAMESERVERS": "8.8.8.8,8.8.4.4",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        **(env or {}),
    }
    server = Gunicorn(
        "portal.wsgi", server_env, log.parent, workers=workers, timeout=120, log=log, open_files=open_files
    )
    try:
        # Every worker booted, so that worker_pids() names them all from the start.
        assert poll(lambda: len(server.worker_pids()) == workers, wait=30), log.read_text()[-2000:]
        yield server
    finally:
        server.stop()


def logged_in_session(base: str, username: str) -> requests.Session:
    """A ``requests`` session logged in to the portal at ``base`` (the API's login)."""
    session = requests.Session()
    response = session.post(f"{base}/api/5.0/user/login", json={"u": username, "p": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    assert "mojolicious" in session.cookies
    return session
