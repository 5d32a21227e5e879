"""A vendor ISO's own system area (MBR boot code, MBR partitions, GPT) kept, re-pointed.

pycdlib lays a parsed vendor ISO out anew: its files move, its volume grows. What the
vendor's system area points at must follow, or a USB stick of the result does not boot.
This module reads the vendor's first 32 KiB (and its backup GPT), decides whether the
engine understands it (else ``vendor ISO layout not supported: ...``), and, once the new
layout is known, gives back the same tables pointing at the new places:

- MBR boot code kept as the vendor wrote it; GRUB's (``--grub2-mbr``) holds the 512-byte
  address of its core image (the BIOS El Torito image + 4) at 0x1B0, re-pointed, and the
  image's own copy of that address (``--grub2-boot-info``, byte 2548 of the image: + 5).
- MBR and GPT partitions, each one of: the whole ISO (from the system area to at least
  the volume's end), one of the vendor's files (``efi.img``), or an appended partition
  after the volume (``-append_partition``; streamed from the vendor ISO's own bytes). The
  GPTs' CRCs are computed again; the backup GPT moves with the end of the image.
- What cannot follow is dropped and said so: an HFS+ tree and its APM (Mac booting;
  pycdlib does not carry an HFS+ tree) and xorriso's "Gap" filler partitions.
- Anything else (a partition at no file, a partition offset with its second superblock,
  unknown boot code) refuses the source.

The isolinux hybrid layout is not handled here: its MBR and GPT are made anew
(:mod:`isos.engine.hybrid`).
"""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from isos.engine.errors import SourceError

SECTOR: Final = 512
BLOCK: Final = 2048
SYSTEM_AREA: Final = 16 * BLOCK
GRUB2_MBR_CORE_AT: Final = 0x1B0  # 8 bytes, little-endian: 512-byte address of core.img
GRUB2_BOOT_INFO_AT: Final = 2548  # in the BIOS boot image: its own 512-byte address + 5
_MBR_TABLE: Final = 446
_EFI_TYPE: Final = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
_HFSPLUS_TYPE: Final = uuid.UUID("48465300-0000-11AA-AA11-00306543ECAC")
_GPT_SIGNATURE: Final = b"EFI PART"
_GPT_HEADER_SIZE: Final = 92

# The boot modes of an ISO, as state.out names them.
BIOS_CD: Final = "BIOS CD"
BIOS_DISK: Final = "BIOS disk/USB"
UEFI_CD: Final = "UEFI CD"
UEFI_DISK: Final = "UEFI disk/USB"
MODES: Final = (BIOS_CD, BIOS_DISK, UEFI_CD, UEFI_DISK)


def unsupported(reason: str) -> SourceError:
    return SourceError(f"vendor ISO layout not supported: {reason}")


@dataclass(frozen=True)
class Partition:
    """One MBR or GPT partition entry of the vendor's, in bytes."""

    table: str  # "MBR" or "GPT"
    index: int  # 0-based slot in its table
    start: int
    end: int
    efi: bool  # MBR type 0xEF or GPT's EFI system partition type
    keep: bool  # False: dropped (HFS+ inside the ISO, xorriso's Gap fillers)
    name: str
    hfsplus: bool = False


@dataclass(frozen=True)
class VendorSystemArea:
    """What the vendor's system area holds, as far as the engine re-points it."""

    head: bytes  # the first 32 KiB
    volume_bytes: int  # the ISO 9660 volume's size, as its primary volume descriptor says
    # Where the ISO 9660 data ends and what follows it (appended partitions) begins: the
    # volume's end, but with -partition_offset the descriptor counts the whole image,
    # and partition 1's end says it.
    data_end: int
    file_bytes: int  # the vendor ISO file's size (volume, appended partitions, backup GPT)
    boot_image: int | None  # the BIOS El Torito image's offset
    grub2_mbr: bool
    grub2_boot_info: bool  # the BIOS image holds its own address at byte 2548 (+ 5)
    partitions: tuple[Partition, ...]
    gpt_entries_at: int  # byte offset of the primary GPT's array (0: no GPT)
    gpt_count: int
    gpt_entry_size: int
    backup_entries_at: int  # byte offset of the backup array, in the vendor ISO
    apm_blocks: tuple[tuple[int, int], ...]  # APM entries (offset, block size): dropped
    dropped: tuple[str, ...] = field(default=())

    @property
    def gpt(self) -> bool:
        return self.gpt_entries_at > 0

    @property
    def appended(self) -> list[Partition]:
        return [p for p in self.partitions if p.keep and p.start >= self.data_end]

    def bios_disk(self) -> bool:
        return self.grub2_mbr

    def uefi_disk(self) -> bool:
        return any(p.efi and p.keep for p in self.partitions)

    def description(self) -> str:
        parts = []
        if self.grub2_mbr:
            parts.append("GRUB2 MBR")
        tables = ["MBR"] + (["GPT"] if self.gpt else [])
        parts.append("+".join(tables) + " kept")
        appended = {(p.start, p.end) for p in self.appended}  # one may be in both tables
        if appended:
            parts.append(f"{len(appended)} appended partition(s) kept")
        if self.dropped:
            parts.append(f"not kept: {', '.join(self.dropped)}")
        return "; ".join(parts)


