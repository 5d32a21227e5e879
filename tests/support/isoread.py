"""Reading ISO images back, with pycdlib and with independent tools.

pycdlib reads Rock Ridge paths and contents; the El Torito boot catalog and the boot
info table are parsed here straight from the bytes (not through pycdlib, which wrote
them); ``tool_listing``/``tool_extract`` run isoinfo, xorriso or bsdtar, each optional
(``tools.require_tool``: a test skips without it, or fails under ISOPORTAL_REQUIRE_TOOLS).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
from pycdlib.dr import DirectoryRecord
from pycdlib.rockridge import RockRidge

from tests.support.tools import require_tool

SECTOR = 2048
TOOLS = ("isoinfo", "xorriso", "bsdtar")
# Tools print non-ASCII names in the locale's charset: ask for UTF-8.
_TOOL_ENV = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
_XORRISO_PROBLEM = re.compile(r"\b(WARNING|SORRY|FAILURE|FATAL|ABORT)\b")


def _open(iso_path: Path) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    return iso


def _rr_walk(iso: pycdlib.PyCdlib) -> Iterator[tuple[str, list[str], list[str]]]:
    for directory, dirs, files in iso.walk(rr_path="/"):
        yield directory.rstrip("/"), dirs, files


def _rock_ridge(iso: pycdlib.PyCdlib, rr_path: str) -> RockRidge:
    record = iso.get_record(rr_path=rr_path)
    assert isinstance(record, DirectoryRecord) and record.rock_ridge is not None
    return record.rock_ridge


def read_rr_file(iso_image: Path | bytes, rr_path: str) -> bytes:
    """One file's content by its Rock Ridge path (``/isolinux/isolinux.cfg``), from an ISO
    file or an ISO held in memory."""
    iso = pycdlib.PyCdlib()
    if isinstance(iso_image, bytes):
        iso.open_fp(io.BytesIO(iso_image))
    else:
        iso.open(str(iso_image))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=rr_path)
        return out.getvalue()
    finally:
        iso.close()


def ks_script(iso_image: Path | bytes, name: str = "network.cfg") -> bytes:
    """``ks_scripts/<name>``, one of the per-host files the portal adds, of an ISO."""
    return read_rr_file(iso_image, f"/ks_scripts/{name}")


def read_rr_files(iso_path: Path) -> dict[str, bytes]:
    """Every regular file by its Rock Ridge path (relative, POSIX) -> its content."""
    iso = _open(iso_path)
    try:
        contents: dict[str, bytes] = {}
        for directory, _dirs, files in _rr_walk(iso):
            for name in files:
                path = f"{directory}/{name}"
                if _rock_ridge(iso, path).is_symlink():
                    continue
                sink = io.BytesIO()
                iso.get_file_from_iso_fp(sink, rr_path=path)
                contents[path.lstrip("/")] = sink.getvalue()
        return contents
    finally:
        iso.close()


def read_rr_tree(iso_path: Path) -> dict[str, Any]:
    """Rock Ridge view: directories, file modes and symlinks, by relative path.

    Returns {"dirs": set of paths, "modes": {file path: st_mode},
    "symlinks": {path: target}}.
    """
    iso = _open(iso_path)
    try:
        dirs: set[str] = set()
        modes: dict[str, int] = {}
        symlinks: dict[str, str] = {}
        for directory, subdirs, files in _rr_walk(iso):
            dirs.update(f"{directory}/{name}".lstrip("/") for name in subdirs)
            for name in files:
                path = f"{directory}/{name}"
                rock_ridge = _rock_ridge(iso, path)
                if rock_ridge.is_symlink():
                    symlinks[path.lstrip("/")] = rock_ridge.symlink_path().decode()
                else:
                    modes[path.lstrip("/")] = rock_ridge.get_file_mode()
        return {"dirs": dirs, "modes": modes, "symlinks": symlinks}
    finally:
        iso.close()


def iso9660_paths(iso_path: Path) -> set[str]:
    """Every ISO9660 path (``/ISOLINUX/ISOLINUX.BIN;1``; directories without ``;``)."""
    return _plain_paths(iso_path, "iso_path")


def joliet_paths(iso_path: Path) -> set[str]:
    """Every Joliet path (``/isolinux/isolinux.bin``)."""
    return _plain_paths(iso_path, "joliet_path")


def _plain_paths(iso_path: Path, view: str) -> set[str]:
    iso = _open(iso_path)
    try:
        paths: set[str] = set()
        for directory, dirs, files in iso.walk(**{view: "/"}):
            base = directory.rstrip("/")
            paths.update(f"{base}/{name}" for name in dirs + files)
        return paths
    finally:
        iso.close()


def eltorito_entries(iso_path: Path) -> list[dict[str, Any]]:
    """The El Torito boot entries, parsed from the raw image ([] when not bootable).

    Each entry: platform_id, bootable, media_type, load_segment, sector_count,
    load_rba, catalog_rba and the boot info table found at offset 8 of the boot
    image (pvd_lba, file_lba, file_length, checksum).
    """
    with open(iso_path, "rb") as image:
        catalog_rba = None
        for sector in range(16, 32):
            image.seek(sector * SECTOR)
            descriptor = image.read(SECTOR)
            if descriptor[0] == 255 or descriptor[1:6] != b"CD001":
                break
            if descriptor[0] == 0 and descriptor[7:39].rstrip(b"\0") == b"EL TORITO SPECIFICATION":
                (catalog_rba,) = struct.unpack_from("<I", descriptor, 71)
        if catalog_rba is None:
            return []
        image.seek(catalog_rba * SECTOR)
        catalog = image.read(SECTOR)
        if catalog[0] != 1 or catalog[30:32] != b"\x55\xaa":
            raise AssertionError("El Torito validation entry is malformed")
        raw_entries = [(catalog[1], catalog[32:64])]
        offset = 64
        while offset + 32 <= len(catalog) and catalog[offset] in (0x90, 0x91):
            platform, count = catalog[offset + 1], struct.unpack_from("<H", catalog, offset + 2)[0]
            for index in range(count):
                start = offset + 32 * (index + 1)
                raw_entries.append((platform, catalog[start : start + 32]))
            offset += 32 * (count + 1)
        entries: list[dict[str, Any]] = []
        for platform, raw in raw_entries:
            load_segment, system_type, sector_count, load_rba = struct.unpack_from("<HBxHI", raw, 2)
            image.seek(load_rba * SECTOR + 8)
            pvd_lba, file_lba, file_length, checksum = struct.unpack("<IIII", image.read(16))
            entries.append(
                {
                    "platform_id": platform,
                    "bootable": raw[0] == 0x88,
                    "media_type": raw[1],
                    "load_segment": load_segment,
                    "system_type": system_type,
                    "sector_count": sector_count,
                    "load_rba": load_rba,
                    "catalog_rba": catalog_rba,
                    "boot_info_table": {
                        "pvd_lba": pvd_lba,
                        "file_lba": file_lba,
                        "file_length": file_length,
                        "checksum": checksum,
                    },
                }
            )
        return entries


def root_directory_records(iso_path: Path) -> list[dict[str, Any]]:
    """The root directory's ISO9660 records, parsed raw (multi-extent files show every
    record; pycdlib folds them into one). Each: name, extent, length, flags."""
    with open(iso_path, "rb") as image:
        image.seek(16 * SECTOR + 156)  # the PVD's root directory record
        root = image.read(34)
        (extent,) = struct.unpack_from("<I", root, 2)
        (length,) = struct.unpack_from("<I", root, 10)
        image.seek(extent * SECTOR)
        data = image.read(length)
    records: list[dict[str, Any]] = []
    offset = 0
    while offset < len(data):
        size = data[offset]
        if size == 0:  # records do not cross sectors: skip to the next one
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        raw = data[offset : offset + size]
        name_length = raw[32]
        records.append(
            {
                "name": raw[33 : 33 + name_length],
                "extent": struct.unpack_from("<I", raw, 2)[0],
                "length": struct.unpack_from("<I", raw, 10)[0],
                "flags": raw[25],
            }
        )
        offset += size
    return records


def boot_info_checksum(boot_file: bytes) -> int:
    """The boot info table checksum: 32-bit LE words from offset 64, zero-padded."""
    padded = boot_file + b"\0" * (-len(boot_file) % SECTOR)
    words = struct.unpack_from(f"<{(len(padded) - 64) // 4}I", padded, 64)
    return int(sum(words)) & 0xFFFFFFFF


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, env=_TOOL_ENV, timeout=300, check=False)


def tool_listing(tool: str, iso_path: Path) -> set[str]:
    """The set of relative paths (files, directories, symlinks) a tool sees.

    isoinfo -R -f, xorriso -find and bsdtar -tf; raises AssertionError when the tool
    fails or (xorriso) reports a problem. isoinfo does not follow Rock Ridge directory
    relocation: it shows relocated folders under the relocation directory.
    """
    executable = require_tool(tool)
    if tool == "isoinfo":
        result = _run([executable, "-R", "-f", "-i", str(iso_path)])
        lines = _decoded_lines(result, tool)
        paths = {line.lstrip("/") for line in lines}
    elif tool == "xorriso":
        # Any WARNING (or worse) makes xorriso exit non-zero.
        problems_fail = ["-abort_on", "NEVER", "-return_with", "WARNING", "32"]
        result = _run([executable, *problems_fail, "-indev", str(iso_path), "-find", "/"])
        lines = _decoded_lines(result, tool)
        problems = [
            line
            for line in result.stderr.decode("utf-8", "replace").splitlines()
            if _XORRISO_PROBLEM.search(line)
        ]
        if problems:
            raise AssertionError(f"xorriso reported problems: {problems}")
        paths = set()
        for line in lines:
            (path,) = shlex.split(line)
            paths.add(path.lstrip("/"))
    elif tool == "bsdtar":
        result = _run([executable, "-tf", str(iso_path)])
        paths = {line.removeprefix("./").rstrip("/") for line in _decoded_lines(result, tool)}
    else:
        raise ValueError(f"unknown tool {tool}")
    paths.discard("")
    paths.discard(".")
    return paths


def tool_extract(tool: str, iso_path: Path, destination: Path) -> dict[str, bytes]:
    """Extract the whole image with xorriso or bsdtar; return {relative path: content}."""
    executable = require_tool(tool)
    destination.mkdir(parents=True, exist_ok=True)
    if tool == "xorriso":
        args = [executable, "-osirrox", "on", "-indev", str(iso_path), "-extract", "/", str(destination)]
    elif tool == "bsdtar":
        args = [executable, "-xf", str(iso_path), "-C", str(destination)]
    else:
        raise ValueError(f"{tool} cannot extract whole images here")
    result = _run(args)
    if result.returncode != 0:
        raise AssertionError(f"{tool} failed: {result.stderr.decode('utf-8', 'replace')}")
    contents: dict[str, bytes] = {}
    for directory, _dirs, files in os.walk(destination):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                contents[path.relative_to(destination).as_posix()] = path.read_bytes()
    return contents


def _decoded_lines(result: subprocess.CompletedProcess[bytes], tool: str) -> list[str]:
    if result.returncode != 0:
        raise AssertionError(
            f"{tool} exited with {result.returncode}: {result.stderr.decode('utf-8', 'replace')}"
        )
    return [line for line in result.stdout.decode("utf-8", "surrogateescape").splitlines() if line]
