"""Streaming a planned image front to back: :class:`IsoImage`, and the :class:`IsoStream`
protocol every ISO the portal sends follows (the engine's image, a generate hook's file).

Each source file (or range of a vendor ISO) is opened only while its bytes go out, into
one reused chunk buffer, never through a symlink and only if it is the inode laid out
(:mod:`isos.engine.source_files`); the boot info table and the GPT headers are patched into the
output, never into the source. A file that changed since the layout fails the stream
rather than send a wrong ISO (docs/design.md, "The engine").
"""

from __future__ import annotations

import bisect
import errno
import functools
import os
import stat
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import BinaryIO, Protocol

import pycdlib

from isos.engine.errors import StreamError
from isos.engine.names import printable
from isos.engine.plan import FileData, Metadata, Piece
from isos.engine.pycdlib_internals import close_quietly
from isos.engine.source_files import (
    FILE_FLAGS,
    NotAsLaidOut,
    SourceRoot,
    SourceWalker,
    check_file,
    close_now,
    is_symlink_error,
    open_real_path,
)
from isos.engine.vendor import vendor_stamp


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


# Chunk sizes follow the reader: one that took more than FAST_READER bytes a second over
# the last READER_WINDOW gets the stream's whole chunk size; one slower than SLOW_READER
# gets the smallest again. A slow reader (a BMC, a far-away link: the many) then holds
# little memory, a fast one pays little Python per byte. The window is long enough, and
# FAST_READER high enough, that the socket buffers filling at the start (megabytes in
# milliseconds) do not pass for a fast reader (docs/design.md, "The serving model").
SMALLEST_CHUNK = 64 * 1024
FAST_READER = 100_000_000
SLOW_READER = 10_000_000
READER_WINDOW = 0.1


class _ReaderPace:
    """The size of the next chunk, by how fast the reader took the last ones (the rule
    above): the stream's buffer and a Range request's body both follow it."""

    def __init__(self, size: int, largest: int) -> None:
        self.size = size
        self.largest = largest
        self._window_started = time.monotonic()
        self._window_bytes = 0

    def took(self, count: int) -> int:
        """The reader took ``count`` bytes more: the size of the next chunk."""
        self._window_bytes += count
        now = time.monotonic()
        elapsed = now - self._window_started
        if elapsed >= READER_WINDOW:
            rate = self._window_bytes / elapsed
            if rate > FAST_READER:
                self.size = self.largest
            elif rate < SLOW_READER:
                self.size = min(SMALLEST_CHUNK, self.largest)
            self._window_started, self._window_bytes = now, 0
        return self.size


class _ChunkBuffer:
    """Fills one reused buffer and hands out full chunks, patched, as bytes."""

    def __init__(self, chunk_size: int, patches: list[tuple[int, bytes]]) -> None:
        self._zeros = _zeros(chunk_size)
        self._patches = patches
        self.fill = 0
        self.base = 0  # image offset of the buffer's first byte
        self._resize(min(SMALLEST_CHUNK, chunk_size))
        self._pace = _ReaderPace(self.size, chunk_size)
        self._last_chunk = 0  # handed out, and taken by the reader once the next is asked for

    def _resize(self, size: int) -> None:
        """A buffer of ``size`` bytes (between chunks only): the memory a chunk holds."""
        self._buffer = bytearray(size)
        self.view = memoryview(self._buffer)
        self.size = size

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
        # Filling this chunk, from memory or page cache, took next to nothing beside the
        # reader's time with the last one.
        size = self._pace.took(self._last_chunk)
        if size != self.size:
            self._resize(size)
        self._last_chunk = len(chunk)
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


class _SourceFiles:
    """The descriptors one stream reads source files through, and their checks.

    A directory source's files are opened from directory descriptors, never through a
    symlink (:class:`~isos.engine.source_files.SourceWalker`), and must be the very
    inodes the scan recorded; a vendor ISO is opened once per stream the same way, and
    must still be the one laid out. ``close()`` releases everything; idempotent.
    """

    def __init__(self, source: SourceRoot | None) -> None:
        self.walker = SourceWalker(source) if source is not None else None
        self._vendor: dict[str, int] = {}

    def vendor_iso(self, path: str) -> int:
        """The vendor ISO's descriptor, opened once per stream (closed by ``close()``)."""
        descriptor = self._vendor.get(path)
        if descriptor is None:
            descriptor = self._vendor[path] = open_real_path(path, FILE_FLAGS)
        return descriptor

    def close(self) -> None:
        vendor, self._vendor = self._vendor, {}
        for descriptor in vendor.values():
            close_now(descriptor)
        if self.walker is not None:
            self.walker.close()


