"""A vendor ISO as the source: opened with pycdlib, the extra files put in, never written.

Its files' data stays where the vendor put it (the stream reads those ranges of the
vendor ISO); only the new files and the metadata are the engine's. New entries are
named by the engine's rules, unique among the vendor's (:mod:`isos.engine.names`).
What is kept of the vendor's boot setup and what is made anew: docs/design.md,
"The engine", and :func:`isos.engine.layout.lay_out`.
"""

from __future__ import annotations

import errno
import io
import itertools
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from isos.engine.errors import SourceError
from isos.engine.names import iso_dir_identifier, iso_file_identifier, iso_key, joliet_identifier, printable
from isos.engine.pycdlib_internals import has_hybrid_mbr, list_directory, open_owned_fp
from isos.engine.scan import CREATED_DIR_MODE, EXTRA_FILE_MODE
from isos.engine.source_files import FILE_FLAGS, NotAsLaidOut, close_now, is_symlink_error, open_real_path
from isos.engine.tree import Entry


@dataclass(frozen=True)
class VendorOrigin:
    """The vendor ISO that file data is read from while streaming."""

    path: str  # its real path, opened with no symlink at any component
    name: str  # for messages
    stamp: tuple[int, int, int, int]  # (size, mtime_ns, st_dev, st_ino) when laid out


def is_vendor_iso(path: os.PathLike[str] | str) -> bool:
    """Whether ``path`` is a vendor ISO source: a regular file whose name ends in ``.iso``."""
    text = os.fspath(path)
    if not text.lower().endswith(".iso"):
        return False
    try:
        return stat.S_ISREG(os.stat(text).st_mode)
    except OSError:
        return False


def vendor_stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_dev, info.st_ino


