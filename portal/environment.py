"""Strict reading of environment variables for the settings.

A value that is not what the variable takes stops start-up with a message naming the
variable: a typo must never turn a secure cookie off or a limit into a crash later
(docs/operations.md, "Configuration"). An unset or empty variable takes its default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def refuse(name: str, value: str, takes: str) -> ImproperlyConfigured:
    """The start-up error for a variable holding something it does not take."""
    return ImproperlyConfigured(f"environment variable {name}={value!r}: {takes}")


def env_str(name: str, default: str) -> str:
    return _raw(name) or default


def env_bool(name: str, default: bool) -> bool:
    """On/off: 1, true, yes, on / 0, false, no, off (any case); anything else is refused."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise refuse(name, value, "must be one of 1, true, yes, on, 0, false, no, off")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise refuse(name, value, f"must be a whole number (at least {minimum})") from None
    if number < minimum:
        raise refuse(name, value, f"must be at least {minimum}")
    return number


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise refuse(name, value, f"must be a number (at least {minimum:g})") from None
    if not minimum <= number < float("inf"):
        raise refuse(name, value, f"must be a finite number, at least {minimum:g}")
    return number


def env_choice(name: str, default: str, choices: Collection[str]) -> str:
    """One of ``choices`` (compared in lower case)."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise refuse(name, value, "must be one of " + ", ".join(sorted(choices)))
    return value.lower()


def env_matching(name: str, default: str, pattern: re.Pattern[str], takes: str) -> str:
    """A value the whole of which ``pattern`` matches; ``takes`` says what that is."""
    value = os.environ.get(name) or default
    if not pattern.fullmatch(value):
        raise refuse(name, value, f"must be {takes}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated, blanks dropped."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser() if value else default
