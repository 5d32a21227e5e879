"""Client text in log lines: whatever it holds, it stays on its own line (docs/operations.md).

A client can put a line break (``\\n``, ``\\r``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``,
``\\x85``, U+2028, U+2029) or any other control character in a host name, a directory, a
username or a path. Written into a log as it is, it would end the line and start a forged
one (an ``isos.requests`` line, say). Every log call that carries such text passes it
through :func:`log_text` (free text), :func:`log_value` (one value of a ``key=value``
line) or :func:`log_traceback` (an exception whose message may quote it): text that is
all printable is written as it is, anything else as a JSON string, ASCII only, so it is
one line and can be read back exactly. The settings' log formatter,
:class:`OneLineTracebackFormatter`, does the same to the tracebacks a record carries
(Django's own request log attaches one to a 500).
"""

from __future__ import annotations

import json
import logging
import traceback
from types import TracebackType

SECRET_MARK = "[root password]"  # noqa: S105  (what replaces it)
# What a bare ``key=value`` value may not hold besides unprintable characters.
VALUE_DELIMITERS = frozenset("\"'=\\")


def log_text(value: object) -> str:
    """``value`` for a log message: as it is when every character is printable (a space
    included), else JSON-quoted with every other character escaped."""
    text = str(value)
    return text if text.isprintable() else json.dumps(text)


def log_value(value: object) -> str:
    """One value of a ``key=value`` line: bare when safe, else JSON-quoted; ``-`` for none.

    Safe means printable with no whitespace, quote, ``=`` or backslash, so a reader that
    splits the line on spaces gets each value back whole.
    """
    if value is None or value == "":
        return "-"
    text = str(value)
    bare = text.isprintable() and not any(char.isspace() or char in VALUE_DELIMITERS for char in text)
    return text if bare else json.dumps(text)


def without_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` blotted out, also as a repr or a JSON string would quote it."""
    if not secret:
        return text
    for spelling in dict.fromkeys(
        (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])
    ):
        if spelling:
            text = text.replace(spelling, SECRET_MARK)
    return text


CAUSE = "The above exception was the direct cause of the following exception:"
CONTEXT = "During handling of the above exception, another exception occurred:"


def _chain(error: BaseException) -> list[tuple[BaseException, str]]:
    """The exceptions of ``error``'s chain, oldest first, each with Python's words for how it
    follows the one before ("" for the first)."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        older: BaseException | None = None
        words = ""
        if current.__cause__ is not None:
            older, words = current.__cause__, CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            older, words = current.__context__, CONTEXT
        chain.append((current, words if older is not None else ""))
        current = older
    return chain[::-1]


def log_traceback(error: BaseException, secret: str = "") -> str:
    """``error``'s traceback as Python prints it, but each exception's message through
    :func:`log_text` (it may quote client text) and ``secret`` blotted out of it.

    The frames (file, line, function, source line) are the code's own, never client text.
    """
    parts: list[str] = []
    for exception, words in _chain(error):
        if words:
            parts.append(f"\n{words}\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exception.__traceback__))
        kind = type(exception)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        name = module + kind.__qualname__
        message = without_secret(str(exception), secret)
        parts.append(f"{name}: {log_text(message)}\n" if message else f"{name}\n")
    return without_secret("".join(parts), secret).rstrip("\n")


class OneLineTracebackFormatter(logging.Formatter):
    """A formatter whose tracebacks are :func:`log_traceback`'s: each exception's message on
    one line, whoever logged it (``exc_info``)."""

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None],
    ) -> str:
        error = ei[1]
        return log_traceback(error) if error is not None else super().formatException(ei)
