"""A per-worker cache of laid-out sources, so a download starts at once.

One :class:`~isos.engine.template.LayoutTemplate` per source and set of extra file names,
checked against a cheap fingerprint of the source on every request, bounded by count and
memory (docs/design.md, "When a cached template is stale"). An ISO URL pins its template
(:class:`Pin`): the same source, laid out at the same time, gives the same bytes
(docs/design.md, "Byte-identical for life").
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from isos.engine.boot_plan import content_inputs
from isos.engine.build import build_iso
from isos.engine.errors import SourceError
from isos.engine.layout_process import make_layout_template_in_child
from isos.engine.stream import IsoImage
from isos.engine.template import TEMPLATE_EXTRA_MAX, LayoutTemplate
from isos.engine.vendor import is_vendor_iso

DEFAULT_MAX_ENTRIES = 8
DEFAULT_MAX_BYTES = 64 << 20
SETTLE_NS = 1_000_000_000
# Each stream holds about two chunks (the one filling, the one being sent): 512 KiB keeps
# 16 concurrent downloads of a worker within its memory bound at full loopback speed.
DEFAULT_CHUNK_SIZE = 512 << 10


def source_fingerprint(source_dir: str) -> str | None:
    """A digest of every directory's mtime, mode, device and inode, and the boot inputs'
    size and mtime (lstat only: a symlink put in place of the source or a directory shows).

    Lists each directory (no stat of plain files): a few milliseconds for 10,000 files;
    again only when a directory's stats changed (else one lstat per directory).
    None while the tree is settling: file times tick coarsely (a few ms), so a change
    made in the same tick as the fingerprint would leave it equal; a tree changed within
    the last second is not cached at all (the "racy git" problem, solved the same way).
    """
    settled_before = time.time_ns() - SETTLE_NS
    if is_vendor_iso(source_dir):
        # A vendor ISO is one file: its size, mtime, device and inode say whether it
        # changed (the stream checks the same four before reading each range of it).
        info = os.lstat(source_dir)
        if info.st_mtime_ns > settled_before:
            return None
        text = (
            f"iso\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_dev}\0{info.st_ino}".encode()
        )
        return hashlib.blake2b(text, digest_size=16).hexdigest()
    lines, newest = _directory_lines(source_dir)
    # The boot file, wherever the source's isoportal.json puts it, and that file itself.
    for rel in content_inputs(source_dir):
        try:
            boot = os.lstat(os.path.join(source_dir, rel))
            newest = max(newest, boot.st_mtime_ns)
            lines.append(f"{rel}\0{boot.st_mode}\0{boot.st_size}\0{boot.st_mtime_ns}")
        except OSError:
            lines.append(f"{rel}\0absent")
    if newest > settled_before:
        return None
    lines.sort()
    text = "\n".join(lines).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(text, digest_size=16).hexdigest()


# Each source's directories at its last fingerprint, with their stats. A directory's list of
# subdirectories changes only with its own mtime, so when no known directory's stats changed
# the walk is the same: a re-check (a BMC's every range) lstats them and lists none.
_KNOWN_SOURCES = 64
_known_directories: OrderedDict[str, list[tuple[str, str, str]]] = OrderedDict()
_known_lock = threading.Lock()


def _directory_line(relative: str, info: os.stat_result) -> str:
    return f"{relative}\0{info.st_mode}\0{info.st_mtime_ns}\0{info.st_dev}\0{info.st_ino}"


def _directory_lines(source_dir: str) -> tuple[list[str], int]:
    """Every directory's fingerprint line, and the newest of their mtimes."""
    with _known_lock:
        known = _known_directories.get(source_dir)
    if known is not None:
        lines, newest = [], 0
        for relative, directory, line in known:
            try:
                info = os.lstat(directory)
            except OSError:
                break  # gone: walk the tree as it is now
            if _directory_line(relative, info) != line:
                break
            newest = max(newest, info.st_mtime_ns)
            lines.append(line)
        else:
            return lines, newest
    newest = 0
    walked: list[tuple[str, str, str]] = []
    pending = [("", source_dir)]
    while pending:
        relative, directory = pending.pop()
        info = os.lstat(directory)
        newest = max(newest, info.st_mtime_ns)
        walked.append((relative, directory, _directory_line(relative, info)))
        with os.scandir(directory) as listing:
            pending += [
                (f"{relative}{entry.name}/", entry.path)
                for entry in listing
                if entry.is_dir(follow_symlinks=False)
            ]
    if newest <= time.time_ns() - SETTLE_NS:  # a settling tree is walked again next time
        with _known_lock:
            _known_directories[source_dir] = walked
            _known_directories.move_to_end(source_dir)
            while len(_known_directories) > _KNOWN_SOURCES:
                _known_directories.popitem(last=False)
    return [line for _, _, line in walked], newest


