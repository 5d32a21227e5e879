"""Where every byte of a laid-out image comes from, in disk order: the plan a stream follows.

pycdlib renders its metadata into memory (:func:`render_metadata`); the file extents say
which source file, extra file or range of a vendor ISO fills each other run of blocks;
:func:`plan` merges both, refusing any layout it does not understand. Why the engine
streams its own plan rather than calling pycdlib's ``write_fp()``: docs/design.md,
"The engine".
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass
from typing import BinaryIO, Final, cast

import pycdlib

from isos.engine.pycdlib_internals import write_metadata

BLOCK_SIZE: Final = 2048


@dataclass(frozen=True, slots=True)
class FileData:
    """A file's bytes at their place in the image, read from disk or memory."""

    offset: int
    length: int
    rel: str
    path: str | None
    memory: bytes | None
    mode: int = 0  # of a source file when laid out (Rock Ridge records it)
    # A range of a vendor ISO: where the file's bytes start in it, and the vendor ISO's
    # (size, mtime_ns, st_dev, st_ino) when laid out, which the stream checks before reading.
    origin_offset: int = 0
    origin_stamp: tuple[int, int, int, int] | None = None
    # A source file's (st_dev, st_ino) when scanned: the stream sends that inode or nothing.
    identity: tuple[int, int] | None = None

    @property
    def end(self) -> int:
        """Where the zero padding to the next block ends."""
        return self.offset + -(-self.length // BLOCK_SIZE) * BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class Metadata:
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


Piece = Metadata | FileData


class _Recorder:
    """A seekable, write-only file object that keeps what is written, and where."""

    def __init__(self) -> None:
        self._position = 0
        self._end = 0
        self.writes: list[tuple[int, bytes]] = []

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._position = offset
        elif whence == os.SEEK_CUR:
            self._position += offset
        elif whence == os.SEEK_END:
            self._position = self._end + offset
        else:
            raise ValueError(f"bad whence {whence}")
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes) -> int:
        # Zeros past everything written so far (a hybrid image's padding: up to a
        # cylinder) overwrite nothing, and the stream zero-fills gaps: keep no copy.
        beyond = self._position >= self._end and data.count(0) == len(data)
        if data and not beyond:
            self.writes.append((self._position, bytes(data)))
            self._position += len(data)
            self._end = max(self._end, self._position)
        return len(data)

    def segments(self) -> list[tuple[int, bytes]]:
        """Coalesce the writes into sorted, non-overlapping runs; later writes win."""
        spans: list[list[int]] = []
        for start, end in sorted((o, o + len(d)) for o, d in self.writes):
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        buffers = [bytearray(end - start) for start, end in spans]
        starts = [start for start, _ in spans]
        for offset, data in self.writes:  # in write order, so later writes win
            index = bisect.bisect_right(starts, offset) - 1
            relative = offset - starts[index]
            buffers[index][relative : relative + len(data)] = data
        return [(start, bytes(buf)) for start, buf in zip(starts, buffers, strict=True)]


def render_metadata(iso: pycdlib.PyCdlib) -> list[tuple[int, bytes]]:
    """pycdlib's metadata as (offset, bytes) runs, rendered in memory; no file data is read."""
    recorder = _Recorder()
    write_metadata(iso, cast(BinaryIO, recorder), BLOCK_SIZE)
    return recorder.segments()


def plan(segments: list[tuple[int, bytes]], files: list[FileData], size: int) -> list[Piece]:
    """Merge metadata and file data into one list in disk order.

    pycdlib writes file data after all metadata, so a file's blocks win over any
    metadata recorded there; that can only be the final padding byte, which the
    reference writes only when no file data ends the image. Anything else overlapping
    means the layout is not what this module expects, and it refuses to guess.
    """
    for before, after in itertools.pairwise(files):
        if after.offset < before.end:
            raise RuntimeError("pycdlib laid out overlapping file extents")
    if files and files[-1].end > size:
        raise RuntimeError("pycdlib laid out a file past the end of the image")

    file_starts = [f.offset for f in files]
    pieces: list[Piece] = list(files)
    for start, data in segments:
        end = start + len(data)
        if end > size:
            raise RuntimeError("pycdlib wrote metadata past the end of the image")
        cursor = start
        index = max(bisect.bisect_right(file_starts, start) - 1, 0)
        while index < len(files) and files[index].offset < end:
            hole = files[index]
            if hole.end > cursor:
                if hole.offset > cursor:
                    pieces.append(Metadata(cursor, data[cursor - start : hole.offset - start]))
                covered = data[max(hole.offset, cursor) - start : min(hole.end, end) - start]
                if covered.count(0) != len(covered):
                    raise RuntimeError("pycdlib metadata overlaps file data")
                cursor = max(cursor, hole.end)
            index += 1
        if cursor < end:
            pieces.append(Metadata(cursor, data[cursor - start :]))
    pieces.sort(key=lambda p: p.offset)
    return pieces
