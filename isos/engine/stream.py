"""Streaming a planned image front to back: :class:`IsoImage`, and the :class:`IsoStream`
protocol every ISO the portal sends follows (the engine's image, a generate hook's file).

Each source file (or range of a vendor ISO) is opened only while its bytes go out, into
one reused chunk buffer; the boot info table and the GPT headers are patched into the
output, never into the source. A file that changed since the layout fails the stream
rather than send a wrong ISO (docs/design.md, "The engine").
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import BinaryIO, Protocol

import pycdlib

from isos.engine.errors import StreamError
from isos.engine.names import printable
from isos.engine.plan import FileData, Metadata, Piece
from isos.engine.pycdlib_internals import close_quietly


class IsoStream(Protocol):
    """An ISO on its way out: exact ``size`` before the first byte, ``bytes`` chunks when
    iterated (once), and ``close()``, idempotent, which also ends an iteration under way
    and frees what the ISO holds (files, pycdlib's state). An iteration that cannot go on
    raises, so a short stream never looks complete."""

    @property
    def size(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=4)
def _zeros(size: int) -> memoryview:
    """One read-only block of zeros per chunk size, shared by every stream."""
    return memoryview(bytes(size))


class _ChunkBuffer:
    """Fills one reused buffer and hands out full chunks, patched, as bytes."""

    def __init__(self, chunk_size: int, patches: list[tuple[int, bytes]]) -> None:
        self._buffer = bytearray(chunk_size)
        self.view = memoryview(self._buffer)
        self._zeros = _zeros(chunk_size)
        self._patches = patches
        self.size = chunk_size
        self.fill = 0
        self.base = 0  # image offset of the buffer's first byte

    def advance(self, count: int) -> bytes | None:
        """Account for `count` bytes put at `fill`; return a chunk if the buffer is full."""
        self.fill += count
        if self.fill == self.size:
            return self.take()
        return None

    def take(self) -> bytes:
        start, end = self.base, self.base + self.fill
        for offset, record in self._patches:
            low, high = max(offset, start), min(offset + len(record), end)
            if low < high:
                self.view[low - start : high - start] = record[low - offset : high - offset]
        chunk = bytes(self.view[: self.fill])
        self.base, self.fill = end, 0
        return chunk

    def put(self, data: bytes | memoryview) -> Iterator[bytes]:
        source = memoryview(data)
        while source:
            count = min(len(source), self.size - self.fill)
            self.view[self.fill : self.fill + count] = source[:count]
            source = source[count:]
            if (chunk := self.advance(count)) is not None:
                yield chunk

    def put_zeros(self, count: int) -> Iterator[bytes]:
        while count:
            step = min(count, self.size - self.fill)
            self.view[self.fill : self.fill + step] = self._zeros[:step]
            count -= step
            if (chunk := self.advance(step)) is not None:
                yield chunk


def _emit_file(out: _ChunkBuffer, piece: FileData, on_stale: Callable[[], None]) -> Iterator[bytes]:
    if piece.memory is not None:
        yield from out.put(memoryview(piece.memory)[: piece.length])
    else:
        yield from _emit_disk_file(out, piece, on_stale)
    yield from out.put_zeros(piece.end - piece.offset - piece.length)


def _emit_disk_file(out: _ChunkBuffer, piece: FileData, on_stale: Callable[[], None]) -> Iterator[bytes]:
    """Read a source file straight into the chunk buffer, checking it against its layout.

    Plain descriptors (os.open, os.readv), not file objects: a tree of 10,000 small
    files spends most of its streaming time opening them. Opened only while its bytes go
    out: one descriptor at a time, closed even when the consumer stops early.

    A file whose size changed since the layout fails the stream (a truncated or padded
    file must never pass for a complete download); one whose mode changed is sent, and
    ``on_stale`` tells the layout's owner either way.
    """
    assert piece.path is not None
    path, length, rel = piece.path, piece.length, piece.rel
    try:
        # O_NONBLOCK: a file replaced by a FIFO since the layout must not block the stream
        # forever waiting for a writer (it is refused below); regular files ignore the flag.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise StreamError(f"cannot read {printable(rel)} while streaming ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            on_stale()
            raise StreamError(f"{printable(rel)} is no longer a regular file")
        # A size other than the laid-out one means the layout is stale (the file was
        # rewritten in place): fail rather than send a truncated or padded file.
        if piece.origin_stamp is not None:
            # A range of a vendor ISO: the whole ISO must be the one laid out (its
            # metadata shaped the layout, not only this file's bytes).
            if (info.st_size, info.st_mtime_ns, info.st_ino) != piece.origin_stamp:
                on_stale()
                raise StreamError(f"the vendor ISO {printable(rel)} changed after layout")
            os.lseek(fd, piece.origin_offset, os.SEEK_SET)
        elif info.st_size != length or (piece.mode and info.st_mode != piece.mode):
            on_stale()
        if piece.origin_stamp is None and info.st_size != length:
            change = "shrank" if info.st_size < length else "grew"
            raise StreamError(
                f"{printable(rel)} {change} after layout ({info.st_size} bytes, laid out {length})"
            )
        left = length
        while left:
            want = min(left, out.size - out.fill)
            got = os.readv(fd, [out.view[out.fill : out.fill + want]])
            if not got:
                raise StreamError(
                    f"{printable(rel)} shrank while streaming ({length - left} of {length} bytes)"
                )
            left -= got
            if (chunk := out.advance(got)) is not None:
                yield chunk
    except OSError as exc:
        raise StreamError(f"cannot read {printable(rel)} while streaming ({exc.strerror})") from exc
    finally:
        os.close(fd)


class IsoImage:
    """A laid-out ISO: exact ``size`` up front, bytes in disk order when iterated.

    Made by :func:`isos.engine.build.build_iso` and
    :meth:`isos.engine.template.LayoutTemplate.instantiate`; an :class:`IsoStream`.
    Iterate once; the chunks are fresh ``bytes`` the consumer may keep, ``chunk_size``
    long except the first (everything before the first source file's data, sent without
    reading any source file) and the last. ``close()`` releases pycdlib's state and the
    file being read, if any; it is idempotent. Also a context manager.
    """

    size: int
    boot_description: str

    def __init__(
        self,
        iso: pycdlib.PyCdlib | None,
        plan: list[Piece],
        patches: list[tuple[int, bytes]],
        *,
        size: int,
        boot_description: str,
        chunk_size: int,
        on_stale: Callable[[], None] = lambda: None,
        reference_fixes: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        self._iso: pycdlib.PyCdlib | None = iso
        self._reference_fixes = reference_fixes
        self._on_stale = on_stale
        self._plan = plan
        self._patches = patches
        self._chunk_size = chunk_size
        self._stream: Generator[bytes, None, None] | None = None
        self._iterated = False
        self._closed = False
        self.size = size
        self.boot_description = boot_description

    def __iter__(self) -> Iterator[bytes]:
        if self._closed:
            raise RuntimeError("the ISO image is closed")
        if self._iterated:
            raise RuntimeError("an ISO image can be iterated only once")
        self._iterated = True
        self._stream = self._generate()
        return self._stream

    def _generate(self) -> Generator[bytes, None, None]:
        out = _ChunkBuffer(self._chunk_size, self._patches)
        position = 0
        source_read = False
        for piece in self._plan:
            yield from out.put_zeros(piece.offset - position)
            if isinstance(piece, Metadata):
                yield from out.put(piece.data)
            else:
                if not source_read and piece.path is not None:
                    # The first chunk never waits on source files: what precedes the
                    # first one (the metadata) goes out as soon as it is asked for.
                    source_read = True
                    if out.fill:
                        yield out.take()
                yield from _emit_file(out, piece, self._on_stale)
            position = piece.end
        yield from out.put_zeros(self.size - position)
        if out.fill:
            yield out.take()

    def write_reference(self, fp: BinaryIO) -> None:
        """Write the same image with pycdlib's own ``write_fp()`` (seekable ``fp``).

        Byte-identical to the stream but for one field: pycdlib stamps the volume
        descriptors' modification date with ``time.time()`` as it writes them, so the
        two match when written within the same second, or with that clock frozen. The
        GPT headers' checksums, which pycdlib gets wrong, are corrected after it writes.
        """
        if self._closed:
            raise RuntimeError("the ISO image is closed")
        if self._iso is None:
            raise RuntimeError("an image made from a layout template has no pycdlib writer")
        self._iso.write_fp(fp, blocksize=self._chunk_size)
        # What the engine corrects in pycdlib's output (the GPT headers' checksums).
        for offset, data in self._reference_fixes:
            fp.seek(offset)
            fp.write(data)

    def close(self) -> None:
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()  # closes the source file being read, if any
        iso, self._iso = self._iso, None
        if iso is not None:
            close_quietly(iso)

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
