"""The entry tree: one :class:`Entry` per name the ISO will hold, before pycdlib sees it.

The scan fills it from the source directory, the extra files overlay it, the naming
rules name it, and the layout hands it to pycdlib. Plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["dir", "file", "symlink", "memory", "catalog", "relocation"]


@dataclass(eq=False)
class Entry:
    """One name in the ISO: a source entry, an extra file, or a generated one."""

    name: str  # real name (may hold surrogate escapes for undecodable bytes)
    rel: str  # POSIX path relative to the ISO root, for messages
    kind: Kind
    mode: int = 0
    source: str | None = None  # absolute path of a source file or directory (real path)
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of a source file or directory, as scanned
    size: int = 0  # of a source file, as scanned (lstat)
    target: str = ""  # symlink target
    data: bytes = b""  # content of an extra file
    children: dict[str, Entry] = field(default_factory=dict)
    iso_name: str = ""  # as given to pycdlib: "NAME.EXT;1" for files, "NAME" for dirs
    joliet_name: str = ""
    rr_name: str = ""
    iso_path: str = ""  # full paths, set when added to pycdlib
    joliet_path: str = ""


def lookup(top: Entry, rel: str) -> Entry | None:
    """The entry at ``rel``, through real directories only (symlinks are not followed)."""
    entry: Entry | None = top
    for part in rel.split("/"):
        if entry is None or entry.kind != "dir":
            return None
        entry = entry.children.get(part)
    return entry


def max_dir_depth(top: Entry) -> int:
    deepest = 0
    pending = [(top, 0)]
    while pending:
        directory, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((c, depth + 1) for c in directory.children.values() if c.kind == "dir")
    return deepest


def walk_files(top: Entry) -> Iterator[Entry]:
    """Every source file in the tree (not the extra files, which live in memory)."""
    pending = [top]
    while pending:
        directory = pending.pop()
        for entry in directory.children.values():
            if entry.kind == "dir":
                pending.append(entry)
            elif entry.kind == "file":
                yield entry