def _le(data: bytes | bytearray, at: int, size: int) -> int:
    return int.from_bytes(data[at : at + size], "little")


def read_system_area(handle: BinaryIO, volume_bytes: int, boot_image: int | None) -> VendorSystemArea | None:
    """The vendor's system area understood, or None when it has no MBR (a CD-only ISO).

    Raises SourceError ("vendor ISO layout not supported: ...") for one it holds but the
    engine cannot re-point.
    """
    handle.seek(0, 2)
    file_bytes = handle.tell()
    handle.seek(0)
    head = handle.read(SYSTEM_AREA)
    if len(head) < SYSTEM_AREA or head[510:512] != b"\x55\xaa":
        return None
    partitions: list[Partition] = []
    dropped: list[str] = []
    for index in range(4):
        entry = head[_MBR_TABLE + 16 * index : _MBR_TABLE + 16 * (index + 1)]
        kind, start, count = entry[4], _le(entry, 8, 4), _le(entry, 12, 4)
        if kind == 0 or count == 0:
            continue
        partitions.append(
            Partition(
                "MBR", index, start * SECTOR, (start + count) * SECTOR, kind == 0xEF, True, f"0x{kind:02x}"
            )
        )
    code = head[:440]
    pointer = _le(head, GRUB2_MBR_CORE_AT, 8)
    grub2_mbr = b"GRUB" in code and boot_image is not None and pointer == boot_image // SECTOR + 4
    grub2_boot_info = False
    if boot_image is not None:
        handle.seek(boot_image + GRUB2_BOOT_INFO_AT)
        grub2_boot_info = _le(handle.read(8), 0, 8) == boot_image // SECTOR + 5
    if any(code) and not grub2_mbr:
        raise unsupported("MBR boot code that is neither isolinux's isohybrid nor GRUB2's --grub2-mbr")

    gpt_entries_at = gpt_count = gpt_size = backup_entries_at = 0
    header = head[SECTOR : SECTOR + _GPT_HEADER_SIZE]
    if header[:8] == _GPT_SIGNATURE:
        gpt_entries_at = _le(header, 72, 8) * SECTOR
        gpt_count, gpt_size = _le(header, 80, 4), _le(header, 84, 4)
        backup_lba = _le(header, 32, 8)
        if (
            gpt_size != 128
            or not 0 < gpt_count <= 1024
            or gpt_entries_at + gpt_count * gpt_size > SYSTEM_AREA
        ):
            raise unsupported("a GPT whose partition array is not in the system area")
        handle.seek(backup_lba * SECTOR)
        backup = handle.read(SECTOR)
        if backup[:8] == _GPT_SIGNATURE:
            backup_entries_at = _le(backup, 72, 8) * SECTOR
        else:
            backup_entries_at = backup_lba * SECTOR - gpt_count * gpt_size
        for index in range(gpt_count):
            entry = head[gpt_entries_at + index * gpt_size : gpt_entries_at + (index + 1) * gpt_size]
            if not any(entry[:16]):
                continue
            type_guid = uuid.UUID(bytes_le=entry[:16])
            first, last = _le(entry, 32, 8), _le(entry, 40, 8)
            name = entry[56:128].decode("utf-16-le", "replace").rstrip("\0")
            keep = True
            if type_guid == _HFSPLUS_TYPE:
                keep = False  # unless appended (below): an HFS+ tree inside the ISO cannot follow
            elif name.startswith("Gap") and name[3:].isdigit():
                keep = False  # xorriso's filler between partitions: nothing points into it
            partitions.append(
                Partition(
                    "GPT",
                    index,
                    first * SECTOR,
                    (last + 1) * SECTOR,
                    type_guid == _EFI_TYPE,
                    keep,
                    name,
                    hfsplus=type_guid == _HFSPLUS_TYPE,
                )
            )
    apm_blocks: list[tuple[int, int]] = []
    if head[:2] == b"ER":
        block = int.from_bytes(head[2:4], "big")
        if block not in (512, 2048):
            raise unsupported(f"an Apple partition map of {block}-byte blocks")
        apm_blocks = [(at, block) for at in range(block, SYSTEM_AREA, block) if head[at : at + 2] == b"PM"]
        dropped.append("APM (Mac)")
    data_end = volume_bytes
    starts = {p.start for p in partitions if p.keep or p.hfsplus}
    for partition in partitions:
        if partition.keep and partition.start <= SYSTEM_AREA and partition.end in starts:
            data_end = min(data_end, partition.end)
    for index, partition in enumerate(partitions):
        if partition.table == "GPT" and partition.hfsplus:
            if partition.start >= data_end:  # an appended HFS+ image (Fedora's macboot.img): kept
                partitions[index] = dataclasses.replace(partition, keep=True)
            else:
                dropped.append("HFS+ (Mac)")
    for partition in partitions:
        if partition.keep and not _placeable(partition, data_end, file_bytes):
            raise unsupported(
                f"{partition.table} partition {partition.index + 1} ({partition.name}) starts at byte"
                f" {partition.start}, neither the ISO's start, a file of it, nor past its end"
            )
        if partition.keep and SYSTEM_AREA < partition.start < data_end < partition.end:
            raise unsupported(f"{partition.table} partition {partition.index + 1} straddles the ISO's end")
    if any(p.start == SYSTEM_AREA and p.keep and p.end >= data_end for p in partitions):
        handle.seek(2 * SYSTEM_AREA)
        if handle.read(6)[1:6] == b"CD001":
            # -partition_offset 16 (Ubuntu): a second superblock and directory tree for
            # partition 1 mounted alone. pycdlib lays out one tree; the medium is found
            # (by GRUB, by the installer) on the whole disk, as on a CD.
            dropped.append("partition 1's own ISO 9660 superblock (-partition_offset)")
    return VendorSystemArea(
        head=head,
        volume_bytes=volume_bytes,
        data_end=data_end,
        file_bytes=file_bytes,
        boot_image=boot_image,
        grub2_mbr=grub2_mbr,
        grub2_boot_info=grub2_boot_info,
        partitions=tuple(partitions),
        gpt_entries_at=gpt_entries_at,
        gpt_count=gpt_count,
        gpt_entry_size=gpt_size,
        backup_entries_at=backup_entries_at,
        apm_blocks=tuple(apm_blocks),
        dropped=tuple(dict.fromkeys(dropped)),
    )


