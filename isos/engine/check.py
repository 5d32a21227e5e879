"""The boot modes of a source and of the ISO the portal makes from it, both read back.

For ``manage.py check_sources`` (docs/sources-and-booting.md): a vendor ISO's modes are
read from its own El Torito catalog and system area; the portal's ISO is built (with
one-byte placeholders for the host's files) and read back the same way, a few sectors
at a time through :meth:`~isos.engine.stream.IsoImage.read_at`, without streaming it
whole or writing it anywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

from isos.engine.boot_plan import read_vendor_boot, read_vendor_boot_from
from isos.engine.build import build_iso
from isos.engine.errors import SourceError, StreamError
from isos.engine.stream import IsoImage
from isos.engine.vendor import is_vendor_iso


class _ImageFile(io.RawIOBase):
    """A read-only, seekable file over an :class:`IsoImage`, reading only what is asked."""

    def __init__(self, image: IsoImage) -> None:
        super().__init__()
        self._image = image
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._image.size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._image.size - self._position
        data = self._image.read_at(self._position, size)
        self._position += len(data)
        return data


def image_boot_modes(image: IsoImage) -> tuple[str, ...]:
    """The modes an image boots in, read back from its bytes (catalog, MBR, GPT)."""
    try:
        return read_vendor_boot_from(_ImageFile(image)).vendor_modes  # type: ignore[arg-type]
    except StreamError as exc:
        raise SourceError(f"cannot read the ISO back ({exc})") from exc


@dataclass(frozen=True)
class SourceModes:
    """A source's boot modes (None for a directory source: a tree boots in none by
    itself) and those of the portal's ISO of it, read back; ``description`` is what
    ``state.out`` says."""

    source: tuple[str, ...] | None
    iso: tuple[str, ...]
    description: str

    @property
    def lost(self) -> tuple[str, ...]:
        return tuple(mode for mode in self.source or () if mode not in self.iso)


def check_source(source: os.PathLike[str] | str, extra_names: Sequence[str]) -> SourceModes:
    """Both sides' modes; SourceError when the portal refuses the source (the reason)."""
    root = os.path.realpath(os.fspath(source))
    modes = read_vendor_boot(root).vendor_modes if is_vendor_iso(root) else None
    with build_iso(root, dict.fromkeys(extra_names, b"\0")) as image:
        return SourceModes(modes, image_boot_modes(image), image.boot_description)