# A cache key: the source's real path, the extra files' names, the volume id, and the
# layout's time for a pinned template (None: whichever layout is current).
_Key = tuple[str, tuple[str, ...], str, int | None]


@dataclass(frozen=True)
class Pin:
    """What an image's bytes depend on besides its extra files: kept by an ISO URL."""

    source: str  # real path
    fingerprint: str
    volume_id: str
    layout_time: int
    digest: str  # LayoutTemplate.digest


class SourceChanged(Exception):
    """The source is no longer the one pinned: its bytes would differ. Says how."""


@dataclass(frozen=True)
class _Cached:
    fingerprint: str
    template: LayoutTemplate


class LayoutCache:
    """Templates by (source, extra file names, volume id), checked on every use."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        make_template: Callable[..., LayoutTemplate] = make_layout_template_in_child,
    ) -> None:
        self.make_template = make_template
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self._entries: OrderedDict[_Key, _Cached] = OrderedDict()
        self._layout_locks: dict[_Key, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def footprint(self) -> int:
        with self._lock:
            return sum(cached.template.footprint for cached in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def build_iso(
        self,
        source_dir: str | os.PathLike[str],
        extra_files: Mapping[str, bytes],
        *,
        volume_id: str = "CDROM",
        chunk_size: int | None = None,
    ) -> IsoImage:
        """Like :func:`isos.engine.build.build_iso`, from a cached layout when one fits.

        Extra files that do not fit a template (empty, or over one block) fall back to a
        full build, as does a source that cannot be fingerprinted (build_iso() then
        raises SourceError with the reason). ``chunk_size`` defaults to the cache's.
        """
        chunk_size = chunk_size or self.chunk_size
        if not all(1 <= len(data) <= TEMPLATE_EXTRA_MAX for data in extra_files.values()):
            return build_iso(source_dir, extra_files, volume_id=volume_id, chunk_size=chunk_size)
        source = os.path.realpath(os.fspath(source_dir))
        try:
            fingerprint = source_fingerprint(source)
        except OSError:
            fingerprint = None
        if fingerprint is None and is_vendor_iso(source):
            # A vendor ISO changed within the last second: laid out in the child all the
            # same (pycdlib's objects for a DVD must not stay in the worker), not cached.
            template = self.make_template(source, list(extra_files), volume_id=volume_id)
            return template.instantiate(extra_files, chunk_size=chunk_size)
        if fingerprint is None:  # unreadable (build_iso says why) or still settling
            return build_iso(source_dir, extra_files, volume_id=volume_id, chunk_size=chunk_size)
        key = (source, tuple(sorted(extra_files)), volume_id, None)
        kept = self._template(key, fingerprint, list(extra_files))
        return kept.instantiate(
            extra_files, chunk_size=chunk_size, on_stale=lambda: self._forget(key, fingerprint)
        )

    def pinned_iso(
        self,
        source_dir: str | os.PathLike[str],
        extra_files: Mapping[str, bytes],
        *,
        volume_id: str = "CDROM",
        chunk_size: int | None = None,
    ) -> tuple[IsoImage, Pin]:
        """Like :meth:`build_iso`, and what it depends on, to make it again (:meth:`pinned_image`).

        Raises SourceError when the source cannot be pinned: unreadable, changed within
        the last second, or extra files that do not fit a template.
        """
        if not all(1 <= len(data) <= TEMPLATE_EXTRA_MAX for data in extra_files.values()):
            raise SourceError("the kickstart files do not fit one block each: no URL can be made")
        source = os.path.realpath(os.fspath(source_dir))
        try:
            fingerprint = source_fingerprint(source)
        except OSError as error:
            raise SourceError(f"cannot read the source ({error.strerror})") from error
        if fingerprint is None:
            raise SourceError("the source changed within the last second")
        key = (source, tuple(sorted(extra_files)), volume_id, None)
        kept = self._template(key, fingerprint, list(extra_files))
        if kept.layout_time is None:
            raise SourceError("this layout's timestamps cannot be made again")
        image = kept.instantiate(
            extra_files,
            chunk_size=chunk_size or self.chunk_size,
            on_stale=lambda: self._forget(key, fingerprint),
        )
        return image, Pin(source, fingerprint, volume_id, kept.layout_time, kept.digest)

    def pinned_image(
        self, pin: Pin, extra_files: Mapping[str, bytes], *, chunk_size: int | None = None
    ) -> IsoImage:
        """The image ``pin`` was made from, byte for byte; raises SourceChanged when the
        source is no longer the one pinned (or, laid out again, would give other bytes)."""
        try:
            fingerprint = source_fingerprint(pin.source)
        except OSError:
            fingerprint = None
        if fingerprint != pin.fingerprint:
            raise SourceChanged("the source's fingerprint changed")
        names = tuple(sorted(extra_files))
        current: _Key = (pin.source, names, pin.volume_id, None)
        kept = self._cached(current, fingerprint)
        key = current
        if kept is None or kept.layout_time != pin.layout_time:
            # Laid out again at the pinned time, kept beside the current layout.
            key = (pin.source, names, pin.volume_id, pin.layout_time)
            kept = self._template(key, fingerprint, list(extra_files))
        if kept.digest != pin.digest:
            self._forget(key, fingerprint)
            raise SourceChanged("laid out again, the source gives other bytes")
        return kept.instantiate(
            extra_files,
            chunk_size=chunk_size or self.chunk_size,
            on_stale=lambda: self._forget(key, fingerprint),
        )

    def _template(self, key: _Key, fingerprint: str, names: list[str]) -> LayoutTemplate:
        """The template for ``key`` laid out from ``fingerprint``: cached, or laid out now."""
        source, _, volume_id, layout_time = key
        kept = self._cached(key, fingerprint)
        if kept is None:
            # One layout per source at a time: a hundred requests that miss at once (a gevent
            # worker takes them all) wait for the first one's, instead of starting a hundred
            # child processes. Other sources stay served meanwhile.
            with self._layout_lock(key):
                kept = self._cached(key, fingerprint)
                if kept is None:
                    # In a child process: the worker's memory never holds pycdlib's objects.
                    if layout_time is None:
                        kept = self.make_template(source, names, volume_id=volume_id)
                    else:
                        kept = self.make_template(source, names, volume_id=volume_id, layout_time=layout_time)
                    self._keep(key, fingerprint, kept)
        return kept

    def _cached(self, key: _Key, fingerprint: str) -> LayoutTemplate | None:
        """The template kept for ``key`` if it was laid out from this ``fingerprint`` (a hit)."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is None or cached.fingerprint != fingerprint:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return cached.template

    def _layout_lock(self, key: _Key) -> threading.Lock:
        with self._lock:
            return self._layout_locks.setdefault(key, threading.Lock())

    def _keep(self, key: _Key, fingerprint: str, template: LayoutTemplate) -> None:
        with self._lock:
            self.misses += 1
            if template.footprint <= self.max_bytes:  # one too big for the bound is not kept
                self._entries[key] = _Cached(fingerprint, template)
                self._entries.move_to_end(key)
                self._evict()

    def _forget(self, key: _Key, fingerprint: str) -> None:
        """Drop a template a stream found stale (unless already replaced by a newer one)."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached.fingerprint == fingerprint:
                del self._entries[key]

    def configure(self, max_entries: int, max_bytes: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        with self._lock:
            self.max_entries, self.max_bytes, self.chunk_size = max_entries, max_bytes, chunk_size
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently used until within both bounds."""
        total = sum(cached.template.footprint for cached in self._entries.values())
        while self._entries and (len(self._entries) > self.max_entries or total > self.max_bytes):
            _, dropped = self._entries.popitem(last=False)
            total -= dropped.template.footprint


# One per worker process, sized from the settings when the isos app starts.
layout_cache = LayoutCache()