def open_vendor_file(path: str) -> BinaryIO:
    """The vendor ISO at its real ``path``, opened with no symlink at any component (a
    symlink put in its place since the source was named is refused); OSError else."""
    descriptor = open_real_path(path, FILE_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotAsLaidOut(errno.EINVAL, "not a regular file")
    except BaseException:
        close_now(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def open_vendor_source(path: str) -> tuple[BinaryIO, VendorOrigin]:
    """The vendor ISO, open, and its origin as it is now; SourceError, before the first
    byte, if it cannot be read. Everything the layout reads of it comes from this one
    descriptor, whose stamp the stream checks before reading each range."""
    try:
        handle = open_vendor_file(path)
    except OSError as exc:
        if exc.errno is not None and is_symlink_error(exc):
            raise SourceError("the vendor ISO is not a regular file (a symlink on its path)") from exc
        raise SourceError(f"the vendor ISO cannot be read ({exc.strerror})") from exc
    stamp = vendor_stamp(os.fstat(handle.fileno()))
    return handle, VendorOrigin(path, os.path.basename(path), stamp)


def open_vendor_iso(iso: pycdlib.PyCdlib, handle: BinaryIO) -> None:
    """Parse the open vendor ISO into ``iso``, which then owns ``handle`` (closed with it,
    or here if parsing fails), without its hybrid MBR/GPT as pycdlib parsed it (made anew
    by pycdlib for isolinux, or kept as the vendor wrote it by :mod:`isos.engine.system_area`)."""
    handle.seek(0)
    try:
        open_owned_fp(iso, handle)
    except PyCdlibException as exc:
        raise SourceError(f"the vendor ISO cannot be parsed ({exc})") from exc
    if iso.has_udf():
        # The per-host files would be missing from the UDF tree that readers prefer.
        raise SourceError("vendor ISOs with a UDF file system are not supported")
    if has_hybrid_mbr(iso):
        iso.rm_isohybrid()


def add_extra_files(
    iso: pycdlib.PyCdlib, extra_files: Mapping[str, bytes]
) -> tuple[dict[int, Entry], dict[str, tuple[str, str | None]]]:
    """Put the extra files into the opened vendor ISO, replacing any of the same path.

    Returns the extra files by the id of the file object pycdlib holds, and each one's
    ISO 9660 and Joliet paths (None without Joliet).
    """
    memory: dict[int, Entry] = {}
    extra_paths: dict[str, tuple[str, str | None]] = {}
    rock_ridge, joliet = iso.has_rock_ridge(), iso.has_joliet()
    for key in sorted(extra_files):
        data = bytes(extra_files[key])
        try:
            iso_path, joliet_path = _place(iso, key, rock_ridge=rock_ridge, joliet=joliet)
            name = key.rpartition("/")[2]
            data_fp = io.BytesIO(data)
            memory[id(data_fp)] = Entry(name=name, rel=key, kind="memory", data=data)
            iso.add_fp(
                data_fp,
                len(data),
                iso_path=iso_path,
                rr_name=name if rock_ridge else None,
                joliet_path=joliet_path,
                file_mode=EXTRA_FILE_MODE if rock_ridge else None,
            )
        except PyCdlibException as exc:
            raise SourceError(f"cannot add {printable(key)} to the vendor ISO ({exc})") from exc
        extra_paths[key] = (iso_path, joliet_path)
    return memory, extra_paths


@dataclass(frozen=True)
class _Child:
    identifier: str  # as recorded ("KS.CFG;1", "KS_SCRIP")
    real_name: str | None  # its Rock Ridge name
    is_dir: bool


def _children(
    iso: pycdlib.PyCdlib, *, iso_path: str | None = None, joliet_path: str | None = None
) -> list[_Child]:
    """The entries of one directory of the vendor ISO (``iso_path=`` or ``joliet_path=``)."""
    joliet = joliet_path is not None
    children = []
    for listed in list_directory(iso, iso_path=iso_path, joliet_path=joliet_path):
        raw = listed.identifier
        identifier = raw.decode("utf-16_be", "replace") if joliet else raw.decode("utf-8", "replace")
        real = None
        if listed.rock_ridge_name:
            real = listed.rock_ridge_name.decode("utf-8", "surrogateescape")
        children.append(_Child(identifier, real, listed.is_dir))
    return children


def _match(children: list[_Child], name: str, *, joliet: bool) -> _Child | None:
    """The child a real name stands for: by its Rock Ridge name when it has one, else by
    the name the engine would give it (ISO 9660), or case-insensitively (Joliet)."""
    for child in children:
        if child.real_name is not None:
            if child.real_name == name:
                return child
        elif joliet:
            if iso_key(child.identifier).casefold() in (
                name.casefold(),
                joliet_identifier(name, "", is_dir=child.is_dir).casefold(),
            ):
                return child
        elif iso_key(child.identifier) == iso_key(
            iso_dir_identifier(name, "") if child.is_dir else iso_file_identifier(name, "")
        ):
            return child
    return None


def _new_name(children: list[_Child], name: str, *, is_dir: bool, joliet: bool) -> str:
    """A name for a new entry, unique in its directory (the engine's naming rules)."""
    taken = {iso_key(child.identifier).casefold() for child in children}
    for number in itertools.count():
        if joliet:
            candidate = joliet_identifier(name, f"~{number}" if number else "", is_dir=is_dir)
        elif is_dir:
            candidate = iso_dir_identifier(name, f"_{number}" if number else "")
        else:
            candidate = iso_file_identifier(name, f"_{number}" if number else "")
        if iso_key(candidate).casefold() not in taken:
            return candidate
    raise AssertionError("unreachable")


def _place(iso: pycdlib.PyCdlib, key: str, *, rock_ridge: bool, joliet: bool) -> tuple[str, str | None]:
    """The ISO 9660 and Joliet paths for an extra file: its folders found or made, and a
    file of the vendor's at that path removed (it is replaced)."""
    parts = key.split("/")
    iso_dir, joliet_dir = "", ""
    for depth, part in enumerate(parts, start=1):
        last = depth == len(parts)
        here = "/".join(parts[:depth])
        found = _match(_children(iso, iso_path=iso_dir or "/"), part, joliet=False)
        joliet_found = None
        if joliet:
            joliet_found = _match(_children(iso, joliet_path=joliet_dir or "/"), part, joliet=True)
        if found is not None and found.is_dir == last:
            what = "a directory" if last else "not a directory"
            raise SourceError(f"{printable(here)} is {what} in the vendor ISO")
        if last:
            if found is not None:
                # Every link to the old file goes (ISO 9660 and Joliet alike).
                iso.rm_file(iso_path=f"{iso_dir}/{found.identifier}")
            elif joliet_found is not None and not joliet_found.is_dir:
                iso.rm_file(joliet_path=f"{joliet_dir}/{joliet_found.identifier.removesuffix(';1')}")
            iso_name = _new_name(_children(iso, iso_path=iso_dir or "/"), part, is_dir=False, joliet=False)
            joliet_path = None
            if joliet:
                joliet_name = _new_name(
                    _children(iso, joliet_path=joliet_dir or "/"), part, is_dir=False, joliet=True
                )
                joliet_path = f"{joliet_dir}/{joliet_name}"
            return f"{iso_dir}/{iso_name}", joliet_path
        if found is None:
            name = _new_name(_children(iso, iso_path=iso_dir or "/"), part, is_dir=True, joliet=False)
            new_joliet = None
            if joliet and joliet_found is None:
                joliet_name = _new_name(
                    _children(iso, joliet_path=joliet_dir or "/"), part, is_dir=True, joliet=True
                )
                new_joliet = f"{joliet_dir}/{joliet_name}"
            iso.add_directory(
                f"{iso_dir}/{name}",
                rr_name=part if rock_ridge else None,
                joliet_path=new_joliet,
                file_mode=CREATED_DIR_MODE if rock_ridge else None,
            )
            iso_dir = f"{iso_dir}/{name}"
            if new_joliet is not None:
                joliet_dir = new_joliet
                continue
        else:
            iso_dir = f"{iso_dir}/{found.identifier}"
        if joliet:
            if joliet_found is None:
                joliet_name = _new_name(
                    _children(iso, joliet_path=joliet_dir or "/"), part, is_dir=True, joliet=True
                )
                iso.add_joliet_directory(f"{joliet_dir}/{joliet_name}")
                joliet_dir = f"{joliet_dir}/{joliet_name}"
            elif not joliet_found.is_dir:
                raise SourceError(f"{printable(here)} is not a directory in the vendor ISO's Joliet tree")
            else:
                joliet_dir = f"{joliet_dir}/{joliet_found.identifier}"
    raise AssertionError("unreachable")
