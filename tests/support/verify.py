"""Checking a downloaded ISO as it streams, in constant memory.

The portal's ISOs carry all their metadata before the first file's data. The verifier
keeps that prefix, parses it with pycdlib (reading zeros past it), learns where every
file's bytes lie, then checks each file's CRC-32 against the source tree's as the
rest of the stream passes by, and keeps the small ``ks_scripts`` files to compare.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import pycdlib

from isos.engine import BOOT_FILE
from tests.support.workloads import BOOT_INFO_TABLE

BLOCK = 2048
PREFIX_LIMIT = 32 << 20  # metadata of 10,000 files takes about 5 MB


class _PrefixFile(io.RawIOBase):
    """The ISO's first bytes, and zeros up to its full size, as a seekable file."""

    def __init__(self, prefix: bytes, size: int) -> None:
        self._prefix, self._size, self._position = prefix, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = max(0, min(len(buffer), self._size - self._position))
        have = self._prefix[self._position : self._position + count]
        buffer[: len(have)] = have
        buffer[len(have) : count] = bytes(count - len(have))
        self._position += count
        return count


@dataclass
class _Extent:
    path: str
    offset: int
    length: int
    crc: int = 0
    seen: int = 0
    keep: bytearray | None = None


def file_extents(prefix: bytes, size: int) -> list[_Extent]:
    """Every file's (Rock Ridge path, offset, length), multi-extent files joined."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(cast(BinaryIO, _PrefixFile(prefix, size)))
    try:
        extents: dict[str, _Extent] = {}
        for directory, _dirs, _files in iso.walk(rr_path="/"):
            for record in iso.list_children(rr_path=directory):
                if record is None or record.is_dir() or record.rock_ridge is None:
                    continue
                if record.rock_ridge.is_symlink():
                    continue
                name = record.rock_ridge.name().decode("utf-8", "replace")
                path = f"{directory.rstrip('/')}/{name}".lstrip("/")
                offset, length = record.extent_location() * BLOCK, 0
                part = record
                while part is not None:  # a file over 4 GiB continues in more records
                    length += part.get_data_length()
                    part = part.data_continuation
                extents[path] = _Extent(path, offset, length)
        return sorted(extents.values(), key=lambda extent: extent.offset)
    finally:
        iso.close()


@dataclass
class StreamVerifier:
    """Feed it the download's chunks; ``problems()`` then lists what is wrong."""

    size: int
    expected: dict[str, tuple[int, int]]  # source path → (size, crc32)
    keep: tuple[str, ...] = ("ks_scripts/network.cfg", "ks_scripts/password.cfg")
    received: int = 0
    _prefix: bytearray = field(default_factory=bytearray)
    _extents: list[_Extent] | None = None
    _next: int = 0
    kept: dict[str, bytes] = field(default_factory=dict)

    def feed(self, chunk: bytes | memoryview) -> None:
        data = memoryview(chunk)
        start = self.received
        self.received += len(data)
        if self._extents is None:
            self._prefix += data
            first_file = self._first_file_offset()
            if first_file is None:
                return
            data, start = memoryview(bytes(self._prefix)), 0
            self._prefix = bytearray()
        self._check(data, start)

    def _first_file_offset(self) -> int | None:
        if len(self._prefix) < min(self.size, PREFIX_LIMIT):
            return None
        self._extents = file_extents(bytes(self._prefix[:PREFIX_LIMIT]), self.size)
        for extent in self._extents:
            if extent.path in self.keep:
                extent.keep = bytearray()
        return self._extents[0].offset if self._extents else self.size

    def _check(self, data: memoryview, start: int) -> None:
        assert self._extents is not None
        end = start + len(data)
        while self._next < len(self._extents):
            extent = self._extents[self._next]
            low = extent.offset + extent.seen
            if extent.seen == extent.length or low < start:
                # Done, or sharing bytes already passed (two names, one extent): the
                # latter cannot be checked in one pass and is reported as differing.
                if extent.seen < extent.length:
                    extent.crc, extent.seen = -1, extent.length
                self._next += 1
                continue
            if low >= end:
                return
            high = min(extent.offset + extent.length, end)
            piece = data[low - start : high - start]
            if extent.path == BOOT_FILE:
                piece = _mask_boot_info_table(piece, low - extent.offset)
            extent.crc = zlib.crc32(piece, extent.crc)
            extent.seen += len(piece)
            if extent.keep is not None:
                extent.keep += piece

    def finish(self) -> None:
        """Parse a short ISO whose whole length stayed under the prefix limit."""
        if self._extents is None and self.received == self.size:
            self._first_file_offset()
            self._check(memoryview(bytes(self._prefix)), 0)

    def problems(self) -> list[str]:
        self.finish()
        if self.received != self.size:
            return [f"received {self.received} of {self.size} bytes"]
        if self._extents is None:
            return ["could not parse the ISO's metadata"]
        found = {extent.path: extent for extent in self._extents}
        self.kept = {path: bytes(found[path].keep or b"") for path in self.keep if path in found}
        wrong = []
        for path, (size, crc) in self.expected.items():
            extent = found.get(path)
            if extent is None:
                wrong.append(f"{path} missing")
            elif (extent.length, extent.crc) != (size, crc) and not path.startswith("ks_scripts/"):
                wrong.append(f"{path} differs")
        wrong += [f"{path} missing" for path in self.keep if path not in found]
        return wrong


def _mask_boot_info_table(piece: memoryview, offset_in_file: int) -> memoryview:
    start, end = BOOT_INFO_TABLE
    low, high = max(start, offset_in_file), min(end, offset_in_file + len(piece))
    if low >= high:
        return piece
    masked = bytearray(piece)
    masked[low - offset_in_file : high - offset_in_file] = bytes(high - low)
    return memoryview(masked)
