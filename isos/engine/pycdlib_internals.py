"""Every use of pycdlib 1.22.0 beyond its public API, behind small named functions.

The engine streams an image pycdlib laid out: it reads pycdlib's inodes, volume
descriptor, hybrid tables and directory records, and runs its private writer without
file data. That holds only for the pinned version (pyproject.toml; tests compare the
stream with pycdlib's own ``write_fp()`` byte for byte), so it all lives here: one place
to check on an upgrade (docs/design.md, "The engine").
"""

from __future__ import annotations

import contextlib
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import pycdlib
from pycdlib.eltorito import EltoritoEntry
from pycdlib.isohybrid import GPT
from pycdlib.pycdlibexception import PyCdlibException

_GPT_HEADER_BYTES: Final = 92  # the header proper; the rest of its sector is zeros
_GPT_SECTOR: Final = 512


# What the functions below rely on, as read in pycdlib 1.22.0:
#
# - PyCdlib._write_fp(outfp, blocksize, progress_cb, progress_opaque) writes all metadata
#   (volume descriptors, path tables, boot catalog, directory records, Rock Ridge
#   continuation areas), then every inode in PyCdlib.inodes via _output_file_data(), then
#   one zero byte at the very end if the file is short. With isohybrid: first the MBR (and
#   primary GPT) at offset 0, last the zero padding to a whole cylinder after the volume
#   and the backup GPT at its very end.
# - _output_file_data() seeks to inode.extent_location() * logical_block_size, copies
#   inode.get_data_length() bytes from the inode's file (inode.data_fp is a path when
#   inode.manage_fp is true, else the file object given to add_fp(); both read from
#   inode.fp_offset, 0 for new files), zero-pads to the block and then writes
#   inode.boot_info_table.record() at file offset 8. Inodes of length 0 are skipped. An
#   inode parsed from an opened ISO (original_data_location DATA_ON_ORIGINAL_ISO) reads
#   from that ISO's file object at orig_extent_loc * logical_block_size instead.

# --------------------------------------------------------------------------------------
# The volume
# --------------------------------------------------------------------------------------


def volume_size(iso: pycdlib.PyCdlib) -> int:
    """The volume's size in bytes, as pycdlib keeps it while entries are added."""
    return iso.pvd.space_size * iso.logical_block_size


def volume_label_and_date(iso: pycdlib.PyCdlib) -> tuple[bytes, bytes]:
    """The primary volume descriptor's label and creation date, as recorded."""
    return iso.pvd.volume_identifier, iso.pvd.volume_creation_date.record()


def write_metadata(iso: pycdlib.PyCdlib, fp: BinaryIO, blocksize: int) -> None:
    """pycdlib's own writer with no inodes: every byte of the image but file data."""
    inodes = iso.inodes
    iso.inodes = []
    try:
        iso._write_fp(fp, blocksize, None, None)
    finally:
        iso.inodes = inodes


def open_owned_fp(iso: pycdlib.PyCdlib, fp: BinaryIO) -> None:
    """``open_fp()``, with ``fp`` then closed by ``iso.close()`` as ``open()``'s own file
    would be (``fp`` is closed here if parsing fails)."""
    try:
        iso.open_fp(fp)
    except BaseException:
        fp.close()
        raise
    iso._managing_fp = True


def close_quietly(iso: pycdlib.PyCdlib) -> None:
    # close() refuses an object that was never initialized (new() failed).
    with contextlib.suppress(PyCdlibException):
        iso.close()


# --------------------------------------------------------------------------------------
# File data: where each file's bytes go, and where they come from
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extent:
    """One inode's data: its place in the image, and where its bytes come from (the
    opened ISO, a source file's path, or a file object)."""

    offset: int
    length: int
    original_offset: int | None  # where it is in the opened (vendor) ISO, if still there
    path: str | None  # a source file, opened by pycdlib only when written
    fp: object  # else the file object given to add_fp()
    boot_info_table: bytes | None  # written at offset 8 of the file's data


def file_extents(iso: pycdlib.PyCdlib) -> Iterator[Extent]:
    """Every inode that holds data, in pycdlib's order (not disk order)."""
    block = iso.logical_block_size
    for ino in iso.inodes:
        length = ino.get_data_length()
        if length <= 0:
            continue
        original_offset = None
        if ino.original_data_location == ino.DATA_ON_ORIGINAL_ISO:
            # InodeOpenData seeks to orig_extent_loc, not fp_offset.
            original_offset = (ino.orig_extent_loc or 0) * block
        path = ino.data_fp if ino.manage_fp and isinstance(ino.data_fp, str) else None
        table = ino.boot_info_table.record() if ino.boot_info_table is not None else None
        yield Extent(ino.extent_location() * block, length, original_offset, path, ino.data_fp, table)


# --------------------------------------------------------------------------------------
# Directory records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One entry of a directory of an opened ISO, as recorded."""

    identifier: bytes  # ISO 9660 (e.g. b"KS.CFG;1") or Joliet (UTF-16 big-endian)
    rock_ridge_name: bytes | None  # ISO 9660 listings only; None without one
    is_dir: bool


def list_directory(
    iso: pycdlib.PyCdlib, *, iso_path: str | None = None, joliet_path: str | None = None
) -> list[Listed]:
    """The entries of one directory (by ``iso_path`` or ``joliet_path``), without . and .."""
    path = {"iso_path": iso_path} if joliet_path is None else {"joliet_path": joliet_path}
    listed = []
    for record in iso.list_children(**path):
        if record.is_dot() or record.is_dotdot():
            continue
        rock_ridge_name = None
        if joliet_path is None and record.rock_ridge is not None:
            rock_ridge_name = record.rock_ridge.name()
        listed.append(Listed(record.file_identifier(), rock_ridge_name, record.is_dir()))
    return listed


