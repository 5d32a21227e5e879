"""Build an ISO image from a read-only source tree and stream it in disk order.

This module owns turning "a source directory plus a few in-memory files" into the bytes
of an ISO9660 image (interchange level 3, Rock Ridge 1.09, Joliet level 3; El Torito
entries for BIOS and UEFI and a hybrid MBR and GPT as :mod:`isos.engine.boot_plan` decides):

- mapping real file names to ISO9660 and Joliet names (Rock Ridge keeps the real name),
- laying the image out with pycdlib (which only stats the source files),
- or, when the source is a vendor ``.iso`` file, opening it with pycdlib and adding the
  extra files to it, keeping its El Torito entries (its files' data stays where it is),
- streaming the image front to back, reading each source file (or range of the vendor
  ISO) only while its bytes go out, with the boot info table patched into the output
  (never into the source tree), and pycdlib's GPT header checksums corrected the same way.

It knows nothing of HTTP or Django: ``build_iso()`` returns an :class:`IsoImage` whose
``size`` is exact before the first byte, and which iterates over ``bytes`` chunks.

Why not pycdlib's own ``write_fp()``: it seeks (so it cannot write to a socket) and
writes file data in the order files were added, not in disk order. We let pycdlib render
its metadata into memory, then emit metadata, zero gaps and file data ourselves. The
result is byte-identical to ``write_fp()`` plus the GPT fix (``IsoImage.write_reference()``
keeps that provable); the pycdlib internals this needs are kept together in one section
below, but for the hybrid tables' (``_settle_gpt``).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import io
import itertools
import os
import re
import stat
import unicodedata
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, Literal, cast

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from isos.engine.boot_plan import (
    BIOS_BOOT_CATALOG,
    BIOS_BOOT_FILE,
    HEAD_BYTES,
    BootPlan,
    BootSettingsError,
    Found,
    Probe,
    disk_probe,
    read_settings,
    read_vendor_boot,
    resolve_boot,
)

__all__ = [
    "IsoImage",
    "LayoutTemplate",
    "SourceError",
    "StreamError",
    "build_iso",
    "describe_boot",
    "is_vendor_iso",
    "make_layout_template",
]

BLOCK_SIZE: Final = 2048
BOOT_FILE: Final = BIOS_BOOT_FILE  # by convention; a source's isoportal.json may say otherwise
BOOT_CATALOG: Final = BIOS_BOOT_CATALOG

# ECMA-119 7.5.2 / 7.6.3: a file's name plus extension may hold 30 d-characters, a
# directory identifier 31 (interchange levels 2 and 3).
_ISO_FILE_CHARS: Final = 30
_ISO_DIR_CHARS: Final = 31
# Long extensions are cut to this when the whole name does not fit.
_ISO_LONG_EXT_CHARS: Final = 8
# Joliet allows 64 UCS-2 characters; pycdlib also checks the UTF-8 length against 64.
_JOLIET_CHARS: Final = 64
_JOLIET_EXT_CHARS: Final = 16
# Joliet forbids * / : ; ? \ and control characters; UCS-2 cannot hold characters
# outside the BMP, nor the surrogate escapes of undecodable bytes.
_NOT_JOLIET_CHARACTER: Final = re.compile(r"[*/:;?\\\x00-\x1f\ud800-\udfff\U00010000-\U0010ffff]")
_NOT_D_CHARACTER: Final = re.compile("[^A-Z0-9_]")
# Rock Ridge relocation directory (pycdlib moves directories at depth 8, 16, ...).
# The leading dot hides it from `ls`, as genisoimage's -hide-rr-moved does.
_RELOCATION_ISO_NAME: Final = "RR_MOVED"
_RELOCATION_RR_NAME: Final = ".rr_moved"
_RELOCATION_DEPTH: Final = 8
# Its key among the root's children: no real file name can hold a NUL.
_RELOCATION_KEY: Final = "\x00relocation"

_EFFECTIVE_IDS: Final = os.access in os.supports_effective_ids
_EXTRA_FILE_MODE: Final = 0o100444
_CREATED_DIR_MODE: Final = 0o040555


class SourceError(Exception):
    """The source tree cannot be laid out (missing dir, unreadable file, ...).

    Raised before any byte is produced. ``str()`` is a human reason that names paths
    relative to the source directory only (no absolute paths, no secrets).
    """


class StreamError(Exception):
    """A source file changed (shrank, vanished, became unreadable) while streaming.

    Raised from the iterator; everything yielded before it was correct, so the stream
    simply ends short of ``IsoImage.size`` and the client can tell it is incomplete.
    """


# --------------------------------------------------------------------------------------
# The tree to lay out
# --------------------------------------------------------------------------------------

_Kind = Literal["dir", "file", "symlink", "memory", "catalog", "relocation"]


@dataclass(eq=False)
class _Entry:
    """One name in the ISO: a source entry, an extra file, or a generated one."""

    name: str  # real name (may hold surrogate escapes for undecodable bytes)
    rel: str  # POSIX path relative to the ISO root, for messages
    kind: _Kind
    mode: int = 0
    source: str | None = None  # absolute path of a source file
    target: str = ""  # symlink target
    data: bytes = b""  # content of an extra file
    children: dict[str, _Entry] = field(default_factory=dict)
    iso_name: str = ""  # as given to pycdlib: "NAME.EXT;1" for files, "NAME" for dirs
    joliet_name: str = ""
    rr_name: str = ""
    iso_path: str = ""  # full paths, set when added to pycdlib
    joliet_path: str = ""


def _scan_source(root: str) -> _Entry:
    """Read the source tree's shape (lstat only, sorted walk, symlinks not followed)."""
    try:
        root_stat = os.stat(root)
    except OSError as exc:
        raise SourceError(f"the source directory cannot be read ({exc.strerror})") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise SourceError("the source path is not a directory")

    top = _Entry(name="", rel="", kind="dir", mode=root_stat.st_mode, source=root)
    pending = [top]
    while pending:
        directory = pending.pop()
        assert directory.source is not None
        shown = directory.rel or "."
        try:
            with os.scandir(directory.source) as listing:
                dir_entries = sorted(listing, key=lambda item: item.name)
        except OSError as exc:
            raise SourceError(f"cannot list directory {shown} ({exc.strerror})") from exc
        for item in dir_entries:
            rel = f"{directory.rel}/{item.name}" if directory.rel else item.name
            try:
                info = item.stat(follow_symlinks=False)
            except OSError as exc:
                raise SourceError(f"cannot stat {_printable(rel)} ({exc.strerror})") from exc
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                child = _Entry(name=item.name, rel=rel, kind="dir", mode=mode, source=item.path)
                pending.append(child)
            elif stat.S_ISREG(mode):
                # pycdlib only stats files at layout time; os.access() catches an
                # unreadable file now, before the first byte, without opening it
                # (with the effective ids: those of the worker that will read it).
                if not os.access(item.path, os.R_OK, effective_ids=_EFFECTIVE_IDS):
                    raise SourceError(f"cannot read file {_printable(rel)} (permission denied)")
                child = _Entry(name=item.name, rel=rel, kind="file", mode=mode, source=item.path)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(item.path)
                except OSError as exc:
                    raise SourceError(f"cannot read symlink {_printable(rel)} ({exc.strerror})") from exc
                child = _Entry(name=item.name, rel=rel, kind="symlink", mode=mode, target=target)
            else:
                continue  # sockets, fifos and devices have no place on a CD
            directory.children[item.name] = child
    return top


