"""Layout templates: one layout of a source serves every request's small extra files.

An extra file of 1 to 2048 bytes fills exactly one block, so its content and length
change no extent of anything else: only its bytes and its directory records' length
fields differ from one request to the next. A template is laid out once with
placeholders (in a child process, by the layout cache) and instantiated per request
without pycdlib (docs/design.md, "The engine").
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from isos.engine.layout import Layout, lay_out
from isos.engine.plan import BLOCK_SIZE, FileData, Metadata, Piece, plan, render_metadata
from isos.engine.pycdlib_internals import close_quietly, set_recorded_length
from isos.engine.source_files import SourceRoot
from isos.engine.stream import IsoImage

# The largest extra file a template takes: one block (see the module's docstring).
TEMPLATE_EXTRA_MAX: Final = BLOCK_SIZE
# Lengths planted in the extra files' records to find those fields in the rendered
# metadata (both-endian 32-bit, ECMA-119 9.1.4); improbable anywhere else.
_LENGTH_SENTINEL_BASE: Final = 0x5A17E000


def both_endian_32(value: int) -> bytes:
    return value.to_bytes(4, "little") + value.to_bytes(4, "big")


@dataclass(frozen=True)
class LayoutTemplate:
    """A rendered layout of a source tree with placeholder extra files.

    ``instantiate()`` makes the image for one request's extra files (same names, each 1
    to 2048 bytes) without laying anything out again: the stream is identical to what
    ``build_iso()`` makes for the same files, but for pycdlib's timestamps, which are
    those of the template.
    """

    plan: tuple[Piece, ...]
    patches: tuple[tuple[int, bytes], ...]
    size: int
    boot_description: str
    extra_offsets: Mapping[str, int]  # name → offset of its data block
    length_fields: Mapping[str, tuple[int, ...]]  # name → offsets of its data-length fields
    source: SourceRoot | None = None  # the directory source as scanned (None: a vendor ISO)
    layout_time: int | None = None  # the clock every timestamp was taken from, if it stood still

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of everything but the extra files that makes the image's bytes: two
        templates with one digest give the same bytes for the same extra files."""
        digest = hashlib.sha256(f"{self.size}".encode())
        for piece in self.plan:
            if isinstance(piece, Metadata):
                digest.update(b"m%d:%d:" % (piece.offset, len(piece.data)) + piece.data)
            else:
                name = piece.rel.encode("utf-8", "surrogateescape")
                numbers = (piece.offset, piece.length, piece.mode, piece.origin_offset, len(name))
                digest.update(b"f%d:%d:%d:%d:%d:" % numbers + name)
        for offset, data in self.patches:
            digest.update(b"p%d:%d:" % (offset, len(data)) + data)
        return digest.hexdigest()

    @property
    def footprint(self) -> int:
        """Roughly the memory the template holds, for bounding a cache of them."""
        metadata = sum(len(p.data) for p in self.plan if isinstance(p, Metadata))
        return metadata + 200 * len(self.plan)

    def accepts(self, extra_files: Mapping[str, bytes]) -> bool:
        return set(extra_files) == set(self.extra_offsets) and all(
            1 <= len(data) <= TEMPLATE_EXTRA_MAX for data in extra_files.values()
        )

    def instantiate(
        self,
        extra_files: Mapping[str, bytes],
        *,
        chunk_size: int = 1 << 20,
        on_stale: Callable[[], None] = lambda: None,
    ) -> IsoImage:
        """The image for these extra files; ``on_stale`` is called if, while streaming,
        a source file turns out to differ from the template's layout."""
        if not self.accepts(extra_files):
            raise ValueError("these extra files do not fit the layout template")
        by_offset = {offset: name for name, offset in self.extra_offsets.items()}
        pieces: list[Piece] = []
        for piece in self.plan:
            name = by_offset.get(piece.offset) if isinstance(piece, FileData) else None
            if name is None:
                pieces.append(piece)
            else:
                data = bytes(extra_files[name])
                pieces.append(FileData(piece.offset, len(data), name, None, data))
        patches = list(self.patches)
        for name, offsets in self.length_fields.items():
            patches += [(offset, both_endian_32(len(extra_files[name]))) for offset in offsets]
        return IsoImage(
            None,
            pieces,
            patches,
            size=self.size,
            boot_description=self.boot_description,
            chunk_size=chunk_size,
            on_stale=on_stale,
            source=self.source,
        )


def make_layout_template(
    source_dir: os.PathLike[str] | str, extra_names: Sequence[str], *, volume_id: str = "CDROM"
) -> LayoutTemplate:
    """Lay the tree out once with one-byte placeholders for ``extra_names``.

    Raises SourceError like ``build_iso()``.
    """
    names = sorted(extra_names)
    layout = lay_out(source_dir, dict.fromkeys(names, b"\0"), volume_id)
    try:
        # Plant a distinct sentinel in each placeholder's records, render, and find it.
        sentinels: dict[str, int] = {}
        record_counts: dict[str, int] = {}
        for index, name in enumerate(names):
            sentinels[name] = _LENGTH_SENTINEL_BASE + index
            record_counts[name] = _plant_length(layout, name, sentinels[name])
        segments = render_metadata(layout.iso)
        length_fields = {
            name: _find_all(segments, both_endian_32(sentinel)) for name, sentinel in sentinels.items()
        }
        if any(len(offsets) != record_counts[name] for name, offsets in length_fields.items()):
            raise RuntimeError("could not find the placeholders' data lengths in the metadata")
        # The sentinels stay in the template's metadata: every instance patches them over.
        pieces = plan(segments, layout.files, layout.size)
        extra_offsets = {file.rel: file.offset for file in layout.files if file.path is None}
    finally:
        close_quietly(layout.iso)
    return LayoutTemplate(
        plan=tuple(pieces),
        patches=tuple(layout.patches),
        size=layout.size,
        boot_description=layout.boot_description,
        extra_offsets=extra_offsets,
        length_fields={name: tuple(offsets) for name, offsets in length_fields.items()},
        source=layout.source,
    )


def _plant_length(layout: Layout, rel: str, length: int) -> int:
    """Set ``length`` in an extra file's ISO 9660 and Joliet records; how many it has."""
    iso_path, joliet_path = layout.extra_paths[rel]
    set_recorded_length(layout.iso, length, iso_path=iso_path)
    if joliet_path is None:
        return 1
    set_recorded_length(layout.iso, length, joliet_path=joliet_path)
    return 2


def _find_all(segments: Sequence[tuple[int, bytes]], needle: bytes) -> list[int]:
    found = []
    for start, data in segments:
        position = data.find(needle)
        while position >= 0:
            found.append(start + position)
            position = data.find(needle, position + 1)
    return found
