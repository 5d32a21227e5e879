"""gunicorn's settings for one ISO portal app server: ``iso-portal serve`` (``manage.py
serve`` in a checkout) runs ``gunicorn -c python:portal.gunicorn_conf portal.wsgi``; behind
nginx, deploy/gunicorn.conf.py imports these (docs/operations.md, "Running in production").

gevent workers: a download waits on its client in a greenlet, not a thread, so a thousand
slow ones do not hold up a login or ``/healthz`` (docs/design.md, "The serving model").

The address comes from ``ISO_PORTAL_BIND`` (deploy/systemd/iso-portal@.service sets it per
instance); anything here may be overridden on the command line. Only the proxy is believed:
a request from an address in ``forwarded_allow_ips`` (``FORWARDED_ALLOW_IPS``, loopback by
default) has its client address taken from the ``X-Forwarded-For`` nginx wrote and its scheme
from ``X-Forwarded-Proto``; from any other address those headers are dropped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import sys
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import glogging

# Loopback (or a private address nginx reaches): never a public one.
bind = [os.environ.get("ISO_PORTAL_BIND", "127.0.0.1:8001")]
# A download waits on its client in a greenlet: up to worker_connections connections per
# worker, of which ISO_MAX_STREAMS downloads (settings), the rest for short requests.
worker_class = "gevent"
workers = 2
worker_connections = 2000
# The worker's heartbeat (from its event loop, whatever the downloads are doing): not a
# limit on a download's length.
timeout = 60
# How long a connection may wait for its next request's headers. gevent's worker applies it
# to a new connection's first request too: gunicorn's 2 s dropped requests, unanswered, that
# a worker busy with fast downloads took over 2 s to read. nginx's client_header_timeout is 10 s.
keepalive = 10
# A restart or reload lets running downloads finish for this long before they are cut.
graceful_timeout = 300
proc_name = "iso-portal"
# gunicorn 25.1+'s control socket has one path per user ($HOME/.gunicorn/gunicorn.ctl), so the
# app servers of one host (iso-portal@8001, @8002) would each take it from the other; systemd
# (or signals) control them instead.
control_socket_disable = True
# nginx keeps the access log; the portal logs each ISO attempt itself (isos.requests).
accesslog = None
errorlog = "-"

# The proxy's addresses, and the one header it sets for HTTPS (it clears the others).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Each request runs in a greenlet of its own, so a database connection kept for reuse would
# be one per greenlet: close each at its request's end (the operator may still set one).
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def from_proxy(peer: str, proxies: Iterable[str]) -> bool:
    """Whether ``peer`` is one of ``proxies`` (addresses or networks, ``*`` for any); a UNIX
    socket's peer has no address and counts as the proxy, as gunicorn counts it."""
    proxies = list(proxies)
    if "*" in proxies or not peer:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def client_address_from_proxy(app: WSGIApp, proxies: Iterable[str]) -> WSGIApp:
    """``app`` seeing the client's address in ``REMOTE_ADDR`` behind the proxy (login
    throttling, the audit and the request log use it), and no forwarded header from anyone else."""
    proxies = list(proxies)

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if from_proxy(environ.get("REMOTE_ADDR", ""), proxies):
            # nginx overwrites the header with the one address it saw: the last entry.
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
            # No (or no usable) header: the peer's own address stays.
            with contextlib.suppress(ValueError):
                environ["REMOTE_ADDR"] = str(ipaddress.ip_address(forwarded))
        else:
            for key in [key for key in environ if key.startswith("HTTP_X_FORWARDED_")]:
                del environ[key]
            environ.pop("HTTP_FORWARDED", None)
            environ.pop("HTTP_X_REAL_IP", None)
        return app(environ, start_response)

    return wrapped


def post_worker_init(worker: Any) -> None:
    """gunicorn's hook, once the worker has loaded the portal: wrap it as above."""
    worker.wsgi = client_address_from_proxy(worker.wsgi, worker.cfg.forwarded_allow_ips)


class CutClientsLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's logger, but a client cut for taking nothing for ``ISO_SEND_TIMEOUT`` is one
    warning line, not an error with a traceback: the portal's own audit line says which
    download it was (``client_went_away``)."""

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if isinstance(sys.exc_info()[1], TimeoutError):
            self.warning("a client that took no byte for ISO_SEND_TIMEOUT was cut")
            return
        super().exception(msg, *args, **kwargs)


logger_class = CutClientsLogger


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (a thousand clients and their files need
    more than the usual 1024); the (before, after) soft limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_starting(server: Any) -> None:
    """gunicorn's hook in the master, before any worker: the workers inherit the limit."""
    before, after = raise_open_file_limit()
    server.log.info("open files: soft limit %s (was %s)", after, before)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's hook as a worker exits: write the ISO URLs' fetch counts it still holds
    (each worker writes them a second late, docs/design.md "Byte-identical for life")."""
    # gunicorn calls this in the master too (a worker already gone), where no request was
    # served and Django may not be set up: only a process that loaded the module counts.
    counts = sys.modules.get("isos.fetch_counts")
    if counts is not None:
        counts.flush_fetch_counts()
