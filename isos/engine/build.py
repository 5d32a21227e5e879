"""The engine's entry points for one request: :func:`build_iso` and :func:`describe_boot`.

``build_iso()`` lays the source out (:mod:`isos.engine.layout`), renders pycdlib's
metadata into memory and plans the stream (:mod:`isos.engine.plan`): an
:class:`~isos.engine.stream.IsoImage` whose size is exact before the first byte.
``describe_boot()`` says how that image will boot, before it exists, for text that
goes into the image itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from isos.engine.boot_plan import (
    BIOS_BOOT_FILE,
    BootSettingsError,
    disk_probe,
    read_settings,
    read_vendor_boot,
    resolve_boot,
)
from isos.engine.errors import SourceError
from isos.engine.layout import closed_on_error, lay_out
from isos.engine.plan import plan, render_metadata
from isos.engine.stream import IsoImage
from isos.engine.vendor import is_vendor_iso

BOOT_FILE: Final = BIOS_BOOT_FILE  # by convention; a source's isoportal.json may say otherwise


def build_iso(
    source_dir: os.PathLike[str] | str,
    extra_files: Mapping[str, bytes],
    *,
    volume_id: str = "CDROM",
    chunk_size: int = 1 << 20,
) -> IsoImage:
    """Lay out the source tree plus ``extra_files`` and return the :class:`IsoImage`.

    Only stats the source files (and reads ``isoportal.json``, the first bytes of the
    boot files, and the BIOS boot file once for the boot info table checksum); nothing in
    the source tree is written. ``extra_files`` maps POSIX paths relative to the ISO root
    to their content; they replace source files of the same path and get their missing
    parent directories. When the tree is bootable the generated boot catalog
    (``isolinux/boot.cat`` by convention) replaces any file of that path. The size
    includes a hybrid image's padding to a whole cylinder.

    ``volume_id`` is reduced to at most 16 d-characters (A-Z 0-9 _): the Joliet
    descriptor holds the same label in UCS-2 within 32 bytes. A ``volume_id`` in the
    source's ``isoportal.json`` wins, as written.

    ``source_dir`` may also be a vendor ISO (a ``.iso`` file): its files' data is then
    read from it while streaming.

    Raises SourceError when the tree cannot be laid out, ValueError for a malformed
    extra file path or chunk size.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    layout = lay_out(source_dir, extra_files, volume_id)
    with closed_on_error(layout.iso):
        pieces = plan(render_metadata(layout.iso), layout.files, layout.size)
    return IsoImage(
        layout.iso,
        pieces,
        layout.patches,
        size=layout.size,
        boot_description=layout.boot_description,
        chunk_size=chunk_size,
        reference_fixes=layout.fixes,
        source=layout.source,
    )


def describe_boot(source_dir: os.PathLike[str] | str) -> str:
    """How ``build_iso()`` will boot this source tree, known before building.

    For text that must go into the ISO itself (``ks_scripts/state.out``), e.g.
    ``BIOS El Torito: isolinux/isolinux.bin; UEFI El Torito: images/efiboot.img; hybrid
    MBR+GPT``. Same rules as the build (:mod:`isos.engine.boot_plan`): boot files are found
    through real directories, never through symlinks. Extra files are not considered;
    an unreadable boot file simply reads as absent here (``build_iso()`` then says why).
    Raises SourceError for a settings file the build would refuse too.

    A vendor ISO is described by its own El Torito catalog and system area, read directly
    (a few sectors; no pycdlib, whose objects for a DVD would outweigh the whole worker),
    with the boot modes the portal's ISO keeps; a layout whose modes cannot all be kept
    raises SourceError ("vendor ISO layout not supported: ...").
    """
    root = os.path.realpath(os.fspath(source_dir))
    if is_vendor_iso(root):
        boot = read_vendor_boot(root)
        boot.check_modes()  # what the build refuses, refused here too
        return boot.description()
    try:
        return resolve_boot(read_settings(root), disk_probe(root)).description()
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc
