"""Reading a source directory into the entry tree, and overlaying a request's extra files.

Only ``lstat`` and directory listings (and an access check per file): nothing is opened
or followed, so the scan of 10,000 files stays cheap and no symlink leads out of the tree.
Each directory is listed from a descriptor opened without following symlinks
(:mod:`isos.engine.source_files`), and every entry's device and inode are kept, so the
stream can tell that what it opens is what was scanned.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from typing import Final

from isos.engine.boot_plan import HEAD_BYTES, Found, Probe
from isos.engine.errors import SourceError
from isos.engine.names import printable
from isos.engine.source_files import (
    DIRECTORY_FLAGS,
    NotAsLaidOut,
    SourceRoot,
    close_now,
    identity,
    is_symlink_error,
    open_checked,
    open_real_path,
    read_head,
)
from isos.engine.tree import Entry, lookup

_EFFECTIVE_IDS: Final = os.access in os.supports_effective_ids
EXTRA_FILE_MODE: Final = 0o100444
CREATED_DIR_MODE: Final = 0o040555


def scan_source(root: str) -> Entry:
    """Read the source tree's shape (lstat only, sorted walk, symlinks not followed).

    ``root`` is the source's real path; a symlink at any of its components now is refused.
    """
    try:
        root_fd = open_real_path(root)
    except OSError as exc:
        if exc.errno is not None and is_symlink_error(exc):
            raise SourceError("the source path is not a directory") from exc
        raise SourceError(f"the source directory cannot be read ({exc.strerror})") from exc
    stack: list[tuple[int, Iterator[Entry]]] = []
    try:
        root_stat = os.fstat(root_fd)
        top = Entry(
            name="", rel="", kind="dir", mode=root_stat.st_mode, source=root, identity=identity(root_stat)
        )
        stack.append((root_fd, iter(_read_directory(top, root_fd))))
    except BaseException:
        close_now(root_fd)
        raise
    try:
        # Depth first, one descriptor per directory on the current path only.
        while stack:
            parent_fd, subdirectories = stack[-1]
            directory = next(subdirectories, None)
            if directory is None:
                stack.pop()
                close_now(parent_fd)
                continue
            descriptor = _open_subdirectory(parent_fd, directory)
            try:
                stack.append((descriptor, iter(_read_directory(directory, descriptor))))
            except BaseException:
                close_now(descriptor)
                raise
    finally:
        for descriptor, _ in stack:
            close_now(descriptor)
    return top


def _open_subdirectory(parent_fd: int, directory: Entry) -> int:
    """The directory just listed in its parent, refused if anything else is there now."""
    shown = printable(directory.rel)
    try:
        descriptor = os.open(directory.name, DIRECTORY_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno is not None and is_symlink_error(exc):
            raise SourceError(f"{shown} changed while the source was scanned") from exc
        raise SourceError(f"cannot list directory {shown} ({exc.strerror})") from exc
    if identity(os.fstat(descriptor)) != directory.identity:
        close_now(descriptor)
        raise SourceError(f"{shown} changed while the source was scanned")
    return descriptor


def _read_directory(directory: Entry, descriptor: int) -> list[Entry]:
    """Fill ``directory.children`` from its open descriptor; its subdirectories, in order."""
    assert directory.source is not None
    shown = directory.rel or "."
    try:
        with os.scandir(descriptor) as listing:
            dir_entries = sorted(listing, key=lambda item: item.name)
    except OSError as exc:
        raise SourceError(f"cannot list directory {printable(shown)} ({exc.strerror})") from exc
    subdirectories = []
    for item in dir_entries:
        rel = f"{directory.rel}/{item.name}" if directory.rel else item.name
        path = os.path.join(directory.source, item.name)
        try:
            info = item.stat(follow_symlinks=False)  # fstatat() in the listed directory
        except OSError as exc:
            raise SourceError(f"cannot stat {printable(rel)} ({exc.strerror})") from exc
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            child = Entry(
                name=item.name, rel=rel, kind="dir", mode=mode, source=path, identity=identity(info)
            )
            subdirectories.append(child)
        elif stat.S_ISREG(mode):
            # pycdlib only stats files at layout time; os.access() catches an
            # unreadable file now, before the first byte, without opening it
            # (with the effective ids: those of the worker that will read it).
            if not os.access(item.name, os.R_OK, dir_fd=descriptor, effective_ids=_EFFECTIVE_IDS):
                raise SourceError(f"cannot read file {printable(rel)} (permission denied)")
            child = Entry(
                name=item.name,
                rel=rel,
                kind="file",
                mode=mode,
                source=path,
                identity=identity(info),
                size=info.st_size,
            )
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(item.name, dir_fd=descriptor)
            except OSError as exc:
                raise SourceError(f"cannot read symlink {printable(rel)} ({exc.strerror})") from exc
            child = Entry(name=item.name, rel=rel, kind="symlink", mode=mode, target=target)
        else:
            continue  # sockets, fifos and devices have no place on a CD
        directory.children[item.name] = child
    return subdirectories


def overlay_extras(top: Entry, extra_files: Mapping[str, bytes]) -> None:
    """Put the in-memory files into the tree, replacing source files of the same path."""
    for key in sorted(extra_files):
        check_extra_path(key)
        parts = key.split("/")
        directory = top
        for depth, part in enumerate(parts[:-1], start=1):
            rel = "/".join(parts[:depth])
            existing = directory.children.get(part)
            if existing is None:
                existing = Entry(name=part, rel=rel, kind="dir", mode=CREATED_DIR_MODE)
                directory.children[part] = existing
            elif existing.kind != "dir":
                raise SourceError(f"{printable(rel)} is not a directory in the source tree")
            directory = existing
        replaced = directory.children.get(parts[-1])
        if replaced is not None and replaced.kind == "dir":
            raise SourceError(f"{printable(key)} is a directory in the source tree")
        directory.children[parts[-1]] = Entry(
            name=parts[-1],
            rel=key,
            kind="memory",
            mode=EXTRA_FILE_MODE,
            data=bytes(extra_files[key]),
        )


def check_extra_path(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"extra file path must be relative and normalized: {key!r}")
    if "\x00" in key:
        raise ValueError(f"extra file path holds a NUL character: {key!r}")


def tree_probe(top: Entry) -> Probe:
    """What :func:`isos.engine.boot_plan.resolve_boot` needs to know of the scanned tree."""

    def probe(rel: str) -> Found | None:
        entry = lookup(top, rel)
        if entry is None:
            return None
        if entry.kind == "dir":
            return Found("dir")
        if entry.kind == "memory":
            return Found("file", len(entry.data), entry.data[:HEAD_BYTES])
        if entry.kind != "file":
            return None
        assert top.source is not None and top.identity is not None
        root = SourceRoot(top.source, top.identity)
        try:
            descriptor = open_checked(root, entry.rel, entry.identity, entry.size)
        except NotAsLaidOut as exc:
            changed = f"{printable(rel)} changed while the source was laid out"
            raise SourceError(f"{changed} ({exc.strerror})") from exc
        except OSError as exc:
            if exc.errno is not None and is_symlink_error(exc):
                raise SourceError(f"{printable(rel)} changed while the source was laid out") from exc
            raise SourceError(f"cannot read {printable(rel)} ({exc.strerror})") from exc
        try:
            return Found("file", entry.size, read_head(descriptor, HEAD_BYTES))
        except OSError as exc:
            raise SourceError(f"cannot read {printable(rel)} ({exc.strerror})") from exc
        finally:
            close_now(descriptor)

    return probe
