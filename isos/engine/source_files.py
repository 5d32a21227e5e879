"""Opening what a source holds without following any symlink, and checking it is what was laid out.

Every path under a source is opened from a descriptor of the source's root, one
component at a time with ``O_NOFOLLOW`` (``openat`` semantics): no directory on the way
and no file at the end can be a symlink, so nothing outside the tree can be reached by
swapping an entry for a link. The root itself is opened from ``/`` the same way, from
its real path (resolved once, when the request named the source), so a root swapped for
a symlink since is refused too. What is opened is then checked against what the scan
recorded: device, inode, type and size (docs/design.md, "When a cached template is
stale"; docs/sources-and-booting.md, "Symlinks inside a source").
"""

from __future__ import annotations

import errno
import os
import posix
import stat
from dataclasses import dataclass
from typing import Final

_CLOEXEC: Final = os.O_CLOEXEC
# Directories passed through need only be searched, not listed (O_PATH where there is one).
SEARCH_FLAGS: Final = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
DIRECTORY_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a file swapped for a FIFO must not block waiting for a writer (it is refused
# once opened); O_NOCTTY: nor may a terminal become ours. Regular files ignore both.
FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC

Identity = tuple[int, int]  # (st_dev, st_ino)


def identity(info: os.stat_result) -> Identity:
    return info.st_dev, info.st_ino


class NotAsLaidOut(OSError):
    """What was opened is not the entry the scan recorded (another file or directory in
    its place, a symlink, a special file). ``str()`` names no absolute path."""


# gevent's monkey-patched os.close (the production server's workers) defers closing
# anything but a regular file until its event loop turns, so a walk down folders would pile
# up their descriptors (measured: about fifty at each download's start). The engine's
# descriptors are never watched by an event loop: they are closed at once, by the system's own.
close_now = posix.close


def is_symlink_error(error: OSError) -> bool:
    """An ``O_NOFOLLOW`` open that met a symlink (ELOOP), or a directory on the way that
    is not one any more (ENOTDIR: a symlink under ``O_DIRECTORY``, or a file)."""
    return error.errno in (errno.ELOOP, errno.ENOTDIR)


def open_real_path(path: str, flags: int = DIRECTORY_FLAGS) -> int:
    """Open an absolute, normalized ``path`` with no symlink at any of its components.

    For a source's root (or a vendor ISO): its real path, as resolved when the source was
    named; a component turned into a symlink since fails with ELOOP or ENOTDIR.
    """
    if not os.path.isabs(path) or os.path.normpath(path) != path:
        raise ValueError(f"not an absolute, normalized path: {path!r}")
    parts = [part for part in path.split("/") if part]
    descriptor = os.open("/", SEARCH_FLAGS if parts else flags)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = os.open(part, flags if last else SEARCH_FLAGS, dir_fd=descriptor)
            close_now(descriptor)
            descriptor = following
    except BaseException:
        close_now(descriptor)
        raise
    return descriptor


@dataclass(frozen=True)
class SourceRoot:
    """A source directory as scanned: its real path and its (device, inode)."""

    path: str
    identity: Identity

    def open(self) -> int:
        """A descriptor of the root, refused (NotAsLaidOut) if another directory took its place."""
        descriptor = open_real_path(self.path, SEARCH_FLAGS)
        try:
            if identity(os.fstat(descriptor)) != self.identity:
                raise NotAsLaidOut(errno.ESTALE, "the source directory was replaced")
        except BaseException:
            close_now(descriptor)
            raise
        return descriptor


class SourceWalker:
    """Opens files under one root by relative path, from directory descriptors only.

    Keeps the descriptors of the last file's directories open (a stack, at most the
    tree's depth), so files opened in tree order cost one ``openat`` each. ``close()``
    releases them; idempotent.
    """

    def __init__(self, root: SourceRoot) -> None:
        self._root = root
        self._root_fd: int | None = None
        self._chain: list[tuple[str, int]] = []  # (name, descriptor) below the root
        self._folder: str | None = None  # the last file's folder ("" for the root), and its descriptor
        self._folder_fd = -1

    def open_file(self, rel: str) -> int:
        """A descriptor of the file at ``rel`` (POSIX, relative), opened with FILE_FLAGS.

        OSError as the system says (ENOENT, EACCES, ...); ELOOP or ENOTDIR when a symlink
        is on the way; NotAsLaidOut when the root is not the one scanned. The caller
        checks the file itself (:func:`check_file`) and closes it.
        """
        folder, _, name = rel.rpartition("/")
        if folder == self._folder:  # the usual case: the previous file's folder
            return os.open(name, FILE_FLAGS, dir_fd=self._folder_fd)
        self._folder = None
        folders = folder.split("/") if folder else []
        if self._root_fd is None:
            self._root_fd = self._root.open()
        kept = 0
        while kept < len(self._chain) and kept < len(folders) and self._chain[kept][0] == folders[kept]:
            kept += 1
        for _, descriptor in reversed(self._chain[kept:]):
            close_now(descriptor)
        del self._chain[kept:]
        parent = self._chain[-1][1] if self._chain else self._root_fd
        for part in folders[kept:]:
            descriptor = os.open(part, SEARCH_FLAGS, dir_fd=parent)
            self._chain.append((part, descriptor))
            parent = descriptor
        self._folder, self._folder_fd = folder, parent
        return os.open(name, FILE_FLAGS, dir_fd=parent)

    def close(self) -> None:
        self._folder, self._folder_fd = None, -1
        chain, self._chain = self._chain, []
        for _, descriptor in reversed(chain):
            close_now(descriptor)
        root, self._root_fd = self._root_fd, None
        if root is not None:
            close_now(root)

    def __enter__(self) -> SourceWalker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_file(info: os.stat_result, expected: Identity | None, size: int | None = None) -> None:
    """Refuse (NotAsLaidOut) an opened file that is not a regular file, not the inode
    the scan recorded, or (when given) not of that size."""
    if not stat.S_ISREG(info.st_mode):
        raise NotAsLaidOut(errno.EINVAL, "not a regular file")
    if expected is not None and identity(info) != expected:
        raise NotAsLaidOut(errno.ESTALE, "another file in its place")
    if size is not None and info.st_size != size:
        raise NotAsLaidOut(errno.ESTALE, f"{info.st_size} bytes, laid out {size}")


def open_checked(root: SourceRoot, rel: str, expected: Identity | None, size: int | None = None) -> int:
    """One file under ``root``, opened safely and checked (:func:`check_file`)."""
    with SourceWalker(root) as walker:
        descriptor = walker.open_file(rel)
    try:
        check_file(os.fstat(descriptor), expected, size)
    except BaseException:
        close_now(descriptor)
        raise
    return descriptor


def read_head(descriptor: int, count: int) -> bytes:
    """Up to ``count`` bytes from the start of an open file."""
    return os.pread(descriptor, count, 0)