def _overlay_extras(top: _Entry, extra_files: Mapping[str, bytes]) -> None:
    """Put the in-memory files into the tree, replacing source files of the same path."""
    for key in sorted(extra_files):
        _check_extra_path(key)
        parts = key.split("/")
        directory = top
        for depth, part in enumerate(parts[:-1], start=1):
            rel = "/".join(parts[:depth])
            existing = directory.children.get(part)
            if existing is None:
                existing = _Entry(name=part, rel=rel, kind="dir", mode=_CREATED_DIR_MODE)
                directory.children[part] = existing
            elif existing.kind != "dir":
                raise SourceError(f"{_printable(rel)} is not a directory in the source tree")
            directory = existing
        replaced = directory.children.get(parts[-1])
        if replaced is not None and replaced.kind == "dir":
            raise SourceError(f"{_printable(key)} is a directory in the source tree")
        directory.children[parts[-1]] = _Entry(
            name=parts[-1],
            rel=key,
            kind="memory",
            mode=_EXTRA_FILE_MODE,
            data=bytes(extra_files[key]),
        )


def _check_extra_path(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"extra file path must be relative and normalized: {key!r}")
    if "\x00" in key:
        raise ValueError(f"extra file path holds a NUL character: {key!r}")


def _lookup(top: _Entry, rel: str) -> _Entry | None:
    """The entry at ``rel``, through real directories only (symlinks are not followed)."""
    entry: _Entry | None = top
    for part in rel.split("/"):
        if entry is None or entry.kind != "dir":
            return None
        entry = entry.children.get(part)
    return entry


def _tree_probe(top: _Entry) -> Probe:
    """What :func:`isos.engine.boot_plan.resolve_boot` needs to know of the scanned tree."""

    def probe(rel: str) -> Found | None:
        entry = _lookup(top, rel)
        if entry is None:
            return None
        if entry.kind == "dir":
            return Found("dir")
        if entry.kind == "memory":
            return Found("file", len(entry.data), entry.data[:HEAD_BYTES])
        if entry.kind != "file":
            return None
        assert entry.source is not None
        try:
            with open(entry.source, "rb") as handle:
                return Found("file", os.fstat(handle.fileno()).st_size, handle.read(HEAD_BYTES))
        except OSError as exc:
            raise SourceError(f"cannot read {_printable(rel)} ({exc.strerror})") from exc

    return probe


def _max_dir_depth(top: _Entry) -> int:
    deepest = 0
    pending = [(top, 0)]
    while pending:
        directory, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((c, depth + 1) for c in directory.children.values() if c.kind == "dir")
    return deepest


def _printable(rel: str) -> str:
    """A relative path safe to show (undecodable bytes become U+FFFD)."""
    return _utf8_lossless_or_replaced(rel)


def _utf8_lossless_or_replaced(text: str) -> str:
    # os.scandir() gives undecodable bytes as surrogate escapes, which cannot be encoded
    # to UTF-8 (pycdlib encodes every name that way): replace them visibly.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


# --------------------------------------------------------------------------------------
# Name mapping: ISO9660, Joliet and Rock Ridge names, unique within each directory
# --------------------------------------------------------------------------------------


def _d_characters(text: str) -> str:
    """Uppercase d-characters (A-Z 0-9 _); accents fold to their base letter."""
    if text.isascii():  # the common case, and a hot path for trees of 10,000 files
        return _NOT_D_CHARACTER.sub("_", text.upper())
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append(ch.upper() if ch.isalnum() or ch == "_" else "_")
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", ch) if c.isascii() and c.isalnum())
            out.append(folded.upper() or "_")
    return "".join(out)