def _placeable(partition: Partition, data_end: int, file_bytes: int) -> bool:
    """Whether the engine can say where a partition goes: whole ISO, past the volume, or
    inside it (then it must be a file's extent: checked when re-pointing)."""
    if partition.start <= SYSTEM_AREA:
        return partition.end >= data_end  # the whole ISO (protective, or isohybrid-like)
    if partition.start >= data_end:
        return partition.end <= file_bytes
    return partition.start % BLOCK == 0


@dataclass(frozen=True)
class Repointed:
    """The vendor's system area for the new layout."""

    patches: list[tuple[int, bytes]]  # image offset → bytes
    size: int  # the new image's size: the new volume and the vendor's tail after it
    appended: list[tuple[int, int, int]]  # (new offset, length, vendor offset) to stream
    # Patches inside the BIOS boot image (image offset, new bytes, the vendor's bytes),
    # which its boot info table's checksum covers; also in ``patches``.
    in_boot_image: list[tuple[int, bytes, bytes]]
    # Where what follows the ISO 9660 data begins (the backup GPT, appended partitions):
    # no file of the new layout may reach it.
    tail_start: int


def re_point(area: VendorSystemArea, new_volume: int, moved: dict[int, int]) -> Repointed:
    """The system area, backup GPT and GRUB pointers for a new volume of ``new_volume``
    bytes, where each vendor file starting at byte ``old`` now starts at ``moved[old]``.

    Raises SourceError ("vendor ISO layout not supported: ...") for a partition that
    starts inside the volume at no file's start.
    """
    delta = new_volume - area.volume_bytes
    size = area.file_bytes + delta

    def new_range(partition: Partition) -> tuple[int, int]:
        if partition.start <= SYSTEM_AREA:
            end = partition.end + delta if partition.end >= area.data_end else partition.end
            return partition.start, end
        if partition.start >= area.data_end:
            return partition.start + delta, partition.end + delta
        if partition.start not in moved:
            raise unsupported(
                f"{partition.table} partition {partition.index + 1} ({partition.name}) starts at no file"
            )
        start = moved[partition.start]
        return start, start + partition.end - partition.start

    head = bytearray(area.head)
    for at, length in area.apm_blocks:
        head[at : at + length] = bytes(length)
    if area.grub2_mbr:
        assert area.boot_image is not None
        if area.boot_image not in moved:
            raise unsupported("GRUB2's MBR points at no file")
        head[GRUB2_MBR_CORE_AT : GRUB2_MBR_CORE_AT + 8] = (moved[area.boot_image] // SECTOR + 4).to_bytes(
            8, "little"
        )
    patches: list[tuple[int, bytes]] = []

    for partition in (p for p in area.partitions if p.table == "MBR"):
        start, end = new_range(partition)
        at = _MBR_TABLE + 16 * partition.index
        entry = bytearray(head[at : at + 16])
        first, count = start // SECTOR, (end - start) // SECTOR
        entry[1:4] = _chs(first)
        entry[5:8] = _chs(first + count - 1)
        entry[8:12] = first.to_bytes(4, "little")
        entry[12:16] = min(count, 0xFFFFFFFF).to_bytes(4, "little")
        head[at : at + 16] = entry

    tail_start = area.data_end + delta
    if area.gpt:
        array = bytearray(area.gpt_count * area.gpt_entry_size)
        slot = 0
        for partition in (p for p in area.partitions if p.table == "GPT"):
            if not partition.keep:
                continue
            old = area.head[
                area.gpt_entries_at + partition.index * area.gpt_entry_size : area.gpt_entries_at
                + (partition.index + 1) * area.gpt_entry_size
            ]
            start, end = new_range(partition)
            entry = bytearray(old)
            entry[32:40] = (start // SECTOR).to_bytes(8, "little")
            entry[40:48] = (end // SECTOR - 1).to_bytes(8, "little")
            array[slot * area.gpt_entry_size : (slot + 1) * area.gpt_entry_size] = entry
            slot += 1
        crc = zlib.crc32(array)
        header = bytearray(area.head[SECTOR : SECTOR + _GPT_HEADER_SIZE])
        # The backup GPT and the last usable sector move with the image's end, as the
        # vendor placed them relative to it.
        backup_lba = _le(header, 32, 8) + delta // SECTOR
        backup_entries = area.backup_entries_at + delta
        if not backup_entries < backup_lba * SECTOR < size:
            raise unsupported("a backup GPT whose array is not before its header")
        tail_start = min(tail_start, backup_entries)
        header[32:40] = backup_lba.to_bytes(8, "little")
        header[48:56] = (_le(header, 48, 8) + delta // SECTOR).to_bytes(8, "little")  # last usable
        header[88:92] = crc.to_bytes(4, "little")
        primary = _with_header_crc(header)
        backup = bytearray(primary)
        backup[24:32] = backup_lba.to_bytes(8, "little")
        backup[32:40] = (1).to_bytes(8, "little")
        backup[72:80] = (backup_entries // SECTOR).to_bytes(8, "little")
        head[SECTOR : SECTOR + _GPT_HEADER_SIZE] = primary
        head[area.gpt_entries_at : area.gpt_entries_at + len(array)] = array
        patches.append((backup_entries, bytes(array)))
        patches.append((backup_lba * SECTOR, _with_header_crc(backup)))
    patches.insert(0, (0, bytes(head)))

    in_boot_image: list[tuple[int, bytes, bytes]] = []
    if area.boot_image is not None and area.grub2_boot_info:
        # --grub2-boot-info: the image's own address, patched into the image itself.
        new = moved.get(area.boot_image)
        if new is None:
            raise unsupported("the BIOS boot image is no file of the ISO")
        value = (new // SECTOR + 5).to_bytes(8, "little")
        patches.append((new + GRUB2_BOOT_INFO_AT, value))
        old = (area.boot_image // SECTOR + 5).to_bytes(8, "little")
        in_boot_image.append((new + GRUB2_BOOT_INFO_AT, value, old))
    appended = sorted({(p.start + delta, p.end - p.start, p.start) for p in area.appended})
    return Repointed(patches, size, appended, in_boot_image, tail_start)


def _with_header_crc(header: bytearray) -> bytes:
    header[16:20] = bytes(4)
    header[16:20] = zlib.crc32(bytes(header)).to_bytes(4, "little")
    return bytes(header)


def _chs(lba: int, heads: int = 64, sectors: int = 32) -> bytes:
    """An MBR CHS address (xorriso's 64 heads, 32 sectors); past 1024 cylinders, the maximum."""
    cylinder, rest = divmod(lba, heads * sectors)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, sectors)
    return bytes([head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF])
