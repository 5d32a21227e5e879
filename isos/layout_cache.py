"""A per-worker cache of laid-out ISO sources, so a download starts at once.

pycdlib takes most of a second to lay out a tree of 10,000 files, yet only the five
small ``ks_scripts`` files change from one request to the next. The cache keeps one
:class:`~isos.builder.LayoutTemplate` per source (and set of extra file names), and each
request only fills in its own files.

It is checked against the tree on every request: the fingerprint is every entry's path,
type, size, mode and symlink target, plus the boot file's modification time (its
checksum is in the boot info table); file dates do not matter, since pycdlib stamps its
own. A changed tree is laid out anew. The fingerprint is taken *before* laying out, so a
tree that changes meanwhile is caught by the next request. The builder also refuses,
mid-stream, a file whose size no longer matches its layout.

Bounded by entry count and by the templates' memory; least recently used go first.
Nothing is shared between workers: each process warms its own.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from isos.builder import BOOT_FILE, IsoImage, LayoutTemplate, build_iso, make_layout_template

DEFAULT_MAX_ENTRIES = 8
DEFAULT_MAX_BYTES = 64 << 20


def source_fingerprint(source_dir: str) -> str:
    """A digest of everything in the tree that shapes its layout (lstat only)."""
    digest = hashlib.blake2b(digest_size=16)
    pending = [source_dir]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            relative = os.path.relpath(entry.path, source_dir)
            target = os.readlink(entry.path) if stat.S_ISLNK(info.st_mode) else ""
            stamp = info.st_mtime_ns if relative == BOOT_FILE else 0
            line = f"{relative}\0{info.st_mode}\0{info.st_size}\0{target}\0{stamp}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Cached:
    fingerprint: str
    template: LayoutTemplate


class LayoutCache:
    """Templates by (source, extra file names, volume id), checked on every use."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, tuple[str, ...], str], _Cached] = OrderedDict()
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
        chunk_size: int = 1 << 20,
    ) -> IsoImage:
        """Like :func:`isos.builder.build_iso`, from a cached layout when one fits.

        Extra files that do not fit a template (empty, or over one block) fall back to a
        full build, as does a source that cannot be fingerprinted (build_iso() then
        raises SourceError with the reason).
        """
        if not all(1 <= len(data) <= 2048 for data in extra_files.values()):
            return build_iso(source_dir, extra_files, volume_id=volume_id, chunk_size=chunk_size)
        source = os.path.realpath(os.fspath(source_dir))
        try:
            fingerprint = source_fingerprint(source)
        except OSError:
            return build_iso(source_dir, extra_files, volume_id=volume_id, chunk_size=chunk_size)
        key = (source, tuple(sorted(extra_files)), volume_id)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached.fingerprint == fingerprint:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached.template.instantiate(extra_files, chunk_size=chunk_size)
        # Laid out outside the lock: other sources stay served meanwhile. Two requests
        # missing at once both lay out; the later simply replaces the earlier.
        template = make_layout_template(source, list(extra_files), volume_id=volume_id)
        with self._lock:
            self.misses += 1
            if template.footprint <= self.max_bytes:  # one too big for the bound is not kept
                self._entries[key] = _Cached(fingerprint, template)
                self._entries.move_to_end(key)
                self._evict()
        return template.instantiate(extra_files, chunk_size=chunk_size)

    def configure(self, max_entries: int, max_bytes: int) -> None:
        with self._lock:
            self.max_entries, self.max_bytes = max_entries, max_bytes
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently used until within both bounds."""
        total = sum(cached.template.footprint for cached in self._entries.values())
        while self._entries and (len(self._entries) > self.max_entries or total > self.max_bytes):
            _, dropped = self._entries.popitem(last=False)
            total -= dropped.template.footprint


# One per worker process, sized from the settings when the isos app starts.
layout_cache = LayoutCache()