def _emit_file(
    out: _ChunkBuffer, piece: FileData, files: _SourceFiles, on_stale: Callable[[], None]
) -> Iterator[bytes]:
    if piece.memory is not None:
        yield from out.put(memoryview(piece.memory)[: piece.length])
    else:
        yield from _emit_disk_file(out, piece, files, on_stale)
    yield from out.put_zeros(piece.end - piece.offset - piece.length)


def _open_checked(piece: FileData, files: _SourceFiles, on_stale: Callable[[], None]) -> tuple[int, bool]:
    """A descriptor to read ``piece`` from, and whether the caller closes it.

    Anything but the file laid out (a symlink in its place or on its way, another inode,
    a special file, a file gone) calls ``on_stale`` and fails the stream before any of
    its bytes go out.
    """
    assert piece.path is not None
    rel, length = piece.rel, piece.length
    try:
        if piece.origin_stamp is not None:
            # A range of a vendor ISO: the whole ISO must be the one laid out (its
            # metadata shaped the layout, not only this file's bytes).
            descriptor = files.vendor_iso(piece.path)
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or vendor_stamp(info) != piece.origin_stamp:
                raise NotAsLaidOut(errno.ESTALE, "changed")
            return descriptor, False
        # A directory source's file (the hot path: one openat and one fstat a file).
        if files.walker is None:
            raise StreamError(f"{printable(rel)}: no source directory to read it from")
        descriptor = files.walker.open_file(rel)
        try:
            info = os.fstat(descriptor)
            if (info.st_dev, info.st_ino) != piece.identity or not stat.S_ISREG(info.st_mode):
                check_file(info, piece.identity)  # raises NotAsLaidOut, saying which
        except BaseException:
            close_now(descriptor)
            raise
    except NotAsLaidOut as exc:
        on_stale()
        if piece.origin_stamp is not None:
            raise StreamError(f"the vendor ISO {printable(rel)} changed after layout") from exc
        if exc.errno == errno.EINVAL:  # a FIFO, a device, a directory
            raise StreamError(f"{printable(rel)} is no longer a regular file") from exc
        raise StreamError(f"{printable(rel)} is not the file laid out ({exc.strerror})") from exc
    except OSError as exc:
        on_stale()
        if exc.errno is not None and is_symlink_error(exc):
            raise StreamError(
                f"{printable(rel)} is not the file laid out (a symlink in its place or on its way)"
            ) from exc
        raise StreamError(f"cannot read {printable(rel)} while streaming ({exc.strerror})") from exc
    # A size other than the laid-out one means the layout is stale (the file was
    # rewritten in place): fail rather than send a truncated or padded file.
    if info.st_size != length or (piece.mode and info.st_mode != piece.mode):
        on_stale()
    if info.st_size != length:
        close_now(descriptor)
        change = "shrank" if info.st_size < length else "grew"
        raise StreamError(f"{printable(rel)} {change} after layout ({info.st_size} bytes, laid out {length})")
    return descriptor, True


