"""The isohybrid MBR and GPTs that let an ISO boot from a USB stick as well as a CD.

pycdlib makes them; this module picks the disk geometry, derives the identifiers pycdlib
would draw at random from the layout (so two builds of one layout are the same bytes),
and corrects what pycdlib gets wrong in its GPTs (docs/design.md, "The engine").
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from isos.engine.errors import SourceError
from isos.engine.plan import BLOCK_SIZE
from isos.engine.pycdlib_internals import (
    gpt_headers,
    gpt_partition_count,
    set_first_partition_start,
    set_gpt_guids,
    volume_label_and_date,
)

# The backup GPT (its 128-entry array and header: 33 sectors of 512 bytes) goes in the
# padding pycdlib adds after the ISO to fill the last cylinder; it must fit there, or
# pycdlib would write it over the last file's data.
_BACKUP_GPT_BYTES: Final = 33 * 512
# isohybrid's usual geometry first; others only when its padding is too short.
_GEOMETRIES: Final = tuple((heads, sectors) for sectors in (32, 63) for heads in range(64, 256))
_SYSTEM_AREA_SECTORS: Final = 16 * BLOCK_SIZE // 512


def hybrid_seed(iso: pycdlib.PyCdlib, iso_size: int) -> bytes:
    # What identifies this image's layout: its label, size and creation date.
    label, created = volume_label_and_date(iso)
    return hashlib.sha256(b"isohybrid\0" + label + iso_size.to_bytes(8, "little") + created).digest()


def add_isohybrid(iso: pycdlib.PyCdlib, iso_size: int, efi: bool, seed: bytes) -> int:
    """Make the image hybrid; return the padding pycdlib appends after the ISO.

    pycdlib draws the MBR id and the GPT GUIDs at random: they are derived from
    ``seed`` instead, so that two builds of one layout (a template and a fresh build)
    are the same bytes.
    """
    padding = 0
    for heads, sectors in _GEOMETRIES:
        padding = -iso_size % (heads * sectors * 512)
        if not efi or padding >= _BACKUP_GPT_BYTES:
            break
    else:
        raise SourceError("no disk geometry leaves room for the backup GPT after this ISO")
    try:
        iso.add_isohybrid(
            mbr_id=int.from_bytes(seed[:4], "little"),
            geometry_heads=heads,
            geometry_sectors=sectors,
            efi=efi,
        )
    except PyCdlibException as exc:
        raise SourceError(f"cannot make the ISO hybrid ({exc})") from exc
    return padding


def settle_gpt(iso: pycdlib.PyCdlib, seed: bytes) -> list[tuple[int, bytes]]:
    """Fix what pycdlib gets wrong in its GPTs; return the header bytes to patch.

    pycdlib gives the backup GPT its own random disk and partition GUIDs, where it must
    repeat the primary's, and its first partition covers the tables (both set here,
    before anything is rendered, so pycdlib writes them). And it checksums only the
    filled partition entries, where the header's array CRC covers the whole array (128
    entries): the corrected headers are patched over both.
    """
    partitions = range(1, gpt_partition_count(iso) + 1)
    set_gpt_guids(iso, _derived_guid(seed, 0), [_derived_guid(seed, number) for number in partitions])
    # pycdlib starts the whole-ISO partition at sector 0, over the MBR and the primary
    # GPT itself (sgdisk -v: "Main partition table overlaps the first partition"); it
    # starts past the 32 KiB system area instead. (Its end stays below the backup GPT:
    # the geometry left room for that.)
    set_first_partition_start(iso, _SYSTEM_AREA_SECTORS)
    return gpt_headers(iso)


def _derived_guid(seed: bytes, number: int) -> uuid.UUID:
    digest = hashlib.sha256(seed + number.to_bytes(4, "little")).digest()
    return uuid.UUID(bytes=digest[:16], version=4)