def set_recorded_length(iso: pycdlib.PyCdlib, length: int, **path: str) -> None:
    """Change the data length a file's directory record says (``iso_path=`` or
    ``joliet_path=``); only the rendered record changes, not the layout."""
    record: Any = iso.get_record(**path)
    record.data_length = length  # the field record() packs


# --------------------------------------------------------------------------------------
# The hybrid MBR and GPTs
# --------------------------------------------------------------------------------------


def has_hybrid_mbr(iso: pycdlib.PyCdlib) -> bool:
    return iso.isohybrid_mbr is not None


def _gpts(iso: pycdlib.PyCdlib) -> tuple[GPT, GPT]:
    hybrid = iso.isohybrid_mbr
    assert hybrid is not None
    return hybrid.primary_gpt, hybrid.secondary_gpt


def gpt_partition_count(iso: pycdlib.PyCdlib) -> int:
    primary, _ = _gpts(iso)
    return len(primary.parts)


def set_gpt_guids(iso: pycdlib.PyCdlib, disk: uuid.UUID, partitions: Sequence[uuid.UUID]) -> None:
    """The same disk GUID, and the same partition GUIDs, in both GPTs."""
    primary, backup = _gpts(iso)
    primary.header.disk_guid = backup.header.disk_guid = disk
    for first, second, guid in zip(primary.parts, backup.parts, partitions, strict=True):
        first.part_guid = second.part_guid = guid


def set_first_partition_start(iso: pycdlib.PyCdlib, lba: int) -> None:
    primary, backup = _gpts(iso)
    primary.parts[0].first_lba = backup.parts[0].first_lba = lba


def gpt_headers(iso: pycdlib.PyCdlib) -> list[tuple[int, bytes]]:
    """Both GPT headers, as pycdlib renders them but with the partition array's CRC taken
    over the whole array (all ``num_parts`` entries, as the header says), where pycdlib
    takes it over the filled entries only: (image offset, header bytes) for each."""
    primary, backup = _gpts(iso)
    header = primary.header
    array = b"".join(part.record() for part in primary.parts)
    array += bytes(header.num_parts * header.size_of_partition_entries - len(array))
    crc = zlib.crc32(array)
    return [
        (header.current_lba * _GPT_SECTOR, header.record(crc)[:_GPT_HEADER_BYTES]),
        (backup.header.current_lba * _GPT_SECTOR, backup.header.record(crc)[:_GPT_HEADER_BYTES]),
    ]


# --------------------------------------------------------------------------------------
# El Torito images outside the volume (an appended partition, e.g. Fedora's efiboot.img)
# --------------------------------------------------------------------------------------


def _boot_entries(iso: pycdlib.PyCdlib) -> list[Any]:
    """The catalog's boot entries in record order (initial, then each section's)."""
    catalog = iso.eltorito_boot_catalog
    if catalog is None:
        return []
    entries = [catalog.initial_entry]
    for section in catalog.sections:
        entries += list(section.section_entries)
    return entries


def detach_outside_images(iso: pycdlib.PyCdlib, volume_bytes: int) -> list[tuple[int, int]]:
    """El Torito images that lie past the parsed volume (in an appended partition), taken
    out of pycdlib's layout (their inode gets no extent: pycdlib would otherwise copy them
    into a volume it did not grow for them, and fail). Returns (entry index, the image's
    offset in the vendor ISO) for each; the caller points the entries at the appended
    partition's new place (:func:`boot_entry_rba_offsets`)."""
    block = iso.logical_block_size
    found = []
    for index, entry in enumerate(_boot_entries(iso)):
        ino = entry.inode
        if ino is None or any(not isinstance(record, EltoritoEntry) for record, _ in ino.linked_records):
            continue  # a file of the ISO: laid out as any other
        if (ino.orig_extent_loc or 0) * block >= volume_bytes:
            found.append((index, ino.orig_extent_loc * block))
            ino.data_length = 0
    return found


def boot_entry_rba_offsets(iso: pycdlib.PyCdlib) -> list[int]:
    """The image offset of each boot entry's load RBA field (record order), once laid out."""
    catalog = iso.eltorito_boot_catalog
    if catalog is None:
        return []
    base = catalog.extent_location() * iso.logical_block_size
    offsets = [base + 32 + 8]  # after the validation entry: the initial entry
    position = 64
    for section in catalog.sections:
        position += 32  # the section header
        for _ in section.section_entries:
            offsets.append(base + position + 8)
            position += 32
    return offsets


# --------------------------------------------------------------------------------------
# The volume descriptors' modification date
# --------------------------------------------------------------------------------------

_MODIFICATION_DATE_AT: Final = 830  # in a primary or supplementary volume descriptor
_DATE_BYTES: Final = 17


def modification_date_fixes(iso: pycdlib.PyCdlib, vendor_dates: dict[int, bytes]) -> list[tuple[int, bytes]]:
    """Patches that put the vendor's modification dates back: pycdlib stamps the time of
    writing, where GRUB takes the date as the file system's UUID (grub-mkrescue's and
    Ubuntu's images look their medium up by it). ``vendor_dates``: descriptor type (1
    primary, 2 supplementary) to the vendor's 17 bytes."""
    block = iso.logical_block_size
    found = [(1, iso.pvd)]
    if iso.joliet_vd is not None:
        found.append((2, iso.joliet_vd))
    patches = []
    for kind, descriptor in found:
        date = vendor_dates.get(kind)
        if date is not None and len(date) == _DATE_BYTES:
            patches.append((descriptor.extent_location() * block + _MODIFICATION_DATE_AT, date))
    return patches