def _emit_disk_file(
    out: _ChunkBuffer, piece: FileData, files: _SourceFiles, on_stale: Callable[[], None]
) -> Iterator[bytes]:
    """Read a source file straight into the chunk buffer, checking it against its layout.

    Plain descriptors (``openat`` from directory descriptors, ``preadv``), not file
    objects: a tree of 10,000 small files spends most of its streaming time opening
    them. Opened only while its bytes go out: one file descriptor at a time, closed even
    when the consumer stops early.

    A file that is not the one laid out (another inode, a symlink, a special file), or
    whose size changed, fails the stream (a wrong, truncated or padded file must never
    pass for a complete download); one whose mode changed is sent; ``on_stale`` tells the
    layout's owner in every case.
    """
    descriptor, owned = _open_checked(piece, files, on_stale)
    rel, length = piece.rel, piece.length
    try:
        position = piece.origin_offset if piece.origin_stamp is not None else 0
        left = length
        while left:
            want = min(left, out.size - out.fill)
            got = os.preadv(descriptor, [out.view[out.fill : out.fill + want]], position)
            if not got:
                raise StreamError(
                    f"{printable(rel)} shrank while streaming ({length - left} of {length} bytes)"
                )
            left -= got
            position += got
            if (chunk := out.advance(got)) is not None:
                yield chunk
    except OSError as exc:
        raise StreamError(f"cannot read {printable(rel)} while streaming ({exc.strerror})") from exc
    finally:
        if owned:
            close_now(descriptor)


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
        source: SourceRoot | None = None,
    ) -> None:
        self._iso: pycdlib.PyCdlib | None = iso
        self._source = source
        self._reference_fixes = reference_fixes
        self._on_stale = on_stale
        self._plan = plan
        self._patches = patches
        self._chunk_size = chunk_size
        self._stream: Generator[bytes, None, None] | None = None
        self._iterated = False
        self._closed = False
        self._starts: list[int] | None = None  # the pieces' offsets, for iter_range
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
        files = _SourceFiles(self._source)
        try:
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
                    yield from _emit_file(out, piece, files, self._on_stale)
                position = piece.end
            yield from out.put_zeros(self.size - position)
            if out.fill:
                yield out.take()
        finally:
            files.close()  # the directories (and vendor ISO) held open along the way

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the image from ``offset`` (fewer at its end), patched, read
        without streaming the rest: to read an image back (its system area, catalog and
        boot images) as cheaply as the vendor ISO it was made from. Raises StreamError
        as the stream would."""
        if self._closed:
            raise RuntimeError("the ISO image is closed")
        end = min(offset + length, self.size)
        out = bytearray(max(end - offset, 0))
        files = _SourceFiles(self._source)
        try:
            for piece in self._plan:
                low, high = max(piece.offset, offset), min(piece.end, end)
                if low >= high:
                    continue
                if isinstance(piece, Metadata):
                    out[low - offset : high - offset] = piece.data[low - piece.offset : high - piece.offset]
                elif piece.memory is not None:
                    data = piece.memory[
                        low - piece.offset : min(high, piece.offset + piece.length) - piece.offset
                    ]
                    out[low - offset : low - offset + len(data)] = data
                elif low < piece.offset + piece.length:
                    descriptor, owned = _open_checked(piece, files, lambda: None)
                    try:
                        start = (
                            (piece.origin_offset if piece.origin_stamp is not None else 0)
                            + low
                            - piece.offset
                        )
                        data = os.pread(descriptor, min(high, piece.offset + piece.length) - low, start)
                    finally:
                        if owned:
                            close_now(descriptor)
                    out[low - offset : low - offset + len(data)] = data
        finally:
            files.close()
        for at, record in self._patches:
            low, high = max(at, offset), min(at + len(record), end)
            if low < high:
                out[low - offset : high - offset] = record[low - at : high - at]
        return bytes(out)

    def iter_range(self, offset: int, length: int) -> Iterator[bytes]:
        """Bytes ``offset`` to ``offset + length`` (fewer at the image's end), patched, in
        chunks of up to the chunk size (64 KiB for a slow reader): a Range request's body.
        The first piece is found by bisection in the plan, so nothing before the range is
        read. Raises StreamError as the stream would."""
        if self._closed:
            raise RuntimeError("the ISO image is closed")
        end = min(offset + length, self.size)
        if self._starts is None:
            self._starts = [piece.offset for piece in self._plan]
        index = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        files = _SourceFiles(self._source)
        # The client chose the range's length: up to the chunk size it goes out in one
        # chunk (a BMC's many small ranges pay Python per chunk, not per byte); a longer
        # one starts there too, and drops to the smallest chunk for a slow reader.
        pace = _ReaderPace(max(min(end - offset, self._chunk_size), 1), self._chunk_size)
        try:
            position = offset
            size = pace.size
            while position < end:
                stop = min(position + size, end)
                chunk, index = self._read_window(files, position, stop, index)
                yield chunk
                position = stop
                size = pace.took(len(chunk))
        finally:
            files.close()

    def _read_window(self, files: _SourceFiles, start: int, stop: int, index: int) -> tuple[bytes, int]:
        """The patched bytes ``start`` to ``stop``, reading pieces from ``index`` on; and the
        index of the piece the next window starts in."""
        out = bytearray(stop - start)
        plan = self._plan
        while index < len(plan) and plan[index].offset < stop:
            piece = plan[index]
            low, high = max(piece.offset, start), min(piece.end, stop)
            if low < high:
                if isinstance(piece, Metadata):
                    out[low - start : high - start] = piece.data[low - piece.offset : high - piece.offset]
                else:
                    data_end = min(high, piece.offset + piece.length)
                    if piece.memory is not None:
                        data = piece.memory[low - piece.offset : data_end - piece.offset]
                        out[low - start : low - start + len(data)] = data
                    elif low < data_end:
                        descriptor, owned = _open_checked(piece, files, self._on_stale)
                        try:
                            base = piece.origin_offset if piece.origin_stamp is not None else 0
                            want = data_end - low
                            view = memoryview(out)[low - start : low - start + want]
                            got = os.preadv(descriptor, [view], base + low - piece.offset)
                            view.release()
                        except OSError as exc:
                            raise StreamError(
                                f"cannot read {printable(piece.rel)} while streaming ({exc.strerror})"
                            ) from exc
                        finally:
                            if owned:
                                close_now(descriptor)
                        if got != want:
                            self._on_stale()
                            raise StreamError(f"{printable(piece.rel)} shrank while streaming")
            if piece.end > stop:
                break  # the next window starts inside this piece
            index += 1
        for at, record in self._patches:
            low, high = max(at, start), min(at + len(record), stop)
            if low < high:
                out[low - start : high - start] = record[low - at : high - at]
        return bytes(out), index

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