def _split_extension(name: str) -> tuple[str, str]:
    """Split at the last dot; a leading dot (".treeinfo") is not an extension."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def _iso_file_identifier(name: str, suffix: str) -> str:
    stem, ext = _split_extension(name)
    base, extension = _d_characters(stem), _d_characters(ext)
    if len(base) + len(extension) + len(suffix) > _ISO_FILE_CHARS:
        extension = extension[:_ISO_LONG_EXT_CHARS]
    # Always keep at least one character of the name itself.
    extension = extension[: _ISO_FILE_CHARS - len(suffix) - 1]
    base = base[: _ISO_FILE_CHARS - len(extension) - len(suffix)] + suffix
    return f"{base}.{extension};1"


def _iso_dir_identifier(name: str, suffix: str) -> str:
    return _d_characters(name)[: _ISO_DIR_CHARS - len(suffix)] + suffix


def _iso_key(identifier: str) -> str:
    # "FOO.;1" (file) and "FOO" (directory) look the same to readers without Rock
    # Ridge, so they share one namespace.
    return identifier.removesuffix(";1").removesuffix(".")


def _joliet_fits(text: str) -> bool:
    return len(text) <= _JOLIET_CHARS and len(text.encode("utf-8")) <= _JOLIET_CHARS


def _joliet_identifier(name: str, suffix: str, *, is_dir: bool) -> str:
    safe = _NOT_JOLIET_CHARACTER.sub("_", name)
    stem, ext = (safe, "") if is_dir else _split_extension(safe)
    if not ext or len(ext) > _JOLIET_EXT_CHARS:
        stem, ext = safe, ""
    tail = f"{suffix}.{ext}" if ext else suffix
    if _joliet_fits(stem + tail):
        return stem + tail
    # Cut the stem, keeping the extension (and the de-duplication suffix) readable.
    while stem and not _joliet_fits(stem + tail):
        stem = stem[:-1]
    return stem + tail if stem else (safe[: _JOLIET_CHARS // 4] + suffix)


def _unique_names(
    entries: Sequence[_Entry],
    make: Callable[[_Entry, str], str],
    key: Callable[[str], str],
    suffix: Callable[[int], str],
) -> list[str]:
    """Name every entry; on a clash, later entries get the smallest free suffix.

    Every entry's unsuffixed name is reserved up front, so a suffixed name never takes
    the plain name of another entry (e.g. "a~1" versus a second "A"), whatever the order.
    """
    plain = [make(entry, "") for entry in entries]
    reserved = {key(name) for name in plain}
    claimed: set[str] = set()
    names: list[str] = []
    for entry, name in zip(entries, plain, strict=True):
        if key(name) in claimed:
            number = 1
            while True:
                name = make(entry, suffix(number))
                if key(name) not in reserved and key(name) not in claimed:
                    break
                number += 1
        claimed.add(key(name))
        names.append(name)
    return names


def _naming_order(directory: _Entry) -> list[_Entry]:
    # The boot catalog names itself first (it is expected at ISOLINUX/BOOT.CAT); the
    # relocation directory last, so real entries keep their natural names.
    rank = {"catalog": 0, "relocation": 2}
    return sorted(directory.children.values(), key=lambda e: (rank.get(e.kind, 1), e.name))


def _assign_names(top: _Entry) -> None:
    pending = [top]
    while pending:
        directory = pending.pop()
        ordered = _naming_order(directory)
        iso_names = _unique_names(
            ordered,
            lambda e, s: (
                _iso_dir_identifier(e.name, s)
                if e.kind == "dir"
                else _iso_dir_identifier(_RELOCATION_ISO_NAME, s)
                if e.kind == "relocation"
                else _iso_file_identifier(e.name, s)
            ),
            _iso_key,
            lambda n: f"_{n}",  # "~" is not a d-character (pycdlib rejects it)
        )
        # Joliet readers (Windows) compare names without regard to case.
        in_joliet = [e for e in ordered if e.kind not in ("symlink", "relocation")]
        joliet_names = _unique_names(
            in_joliet,
            lambda e, s: _joliet_identifier(e.name, s, is_dir=e.kind == "dir"),
            str.casefold,
            lambda n: f"~{n}",
        )
        # Real names are unique already; only undecodable ones can clash once replaced.
        rr_names = _unique_names(
            ordered,
            lambda e, s: _utf8_lossless_or_replaced(e.name) + s,
            lambda name: name,
            lambda n: f"~{n}",
        )
        for entry, iso_name, rr_name in zip(ordered, iso_names, rr_names, strict=True):
            entry.iso_name, entry.rr_name = iso_name, rr_name
        for entry, joliet_name in zip(in_joliet, joliet_names, strict=True):
            entry.joliet_name = joliet_name
        pending.extend(e for e in ordered if e.kind == "dir")


# --------------------------------------------------------------------------------------
# Layout with pycdlib's public API
# --------------------------------------------------------------------------------------


def _volume_label(volume_id: str) -> str:
    # d-characters only; 16 characters because the Joliet descriptor stores the same
    # label in UCS-2 within 32 bytes.
    return _d_characters(volume_id)[:16] or "CDROM"


def _populate(iso: pycdlib.PyCdlib, top: _Entry, memory: dict[int, _Entry]) -> None:
    """Add every entry, parents before children, in sorted order."""
    pending: list[tuple[_Entry, str, str]] = [(top, "", "")]
    while pending:
        directory, iso_dir, joliet_dir = pending.pop()
        subdirs: list[tuple[_Entry, str, str]] = []
        for entry in sorted(directory.children.values(), key=lambda e: e.name):
            iso_path = f"{iso_dir}/{entry.iso_name}"
            joliet_path = f"{joliet_dir}/{entry.joliet_name}"
            entry.iso_path, entry.joliet_path = iso_path, joliet_path
            try:
                if entry.kind == "dir":
                    iso.add_directory(
                        iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                    subdirs.append((entry, iso_path, joliet_path))
                elif entry.kind == "file":
                    assert entry.source is not None
                    # add_file() stats the path and opens it only when written out,
                    # so thousands of files never hold thousands of descriptors.
                    iso.add_file(
                        entry.source,
                        iso_path=iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                elif entry.kind == "memory":
                    data_fp = io.BytesIO(entry.data)
                    memory[id(data_fp)] = entry
                    iso.add_fp(
                        data_fp,
                        len(entry.data),
                        iso_path=iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                elif entry.kind == "symlink":
                    # Rock Ridge only: Joliet has no symlinks. The target is kept as
                    # written, never followed (no loops, no escaping the tree).
                    iso.add_symlink(
                        symlink_path=iso_path,
                        rr_symlink_name=entry.rr_name,
                        rr_path=_utf8_lossless_or_replaced(entry.target),
                    )
                # "catalog" is added by add_eltorito(); "relocation" by pycdlib itself.
            except PyCdlibException as exc:
                raise SourceError(f"cannot lay out {_printable(entry.rel)} ({exc})") from exc
            except OSError as exc:
                raise SourceError(f"cannot read {_printable(entry.rel)} ({exc.strerror})") from exc
        pending.extend(reversed(subdirs))


def _add_boot_entries(iso: pycdlib.PyCdlib, top: _Entry, boot: BootPlan) -> None:
    """The BIOS entry first (the catalog's initial entry, which isohybrid's MBR code
    loads), then the UEFI one in a section of its own (platform 0xEF)."""
    assert boot.boot_catalog is not None
    catalog = _lookup(top, boot.boot_catalog)
    assert catalog is not None and catalog.kind == "catalog"
    entries: list[tuple[str, bool]] = []
    if boot.bios_boot_file is not None:
        entries.append((boot.bios_boot_file, False))
    if boot.efi_image is not None:
        entries.append((boot.efi_image, True))
    for index, (rel, efi) in enumerate(entries):
        image = _lookup(top, rel)
        assert image is not None
        catalog_paths: dict[str, Any] = {}
        if index == 0:  # the first call creates the catalog
            catalog_paths = {
                "bootcatfile": catalog.iso_path,
                "rr_bootcatname": catalog.rr_name,
                "joliet_bootcatfile": catalog.joliet_path,
            }
        try:
            if efi:
                # The image as it is: no emulation, no boot info table, its whole
                # length as the sector count (pycdlib counts it when given None).
                iso.add_eltorito(
                    image.iso_path, **catalog_paths, platform_id=0xEF, efi=True, media_name="noemul"
                )
            else:
                # Reads the boot file once, to checksum it for the boot info table;
                # the table itself is only ever patched into the output stream.
                iso.add_eltorito(
                    image.iso_path,
                    **catalog_paths,
                    boot_load_size=4,
                    platform_id=0,
                    boot_info_table=True,
                    media_name="noemul",
                )
        except PyCdlibException as exc:
            raise SourceError(f"cannot make {_printable(rel)} bootable ({exc})") from exc
        except OSError as exc:
            raise SourceError(f"cannot read {_printable(rel)} ({exc.strerror})") from exc


# The backup GPT (its 128-entry array and header: 33 sectors of 512 bytes) goes in the
# padding pycdlib adds after the ISO to fill the last cylinder; it must fit there, or
# pycdlib would write it over the last file's data.
_BACKUP_GPT_BYTES: Final = 33 * 512
# isohybrid's usual geometry first; others only when its padding is too short.
_GEOMETRIES: Final = tuple((heads, sectors) for sectors in (32, 63) for heads in range(64, 256))


def _add_isohybrid(iso: pycdlib.PyCdlib, iso_size: int, efi: bool, seed: bytes) -> int:
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


def _settle_gpt(iso: pycdlib.PyCdlib, seed: bytes) -> list[tuple[int, bytes]]:
    """Fix what pycdlib gets wrong in its GPTs; return the header bytes to patch.

    pycdlib gives the backup GPT its own random disk and partition GUIDs, where it must
    repeat the primary's, and its first partition covers the tables (both set here,
    before anything is rendered, so pycdlib writes them). And it checksums only the
    filled partition entries, where the header's array CRC covers the whole array (128
    entries): the corrected headers, rendered by pycdlib's own code with the right CRC,
    are patched over both (pycdlib internals).
    """
    hybrid = iso.isohybrid_mbr
    assert hybrid is not None
    primary, backup = hybrid.primary_gpt, hybrid.secondary_gpt
    primary.header.disk_guid = backup.header.disk_guid = _derived_guid(seed, 0)
    for number, (first, second) in enumerate(zip(primary.parts, backup.parts, strict=True), start=1):
        first.part_guid = second.part_guid = _derived_guid(seed, number)
    # pycdlib starts the whole-ISO partition at sector 0, over the MBR and the primary
    # GPT itself (sgdisk -v: "Main partition table overlaps the first partition"); it
    # starts past the 32 KiB system area instead. (Its end stays below the backup GPT:
    # the geometry left room for that.)
    primary.parts[0].first_lba = backup.parts[0].first_lba = _SYSTEM_AREA_SECTORS
    header = primary.header
    array = b"".join(part.record() for part in primary.parts)
    array += bytes(header.num_parts * header.size_of_partition_entries - len(array))
    crc = zlib.crc32(array)
    return [
        (header.current_lba * 512, header.record(crc)[:_GPT_HEADER_BYTES]),
        (backup.header.current_lba * 512, backup.header.record(crc)[:_GPT_HEADER_BYTES]),
    ]


_GPT_HEADER_BYTES: Final = 92
_SYSTEM_AREA_SECTORS: Final = 16 * BLOCK_SIZE // 512


def _derived_guid(seed: bytes, number: int) -> uuid.UUID:
    digest = hashlib.sha256(seed + number.to_bytes(4, "little")).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def _hybrid_seed(iso: pycdlib.PyCdlib, iso_size: int) -> bytes:
    # What identifies this image's layout: its label, size and creation date.
    return hashlib.sha256(
        b"isohybrid\0"
        + iso.pvd.volume_identifier
        + iso_size.to_bytes(8, "little")
        + iso.pvd.volume_creation_date.record()
    ).digest()


# --------------------------------------------------------------------------------------
# pycdlib 1.22.0 internals: the only place that reaches past pycdlib's public API.
# The version is pinned; tests compare the stream with write_fp() byte for byte.
#
# - PyCdlib._write_fp(outfp, blocksize, progress_cb, progress_opaque) writes all
#   metadata (volume descriptors, path tables, boot catalog, directory records, Rock
#   Ridge continuation areas), then every inode in PyCdlib.inodes via
#   _output_file_data(), then one zero byte at the very end if the file is short.
#   With isohybrid: first the MBR (and primary GPT) at offset 0, last the zero padding
#   to a whole cylinder after the volume and the backup GPT at its very end.
# - _output_file_data() seeks to inode.extent_location() * logical_block_size, copies
#   inode.get_data_length() bytes from the inode's file (inode.data_fp is a path when
#   inode.manage_fp is true, else the file object given to add_fp(); both read from
#   inode.fp_offset, 0 for new files), zero-pads to the block and then writes
#   inode.boot_info_table.record() at file offset 8. Inodes of length 0 are skipped.
#   An inode parsed from an opened ISO (original_data_location DATA_ON_ORIGINAL_ISO)
#   reads from that ISO's file object at orig_extent_loc * logical_block_size instead.
# --------------------------------------------------------------------------------------


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


def _render_metadata(iso: pycdlib.PyCdlib) -> list[tuple[int, bytes]]:
    """Run pycdlib's own writer into memory with no inodes, so no file data is read."""
    recorder = _Recorder()
    inodes = iso.inodes
    iso.inodes = []
    try:
        iso._write_fp(cast(BinaryIO, recorder), BLOCK_SIZE, None, None)
    finally:
        iso.inodes = inodes
    return recorder.segments()


