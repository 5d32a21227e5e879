"""Password hashing that never stalls a gevent worker's other requests.

PBKDF2 costs about a quarter of a second of CPU on purpose. In a gevent worker (the
production model) that would freeze every download and ``/healthz`` of the worker while a
login checks its password; hashlib releases the GIL while it hashes, so the hash runs in a
thread of gevent's pool instead (docs/design.md, "The serving model").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from gevent import get_hub
from gevent.monkey import is_module_patched

T = TypeVar("T")


def off_the_event_loop(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a real thread when gevent runs this process, else right here."""
    if is_module_patched("threading"):
        return get_hub().threadpool.apply(work, args)  # type: ignore[no-any-return]
    return work(*args)


class PBKDF2OffTheLoopHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 (same algorithm name and hashes), hashed off the event loop."""

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        return off_the_event_loop(super().encode, password, salt, iterations)
