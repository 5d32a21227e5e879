"""The servers isobench measures: the portal under gunicorn, and a plain file server.

Both run as gunicorn processes on loopback. The portal gets its own database (PostgreSQL
as in production where one answers on 127.0.0.1:5432, SQLite otherwise), a user in
``operations`` and the benchmark's kickstart files location; the file server
sends finished reference ISOs with ``wsgi.file_wrapper`` (sendfile), which is how a
server would send a file that genisoimage made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

from tests.support.serving import Gunicorn

BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password"
CREATE_USER = (
    "import django; django.setup()\n"
    "from django.contrib.auth.models import Group, User\n"
    f"user = User.objects.create_user({BENCH_USER!r}, password={BENCH_PASSWORD!r})\n"
    "user.groups.add(Group.objects.get(name='operations'))\n"
)


POSTGRES = "postgres://postgres@127.0.0.1:5432/"


def postgres_name(workdir: Path) -> str:
    return "isobench_" + hashlib.blake2b(str(workdir.resolve()).encode(), digest_size=6).hexdigest()


def bench_database_url(workdir: Path) -> str:
    """PostgreSQL where it answers (a database of this workdir's, made if missing), else SQLite."""
    name = postgres_name(workdir)
    try:
        with psycopg.connect(POSTGRES + "postgres", autocommit=True, connect_timeout=2) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                admin.execute(f'CREATE DATABASE "{name}"')
        return POSTGRES + name
    except psycopg.OperationalError:
        return f"sqlite:///{workdir / 'bench.sqlite3'}"


def drop_bench_database(workdir: Path) -> None:
    """Drop the workdir's PostgreSQL database, if one was made."""
    with (
        contextlib.suppress(psycopg.OperationalError),
        psycopg.connect(POSTGRES + "postgres", autocommit=True, connect_timeout=2) as admin,
    ):
        admin.execute(f'DROP DATABASE IF EXISTS "{postgres_name(workdir)}" WITH (FORCE)')


def start_portal(
    workdir: Path,
    kickstart: Path,
    *,
    workers: int = 1,
    threads: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Gunicorn:
    """The portal on its own database, in the production model (gevent), or with ``threads``
    in the model it replaced (gthread: one download per thread), as a reference."""
    env = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": bench_database_url(workdir),
        "KICKSTART_FILES_LOCATION": str(kickstart),
        "ISO_NAMESERVERS": "192.0.2.53",
        "SECRET_KEY": "isobench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # As docs/operations.md advises for threaded workers: two malloc arenas, not one per
        # thread, so freed stream buffers are reused instead of piling up.
        "MALLOC_ARENA_MAX": "2",
        # One benchmark user holds all the downloads.
        "ISO_MAX_STREAMS_PER_USER": "0",
        **(extra_env or {}),
    }
    full_env = {**os.environ, **env}
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    migrated = workdir / ".migrated"
    if not migrated.exists():
        subprocess.run([*manage, "migrate", "-v0"], env=full_env, check=True)
        subprocess.run([sys.executable, "-c", CREATE_USER], env=full_env, check=True, cwd=settings.BASE_DIR)
        migrated.touch()
    log = workdir / ("gunicorn-gthread.log" if threads else "gunicorn-portal.log")
    worker_class = "gthread" if threads else None
    return Gunicorn(
        "portal.wsgi", env, workdir, workers=workers, log=log, worker_class=worker_class, threads=threads
    )


def start_file_server(workdir: Path) -> Gunicorn:
    return Gunicorn(
        "tests.bench.serving:file_application",
        {"ISOBENCH_FILES": str(workdir)},
        workdir,
        worker_class="gthread",
        threads=4,
    )


def file_application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Serve ``/<name>`` from ISOBENCH_FILES with sendfile (the reference's "send it"); a
    ``Range: bytes=a-b`` gets those bytes (the ranges workload's reference)."""
    root = Path(os.environ["ISOBENCH_FILES"])
    path = root / environ["PATH_INFO"].lstrip("/")
    if "/" in environ["PATH_INFO"].lstrip("/") or not path.is_file():
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    handle = path.open("rb")
    wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", environ.get("HTTP_RANGE", ""))
    if wanted:
        size = path.stat().st_size
        first, last = int(wanted[1]), min(int(wanted[2]), size - 1)
        handle.seek(first)  # gunicorn's sendfile starts where the file stands
        start_response(
            "206 Partial Content",
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(last - first + 1)),
                ("Content-Range", f"bytes {first}-{last}/{size}"),
            ],
        )
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(handle, 1 << 20) if wrapper else [handle.read(last - first + 1)]
    start_response(
        "200 OK", [("Content-Type", "application/download"), ("Content-Length", str(path.stat().st_size))]
    )
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(handle, 1 << 20) if wrapper else iter(lambda: handle.read(1 << 20), b"")