@dataclass(frozen=True)
class _FileData:
    """A file's bytes at their place in the image, read from disk or memory."""

    offset: int
    length: int
    rel: str
    path: str | None
    memory: bytes | None
    mode: int = 0  # of a source file when laid out (Rock Ridge records it)
    # A range of a vendor ISO: where the file's bytes start in it, and the vendor ISO's
    # (size, mtime_ns, inode) when laid out, which the stream checks before reading.
    origin_offset: int = 0
    origin_stamp: tuple[int, int, int] | None = None

    @property
    def end(self) -> int:
        """Where the zero padding to the next block ends."""
        return self.offset + -(-self.length // BLOCK_SIZE) * BLOCK_SIZE


@dataclass(frozen=True)
class _Metadata:
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def _file_layout(
    iso: pycdlib.PyCdlib,
    memory: dict[int, _Entry],
    sources: dict[str, _Entry],
    vendor: _VendorOrigin | None = None,
) -> tuple[list[_FileData], list[tuple[int, bytes]]]:
    """Each inode's place and origin, in disk order, plus the boot info table patches."""
    files: list[_FileData] = []
    patches: list[tuple[int, bytes]] = []
    block = iso.logical_block_size
    for ino in iso.inodes:
        length = ino.get_data_length()
        if length <= 0:
            continue
        offset = ino.extent_location() * block
        if vendor is not None and ino.original_data_location == ino.DATA_ON_ORIGINAL_ISO:
            # Data still where the vendor ISO has it: read from there at stream time
            # (pycdlib's InodeOpenData seeks to orig_extent_loc, not fp_offset).
            files.append(
                _FileData(
                    offset,
                    length,
                    vendor.name,
                    vendor.path,
                    None,
                    origin_offset=(ino.orig_extent_loc or 0) * block,
                    origin_stamp=vendor.stamp,
                )
            )
        elif ino.manage_fp and isinstance(ino.data_fp, str):
            entry = sources[ino.data_fp]
            files.append(_FileData(offset, length, entry.rel, ino.data_fp, None, entry.mode))
        elif id(ino.data_fp) in memory:
            entry = memory[id(ino.data_fp)]
            files.append(_FileData(offset, length, entry.rel, None, entry.data))
        else:
            raise RuntimeError("pycdlib inode with an unknown data source")
        if ino.boot_info_table is not None:
            patches.append((offset + 8, ino.boot_info_table.record()))
    files.sort(key=lambda f: f.offset)
    return files, patches


# --------------------------------------------------------------------------------------
# The streaming plan
# --------------------------------------------------------------------------------------


def _plan(
    segments: list[tuple[int, bytes]], files: list[_FileData], size: int
) -> list[_Metadata | _FileData]:
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
    pieces: list[_Metadata | _FileData] = list(files)
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
                    pieces.append(_Metadata(cursor, data[cursor - start : hole.offset - start]))
                covered = data[max(hole.offset, cursor) - start : min(hole.end, end) - start]
                if covered.count(0) != len(covered):
                    raise RuntimeError("pycdlib metadata overlaps file data")
                cursor = max(cursor, hole.end)
            index += 1
        if cursor < end:
            pieces.append(_Metadata(cursor, data[cursor - start :]))
    pieces.sort(key=lambda p: p.offset)
    return pieces


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


def _emit_file(out: _ChunkBuffer, piece: _FileData, on_stale: Callable[[], None]) -> Iterator[bytes]:
    if piece.memory is not None:
        yield from out.put(memoryview(piece.memory)[: piece.length])
    else:
        yield from _emit_disk_file(out, piece, on_stale)
    yield from out.put_zeros(piece.end - piece.offset - piece.length)


def _emit_disk_file(out: _ChunkBuffer, piece: _FileData, on_stale: Callable[[], None]) -> Iterator[bytes]:
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
        raise StreamError(f"cannot read {_printable(rel)} while streaming ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            on_stale()
            raise StreamError(f"{_printable(rel)} is no longer a regular file")
        # A size other than the laid-out one means the layout is stale (the file was
        # rewritten in place): fail rather than send a truncated or padded file.
        if piece.origin_stamp is not None:
            # A range of a vendor ISO: the whole ISO must be the one laid out (its
            # metadata shaped the layout, not only this file's bytes).
            if (info.st_size, info.st_mtime_ns, info.st_ino) != piece.origin_stamp:
                on_stale()
                raise StreamError(f"the vendor ISO {_printable(rel)} changed after layout")
            os.lseek(fd, piece.origin_offset, os.SEEK_SET)
        elif info.st_size != length or (piece.mode and info.st_mode != piece.mode):
            on_stale()
        if piece.origin_stamp is None and info.st_size != length:
            change = "shrank" if info.st_size < length else "grew"
            raise StreamError(
                f"{_printable(rel)} {change} after layout ({info.st_size} bytes, laid out {length})"
            )
        left = length
        while left:
            want = min(left, out.size - out.fill)
            got = os.readv(fd, [out.view[out.fill : out.fill + want]])
            if not got:
                raise StreamError(
                    f"{_printable(rel)} shrank while streaming ({length - left} of {length} bytes)"
                )
            left -= got
            if (chunk := out.advance(got)) is not None:
                yield chunk
    except OSError as exc:
        raise StreamError(f"cannot read {_printable(rel)} while streaming ({exc.strerror})") from exc
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


class IsoImage:
    """A laid-out ISO: exact ``size`` up front, bytes in disk order when iterated.

    Made by :func:`build_iso`. Iterate once; the chunks are fresh ``bytes`` the
    consumer may keep, ``chunk_size`` long except the first (everything before the
    first source file's data, sent without reading any source file) and the last. ``close()``
    releases pycdlib's state and the file being read, if any; it is idempotent. Also a
    context manager.
    """

    size: int
    boot_description: str

    def __init__(
        self,
        iso: pycdlib.PyCdlib | None,
        plan: list[_Metadata | _FileData],
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
            if isinstance(piece, _Metadata):
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
        # What this module corrects in pycdlib's output (the GPT headers' checksums).
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
            _close_quietly(iso)

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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

    Raises SourceError when the tree cannot be laid out, ValueError for a malformed
    extra file path or chunk size.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    layout = _lay_out(source_dir, extra_files, volume_id)
    try:
        plan = _plan(_render_metadata(layout.iso), layout.files, layout.size)
    except BaseException:
        _close_quietly(layout.iso)
        raise
    return IsoImage(
        layout.iso,
        plan,
        layout.patches,
        size=layout.size,
        boot_description=layout.boot_description,
        chunk_size=chunk_size,
        reference_fixes=layout.fixes,
    )


@dataclass
class _Layout:
    """pycdlib's layout of a tree, before its metadata is rendered."""

    iso: pycdlib.PyCdlib
    files: list[_FileData]
    patches: list[tuple[int, bytes]]  # everything the stream patches over the metadata
    fixes: list[tuple[int, bytes]]  # of which: our corrections to pycdlib's write_fp()
    size: int  # with the hybrid padding
    boot_description: str
    # extra file → (ISO9660 path, Joliet path, or None in a vendor ISO without Joliet)
    extra_paths: dict[str, tuple[str, str | None]]


def _lay_out(source_dir: os.PathLike[str] | str, extra_files: Mapping[str, bytes], volume_id: str) -> _Layout:
    root = os.path.abspath(os.fspath(source_dir))
    if is_vendor_iso(root):
        return _lay_out_vendor_iso(root, extra_files)
    top = _scan_source(root)
    try:
        settings = read_settings(root)
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc
    _overlay_extras(top, extra_files)
    try:
        boot = resolve_boot(settings, _tree_probe(top))
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc

    if boot.boot_catalog is not None:
        folder, _, name = boot.boot_catalog.rpartition("/")
        parent = _lookup(top, folder) if folder else top
        assert parent is not None and parent.kind == "dir"  # resolve_boot checked it
        parent.children[name] = _Entry(name=name, rel=boot.boot_catalog, kind="catalog")
    if _max_dir_depth(top) >= _RELOCATION_DEPTH:
        # pycdlib will create the relocation directory at the root: reserve its names
        # so that no source entry can clash with it.
        top.children[_RELOCATION_KEY] = _Entry(
            name=_RELOCATION_RR_NAME, rel=_RELOCATION_RR_NAME, kind="relocation"
        )
    _assign_names(top)
    relocation = top.children.pop(_RELOCATION_KEY, None)

    iso = pycdlib.PyCdlib()
    try:
        iso.new(
            interchange_level=3,
            vol_ident=boot.volume_id or _volume_label(volume_id),
            joliet=3,
            rock_ridge="1.09",
        )
        if relocation is not None:
            iso.set_relocated_name(relocation.iso_name, relocation.rr_name)
        memory: dict[int, _Entry] = {}
        _populate(iso, top, memory)
        if boot.bootable:
            _add_boot_entries(iso, top, boot)
        # pycdlib keeps the volume's size up to date as entries are added; the hybrid
        # MBR and GPT depend on it (and on nothing added later).
        iso_size = iso.pvd.space_size * iso.logical_block_size
        padding, seed = 0, _hybrid_seed(iso, iso_size)
        if boot.hybrid:
            padding = _add_isohybrid(iso, iso_size, boot.efi_image is not None, seed)
        iso.force_consistency()
        if iso.pvd.space_size * iso.logical_block_size != iso_size:
            raise RuntimeError("pycdlib changed the volume size while laying it out")
        fixes = _settle_gpt(iso, seed) if boot.hybrid and boot.efi_image is not None else []

        sources = {e.source: e for e in _walk_files(top) if e.source is not None}
        files, patches = _file_layout(iso, memory, sources)
    except BaseException:
        _close_quietly(iso)
        raise
    extra_paths: dict[str, tuple[str, str | None]] = {
        entry.rel: (entry.iso_path, entry.joliet_path) for entry in memory.values()
    }
    return _Layout(iso, files, patches + fixes, fixes, iso_size + padding, boot.description(), extra_paths)


# --------------------------------------------------------------------------------------
# A vendor ISO as the source: opened with pycdlib, the extra files added, never written
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VendorOrigin:
    """The vendor ISO that file data is read from while streaming."""

    path: str
    name: str  # for messages
    stamp: tuple[int, int, int]  # (size, mtime_ns, inode) when laid out


def is_vendor_iso(path: os.PathLike[str] | str) -> bool:
    """Whether ``path`` is a vendor ISO source: a regular file whose name ends in ``.iso``."""
    text = os.fspath(path)
    if not text.lower().endswith(".iso"):
        return False
    try:
        return stat.S_ISREG(os.stat(text).st_mode)
    except OSError:
        return False


def _describe_vendor_iso(path: str) -> str:
    return read_vendor_boot(path).description()


def _lay_out_vendor_iso(path: str, extra_files: Mapping[str, bytes]) -> _Layout:
    """Open the vendor ISO, put the extra files in, lay it out; nothing is written to it.

    pycdlib parses every directory record of the ISO into objects (a few per file: some
    60 MB for a DVD of 10,000 files); the layout cache does this in a child process.
    The vendor's El Torito entries, boot info table and volume id are kept as parsed
    (pycdlib re-patches the boot info table with the boot file's new place). Its hybrid
    MBR/GPT is not re-laid out as parsed: pycdlib 1.22.0 gets that wrong (an MBR-only one
    fails in force_consistency() once the ISO has an EFI entry; a GPT comes out with a
    wrong array CRC and a backup GPT where none fits). It is dropped, and made anew the
    way a directory source's is (:func:`_add_isohybrid`, :func:`_settle_gpt`) when the
    initial entry boots an isohybrid isolinux.bin, whether the vendor's was hybrid or not.
    """
    for key in extra_files:
        _check_extra_path(key)
    try:
        info = os.stat(path)
        with open(path, "rb"):
            pass  # unreadable: say so now, before the first byte
    except OSError as exc:
        raise SourceError(f"the vendor ISO cannot be read ({exc.strerror})") from exc
    origin = _VendorOrigin(path, os.path.basename(path), (info.st_size, info.st_mtime_ns, info.st_ino))
    boot = read_vendor_boot(path)
    iso = pycdlib.PyCdlib()
    try:
        try:
            iso.open(path)
        except PyCdlibException as exc:
            raise SourceError(f"the vendor ISO cannot be parsed ({exc})") from exc
        if iso.has_udf():
            # The per-host files would be missing from the UDF tree that readers prefer.
            raise SourceError("vendor ISOs with a UDF file system are not supported")
        if iso.isohybrid_mbr is not None:
            iso.rm_isohybrid()
        memory: dict[int, _Entry] = {}
        extra_paths: dict[str, tuple[str, str | None]] = {}
        rock_ridge, joliet = iso.has_rock_ridge(), iso.has_joliet()
        for key in sorted(extra_files):
            data = bytes(extra_files[key])
            try:
                iso_path, joliet_path = _vendor_place(iso, key, rock_ridge=rock_ridge, joliet=joliet)
                name = key.rpartition("/")[2]
                data_fp = io.BytesIO(data)
                memory[id(data_fp)] = _Entry(name=name, rel=key, kind="memory", data=data)
                iso.add_fp(
                    data_fp,
                    len(data),
                    iso_path=iso_path,
                    rr_name=name if rock_ridge else None,
                    joliet_path=joliet_path,
                    file_mode=_EXTRA_FILE_MODE if rock_ridge else None,
                )
            except PyCdlibException as exc:
                raise SourceError(f"cannot add {_printable(key)} to the vendor ISO ({exc})") from exc
            extra_paths[key] = (iso_path, joliet_path)
        # As for a directory source: the volume's size is final once every file is in.
        iso_size = iso.pvd.space_size * iso.logical_block_size
        efi = 0xEF in boot.platforms
        padding, seed = 0, _hybrid_seed(iso, iso_size)
        if boot.hybrid:
            padding = _add_isohybrid(iso, iso_size, efi, seed)
        try:
            iso.force_consistency()
        except PyCdlibException as exc:
            raise SourceError(f"cannot lay out the vendor ISO ({exc})") from exc
        if iso.pvd.space_size * iso.logical_block_size != iso_size:
            raise RuntimeError("pycdlib changed the volume size while laying it out")
        fixes = _settle_gpt(iso, seed) if boot.hybrid and efi else []
        files, patches = _file_layout(iso, memory, {}, origin)
    except BaseException:
        _close_quietly(iso)
        raise
    return _Layout(iso, files, patches + fixes, fixes, iso_size + padding, boot.description(), extra_paths)


@dataclass(frozen=True)
class _VendorChild:
    identifier: str  # as recorded ("KS.CFG;1", "KS_SCRIP")
    real_name: str | None  # its Rock Ridge name
    is_dir: bool


def _vendor_children(iso: pycdlib.PyCdlib, **path: str) -> list[_VendorChild]:
    """The entries of one directory of the vendor ISO (``iso_path=`` or ``joliet_path=``)."""
    joliet = "joliet_path" in path
    children = []
    for record in iso.list_children(**path):
        if record.is_dot() or record.is_dotdot():
            continue
        raw = record.file_identifier()
        identifier = raw.decode("utf-16_be", "replace") if joliet else raw.decode("utf-8", "replace")
        real = None
        if not joliet and record.rock_ridge is not None and record.rock_ridge.name():
            real = record.rock_ridge.name().decode("utf-8", "surrogateescape")
        children.append(_VendorChild(identifier, real, record.is_dir()))
    return children


def _vendor_match(children: list[_VendorChild], name: str, *, joliet: bool) -> _VendorChild | None:
    """The child a real name stands for: by its Rock Ridge name when it has one, else by
    the name this module would give it (ISO9660), or case-insensitively (Joliet)."""
    for child in children:
        if child.real_name is not None:
            if child.real_name == name:
                return child
        elif joliet:
            if _iso_key(child.identifier).casefold() in (
                name.casefold(),
                _joliet_identifier(name, "", is_dir=child.is_dir).casefold(),
            ):
                return child
        elif _iso_key(child.identifier) == _iso_key(
            _iso_dir_identifier(name, "") if child.is_dir else _iso_file_identifier(name, "")
        ):
            return child
    return None


def _vendor_new_name(children: list[_VendorChild], name: str, *, is_dir: bool, joliet: bool) -> str:
    """A name for a new entry, unique in its directory (the module's naming rules)."""
    taken = {_iso_key(child.identifier).casefold() for child in children}
    for number in itertools.count():
        if joliet:
            candidate = _joliet_identifier(name, f"~{number}" if number else "", is_dir=is_dir)
        elif is_dir:
            candidate = _iso_dir_identifier(name, f"_{number}" if number else "")
        else:
            candidate = _iso_file_identifier(name, f"_{number}" if number else "")
        if _iso_key(candidate).casefold() not in taken:
            return candidate
    raise AssertionError("unreachable")


def _vendor_place(
    iso: pycdlib.PyCdlib, key: str, *, rock_ridge: bool, joliet: bool
) -> tuple[str, str | None]:
    """The ISO9660 and Joliet paths for an extra file: its folders found or made, and a
    file of the vendor's at that path removed (it is replaced)."""
    parts = key.split("/")
    iso_dir, joliet_dir = "", ""
    for depth, part in enumerate(parts, start=1):
        last = depth == len(parts)
        here = "/".join(parts[:depth])
        found = _vendor_match(_vendor_children(iso, iso_path=iso_dir or "/"), part, joliet=False)
        joliet_found = None
        if joliet:
            joliet_found = _vendor_match(
                _vendor_children(iso, joliet_path=joliet_dir or "/"), part, joliet=True
            )
        if found is not None and found.is_dir == last:
            what = "a directory" if last else "not a directory"
            raise SourceError(f"{_printable(here)} is {what} in the vendor ISO")
        if last:
            if found is not None:
                # Every link to the old file goes (ISO9660 and Joliet alike).
                iso.rm_file(iso_path=f"{iso_dir}/{found.identifier}")
            elif joliet_found is not None and not joliet_found.is_dir:
                iso.rm_file(joliet_path=f"{joliet_dir}/{joliet_found.identifier.removesuffix(';1')}")
            iso_name = _vendor_new_name(
                _vendor_children(iso, iso_path=iso_dir or "/"), part, is_dir=False, joliet=False
            )
            joliet_path = None
            if joliet:
                joliet_name = _vendor_new_name(
                    _vendor_children(iso, joliet_path=joliet_dir or "/"), part, is_dir=False, joliet=True
                )
                joliet_path = f"{joliet_dir}/{joliet_name}"
            return f"{iso_dir}/{iso_name}", joliet_path
        if found is None:
            name = _vendor_new_name(
                _vendor_children(iso, iso_path=iso_dir or "/"), part, is_dir=True, joliet=False
            )
            new_joliet = None
            if joliet and joliet_found is None:
                joliet_name = _vendor_new_name(
                    _vendor_children(iso, joliet_path=joliet_dir or "/"), part, is_dir=True, joliet=True
                )
                new_joliet = f"{joliet_dir}/{joliet_name}"
            iso.add_directory(
                f"{iso_dir}/{name}",
                rr_name=part if rock_ridge else None,
                joliet_path=new_joliet,
                file_mode=_CREATED_DIR_MODE if rock_ridge else None,
            )
            iso_dir = f"{iso_dir}/{name}"
            if new_joliet is not None:
                joliet_dir = new_joliet
                continue
        else:
            iso_dir = f"{iso_dir}/{found.identifier}"
        if joliet:
            if joliet_found is None:
                joliet_name = _vendor_new_name(
                    _vendor_children(iso, joliet_path=joliet_dir or "/"), part, is_dir=True, joliet=True
                )
                iso.add_joliet_directory(f"{joliet_dir}/{joliet_name}")
                joliet_dir = f"{joliet_dir}/{joliet_name}"
            elif not joliet_found.is_dir:
                raise SourceError(f"{_printable(here)} is not a directory in the vendor ISO's Joliet tree")
            else:
                joliet_dir = f"{joliet_dir}/{joliet_found.identifier}"
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------
# Layout templates: one layout of a tree serves every request's small extra files
# --------------------------------------------------------------------------------------

# An extra file of 1 to 2048 bytes fills exactly one block, so its content and length
# change no extent of anything else: only its bytes and its two directory records'
# data-length fields (ISO9660 and Joliet) differ from one request to the next.
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

    plan: tuple[_Metadata | _FileData, ...]
    patches: tuple[tuple[int, bytes], ...]
    size: int
    boot_description: str
    extra_offsets: Mapping[str, int]  # name → offset of its data block
    length_fields: Mapping[str, tuple[int, ...]]  # name → offsets of its data-length fields

    @property
    def footprint(self) -> int:
        """Roughly the memory the template holds, for bounding a cache of them."""
        metadata = sum(len(p.data) for p in self.plan if isinstance(p, _Metadata))
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
        plan: list[_Metadata | _FileData] = []
        for piece in self.plan:
            name = by_offset.get(piece.offset) if isinstance(piece, _FileData) else None
            if name is None:
                plan.append(piece)
            else:
                data = bytes(extra_files[name])
                plan.append(_FileData(piece.offset, len(data), name, None, data))
        patches = list(self.patches)
        for name, offsets in self.length_fields.items():
            patches += [(offset, both_endian_32(len(extra_files[name]))) for offset in offsets]
        return IsoImage(
            None,
            plan,
            patches,
            size=self.size,
            boot_description=self.boot_description,
            chunk_size=chunk_size,
            on_stale=on_stale,
        )


def make_layout_template(
    source_dir: os.PathLike[str] | str, extra_names: Sequence[str], *, volume_id: str = "CDROM"
) -> LayoutTemplate:
    """Lay the tree out once with one-byte placeholders for ``extra_names``.

    Raises SourceError like ``build_iso()``.
    """
    names = sorted(extra_names)
    layout = _lay_out(source_dir, dict.fromkeys(names, b"\0"), volume_id)
    try:
        # Plant a distinct sentinel in each placeholder's records, render, and find it.
        sentinels: dict[str, int] = {}
        record_counts: dict[str, int] = {}
        for index, name in enumerate(names):
            sentinels[name] = _LENGTH_SENTINEL_BASE + index
            records = _records_of(layout, name)
            record_counts[name] = len(records)
            for record in records:
                record.data_length = sentinels[name]  # pycdlib internals: the field record() packs
        segments = _render_metadata(layout.iso)
        length_fields = {
            name: _find_all(segments, both_endian_32(sentinel)) for name, sentinel in sentinels.items()
        }
        if any(len(offsets) != record_counts[name] for name, offsets in length_fields.items()):
            raise RuntimeError("could not find the placeholders' data lengths in the metadata")
        # The sentinels stay in the template's metadata: every instance patches them over.
        plan = _plan(segments, layout.files, layout.size)
        extra_offsets = {file.rel: file.offset for file in layout.files if file.path is None}
    finally:
        _close_quietly(layout.iso)
    return LayoutTemplate(
        plan=tuple(plan),
        patches=tuple(layout.patches),
        size=layout.size,
        boot_description=layout.boot_description,
        extra_offsets=extra_offsets,
        length_fields={name: tuple(offsets) for name, offsets in length_fields.items()},
    )


def _records_of(layout: _Layout, rel: str) -> list[Any]:
    """The ISO9660 and Joliet directory records of an extra file."""
    iso_path, joliet_path = layout.extra_paths[rel]
    records = [layout.iso.get_record(iso_path=iso_path)]
    if joliet_path is not None:
        records.append(layout.iso.get_record(joliet_path=joliet_path))
    return records


def _find_all(segments: Sequence[tuple[int, bytes]], needle: bytes) -> list[int]:
    found = []
    for start, data in segments:
        position = data.find(needle)
        while position >= 0:
            found.append(start + position)
            position = data.find(needle, position + 1)
    return found


def describe_boot(source_dir: os.PathLike[str] | str) -> str:
    """How ``build_iso()`` will boot this source tree, known before building.

    For text that must go into the ISO itself (``ks_scripts/state.out``), e.g.
    ``BIOS El Torito: isolinux/isolinux.bin; UEFI El Torito: images/efiboot.img; hybrid
    MBR+GPT``. Same rules as the build (:mod:`isos.engine.boot_plan`): boot files are found
    through real directories, never through symlinks. Extra files are not considered;
    an unreadable boot file simply reads as absent here (``build_iso()`` then says why).
    Raises SourceError for a settings file the build would refuse too.

    A vendor ISO is described by its own El Torito catalog, read directly (a few
    sectors; no pycdlib, whose objects for a DVD would outweigh the whole worker).
    """
    root = os.path.abspath(os.fspath(source_dir))
    if is_vendor_iso(root):
        return _describe_vendor_iso(root)
    try:
        return resolve_boot(read_settings(root), disk_probe(root)).description()
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc


def _walk_files(top: _Entry) -> Iterator[_Entry]:
    pending = [top]
    while pending:
        directory = pending.pop()
        for entry in directory.children.values():
            if entry.kind == "dir":
                pending.append(entry)
            elif entry.kind == "file":
                yield entry


def _close_quietly(iso: pycdlib.PyCdlib) -> None:
    # close() refuses an object that was never initialized (new() failed).
    with contextlib.suppress(PyCdlibException):
        iso.close()
