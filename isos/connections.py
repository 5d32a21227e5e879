"""A download gives its database connection back while it streams.

A download lasts minutes and touches the database only at its start, once a minute for
its progress and at its end; a thousand of them must not hold a thousand connections
(docs/operations.md, "Many downloads at once"). Django opens a new one when next asked.
"""

from __future__ import annotations

from django.db import connection


def close_while_streaming() -> None:
    """Close this thread's (or greenlet's) connection, unless a transaction holds it."""
    if not connection.in_atomic_block:
        connection.close()
