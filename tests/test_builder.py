"""isos.engine: layout, names, booting, and the disk-order stream (no Django, no database).

The stream is checked byte for byte against pycdlib's own write_fp() of the same image,
and the images are read back through pycdlib and through isoinfo, xorriso and bsdtar.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import resource
import shutil
import stat
import tempfile
import time
import tracemalloc
import types
from collections.abc import Iterator
from pathlib import Path

import pycdlib
import pycdlib.headervd
import pytest

from isos.engine import IsoImage, SourceError, StreamError, build_iso, describe_boot, stream
from isos.engine.stream import SMALLEST_CHUNK
from tests.support.isoread import (
    TOOLS,
    boot_info_checksum,
    eltorito_entries,
    iso9660_paths,
    joliet_paths,
    read_rr_files,
    read_rr_tree,
    root_directory_records,
    tool_extract,
    tool_listing,
)
from tests.support.processes import open_descriptor_targets
from tests.support.sources import (
    SYSTEM_ISOLINUX_BIN,
    copy_isolinux_bin,
    make_source_tree,
    pseudo_random_bytes,
    tree_digest,
)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SECTOR = 2048
# Debian's isolinux.bin is isohybrid-capable, so the ISO gets a hybrid MBR (the stand-in
# bytes used when it is not installed are not).
BIOS_BOOT = "BIOS El Torito: isolinux/isolinux.bin" + (
    "; hybrid MBR" if SYSTEM_ISOLINUX_BIN.is_file() else ""
)

EXTRAS = {
    "ks_scripts/network.cfg": b'IPADDR="1.3.3.7"\nNETMASK="255.255.255.255"\nDHCP="no"',
    "ks_scripts/mgmt_network.cfg": b'IPADDR=""\nNETMASK=""\nGATEWAY=""\nDEVICE=""',
    "ks_scripts/disk.cfg": b'boot_drives="sda"',
    "ks_scripts/password.cfg": b"rootpw --iscrypted $6$salt$hash\n",
    "ks_scripts/state.out": b"built from centos72, BIOS El Torito\n",
}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def stream_bytes(image: IsoImage) -> bytes:
    return b"".join(image)


def reference_bytes(image: IsoImage) -> bytes:
    sink = io.BytesIO()
    image.write_reference(sink)
    return sink.getvalue()


def build_to_file(source: Path, extras: dict[str, bytes], target: Path) -> IsoImage:
    """Build, stream to ``target``, check it against write_reference, return the image."""
    image = build_iso(source, extras)
    data = stream_bytes(image)
    assert len(data) == image.size
    assert data == reference_bytes(image)
    target.write_bytes(data)
    return image


def expected_view(source: Path, extras: dict[str, bytes], *, bootable: bool) -> dict[str, object]:
    """What the Rock Ridge view of the ISO must hold: files, dirs and symlinks."""
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    symlinks: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(source):
        for name in dirnames + filenames:
            path = Path(directory, name)
            rel = path.relative_to(source).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                symlinks[rel] = os.readlink(path)
            elif stat.S_ISDIR(mode):
                dirs.add(rel)
            elif stat.S_ISREG(mode):
                files[rel] = path.read_bytes()
    for rel, content in extras.items():
        files[rel] = content
        parts = rel.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if bootable:
        files.pop("isolinux/boot.cat", None)
    return {"files": files, "dirs": dirs, "symlinks": symlinks}


def source_fds(prefix: Path) -> list[str]:
    """Open descriptors of this process that point into ``prefix``."""
    return [target for target in open_descriptor_targets() if target.startswith(str(prefix))]


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")


@pytest.fixture(autouse=True)
def frozen_volume_descriptor_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """pycdlib stamps the volume descriptors' modification date when it writes them
    (headervd's record() calls time.time()): the stream renders them at build time, the
    reference at write time, so the two differ once a second boundary passes between
    them. Freeze that one clock (only pycdlib's volume descriptors see it)."""
    monkeypatch.setattr(pycdlib.headervd, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source_tree(tmp_path / "src")


# --------------------------------------------------------------------------------------
# the stream is pycdlib's image, byte for byte
# --------------------------------------------------------------------------------------


def test_stream_equals_reference_plain_tree(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src", with_isolinux=False)
    with build_iso(source, {}) as image:
        data = stream_bytes(image)
        assert image.boot_description == "not bootable (no isolinux/isolinux.bin)"
        assert len(data) == image.size
        assert image.size % SECTOR == 0
        assert data == reference_bytes(image)


def chunk_sizes(largest: int) -> set[int]:
    """The sizes a full chunk may have: SMALLEST_CHUNK (a slow reader's) or ``largest``."""
    return {min(SMALLEST_CHUNK, largest), largest}


def test_chunks_follow_the_reader(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow reader gets small chunks (little memory held per slow download), a fast one
    chunks that grow to chunk_size (little Python per byte)."""
    # Judged over 0.1 ms instead of 250: an ISO of some MB is read fast for long enough.
    monkeypatch.setattr(stream, "READER_WINDOW", 0.0001)
    big = source / "images" / "big.img"
    big.write_bytes(pseudo_random_bytes("big", 24 * MiB))
    with build_iso(source, EXTRAS, chunk_size=1 * MiB) as image:
        chunks = iter(image)
        slow = []
        for _ in range(8):
            slow.append(len(next(chunks)))
            time.sleep(0.05)  # 64 KiB in 50 ms: about 1.3 MB/s, a BMC's pace
        fast = [len(chunk) for chunk in chunks]
    # (One may end short, where the first source file's data begins.)
    assert max(slow) == SMALLEST_CHUNK and slow.count(SMALLEST_CHUNK) >= 7, slow
    assert fast.count(1 * MiB) >= 4, fast


@pytest.mark.parametrize("chunk_size", [1 * MiB, 4 * MiB, SECTOR, 777])
def test_stream_equals_reference_with_boot_and_extras(source: Path, chunk_size: int) -> None:
    with build_iso(source, EXTRAS, chunk_size=chunk_size) as image:
        chunks = list(image)
        assert image.boot_description == BIOS_BOOT
        # Chunks are full (of a size following the reader: 64 KiB, or chunk_size once fast),
        # but for the last one and the one that ends where the first source file's data
        # begins (sent before that file is opened).
        assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
        full = chunk_sizes(chunk_size)
        assert len([chunk for chunk in chunks[:-1] if len(chunk) not in full]) <= 1
        data = b"".join(chunks)
        assert len(data) == image.size
        assert data == reference_bytes(image)


@pytest.mark.parametrize("boot_size", [40, 2048, 24 * KiB + 1])
@pytest.mark.parametrize("last_size", [0, 1, 4096])
def test_stream_equals_reference_at_the_edges(tmp_path: Path, boot_size: int, last_size: int) -> None:
    """A boot file shorter than its boot info table, or filling whole blocks; a last
    file ending exactly on a block boundary (pycdlib then skips its final padding byte)."""
    source = tmp_path / "src"
    (source / "isolinux").mkdir(parents=True)
    (source / "isolinux/isolinux.bin").write_bytes(pseudo_random_bytes("boot", boot_size))
    (source / "zzz").mkdir()
    (source / "zzz/last.bin").write_bytes(pseudo_random_bytes("last", last_size) + b"\xff"[:last_size])
    with build_iso(source, {}, chunk_size=3000) as image:
        data = stream_bytes(image)
        assert len(data) == image.size
        assert data == reference_bytes(image)


def test_first_chunk_needs_no_source_file(tmp_path: Path) -> None:
    """Everything before the first file's data goes out without reading a source file:
    the first byte does not wait on the disk, and a vanished tree fails only later."""
    source = make_source_tree(tmp_path / "src")
    with build_iso(source, EXTRAS) as image:
        source.rename(tmp_path / "gone")
        stream = iter(image)
        first = next(stream)
        assert 0 < len(first) < image.size
        assert first[16 * SECTOR + 1 : 16 * SECTOR + 6] == b"CD001"
        with pytest.raises(StreamError, match="cannot read"):
            for _chunk in stream:
                pass


def test_image_is_iterated_once_and_close_is_idempotent(source: Path) -> None:
    image = build_iso(source, EXTRAS)
    next(iter(image))
    with pytest.raises(RuntimeError, match="only once"):
        iter(image)
    image.close()
    image.close()
    with pytest.raises(RuntimeError, match="closed"):
        iter(image)
    with pytest.raises(RuntimeError, match="closed"):
        image.write_reference(io.BytesIO())


def test_two_builds_are_identical_whatever_the_creation_order(tmp_path: Path, frozen_clock: None) -> None:
    names = [f"dir{i % 3}/file-{i:02d}.txt" for i in range(20)] + ["README", "readme", "a-b", "a_b"]
    first, second = tmp_path / "first", tmp_path / "second"
    for root, order in ((first, names), (second, list(reversed(names)))):
        for rel in order:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rel.encode())
    with build_iso(first, EXTRAS) as one, build_iso(second, EXTRAS) as two:
        assert stream_bytes(one) == stream_bytes(two)


# --------------------------------------------------------------------------------------
# what the ISO holds
# --------------------------------------------------------------------------------------


def test_every_file_reads_back_with_pycdlib(source: Path, tmp_path: Path) -> None:
    before = tree_digest(source)
    build_to_file(source, EXTRAS, tmp_path / "out.iso").close()
    expected = expected_view(source, EXTRAS, bootable=True)
    files = read_rr_files(tmp_path / "out.iso")
    catalog = files.pop("isolinux/boot.cat")
    assert catalog[0] == 1 and catalog[30:32] == b"\x55\xaa"  # El Torito validation entry
    boot_file = files.pop("isolinux/isolinux.bin")
    source_boot_file = expected["files"].pop("isolinux/isolinux.bin")  # type: ignore[attr-defined]
    assert boot_file[:8] == source_boot_file[:8] and boot_file[64:] == source_boot_file[64:]
    assert files == expected["files"]
    tree = read_rr_tree(tmp_path / "out.iso")
    assert tree["dirs"] == expected["dirs"]
    assert tree["modes"]["isolinux/vmlinuz"] == (source / "isolinux/vmlinuz").stat().st_mode
    assert tree["modes"]["ks_scripts/network.cfg"] == 0o100444
    assert tree_digest(source) == before


def test_common_names_stay_readable(source: Path, tmp_path: Path) -> None:
    build_to_file(source, EXTRAS, tmp_path / "out.iso").close()
    names = iso9660_paths(tmp_path / "out.iso")
    for expected in (
        "/ISOLINUX/ISOLINUX.BIN;1",
        "/ISOLINUX/VMLINUZ.;1",
        "/ISOLINUX/BOOT.CAT;1",
        "/KS_SCRIPTS/NETWORK.CFG;1",
        "/KS_SCRIPTS/MGMT_NETWORK.CFG;1",
        "/KS_SCRIPTS/KS.CFG;1",
        "/IMAGES/INSTALL.IMG;1",
        "/_TREEINFO.;1",
        "/EULA.;1",
        "/PACKAGES/A/ACL_2_2_51_14_EL7_X86_64.RPM;1",
    ):
        assert expected in names
    assert "/isolinux/isolinux.bin" in joliet_paths(tmp_path / "out.iso")


def test_extra_file_replaces_source_file_which_stays_untouched(source: Path, tmp_path: Path) -> None:
    before = tree_digest(source)
    original = (source / "ks_scripts/ks.cfg").read_bytes()
    extras = {**EXTRAS, "ks_scripts/ks.cfg": b"# generated for this request\n"}
    build_to_file(source, extras, tmp_path / "out.iso").close()
    files = read_rr_files(tmp_path / "out.iso")
    assert files["ks_scripts/ks.cfg"] == b"# generated for this request\n"
    assert sorted(p for p in files if p.startswith("ks_scripts/")) == sorted(extras)
    assert (source / "ks_scripts/ks.cfg").read_bytes() == original
    assert tree_digest(source) == before


def test_extra_files_create_missing_directories(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "isolinux").mkdir(parents=True)
    copy_isolinux_bin(source / "isolinux/isolinux.bin")
    extras = {"ks_scripts/network.cfg": b"x", "deep/er/still/file.txt": b"y"}
    build_to_file(source, extras, tmp_path / "out.iso").close()
    names = iso9660_paths(tmp_path / "out.iso")
    assert {"/KS_SCRIPTS", "/KS_SCRIPTS/NETWORK.CFG;1", "/DEEP/ER/STILL/FILE.TXT;1"} <= names
    files = read_rr_files(tmp_path / "out.iso")
    assert files["ks_scripts/network.cfg"] == b"x" and files["deep/er/still/file.txt"] == b"y"


@pytest.mark.tools
@pytest.mark.parametrize("tool", TOOLS)
def test_tools_list_every_path(source: Path, tmp_path: Path, tool: str) -> None:
    (source / "isolinux/boot.cat").write_bytes(b"stale catalog from an old build")
    build_to_file(source, EXTRAS, tmp_path / "out.iso").close()
    expected = expected_view(source, EXTRAS, bootable=True)
    paths = set(expected["files"]) | expected["dirs"] | {"isolinux/boot.cat"}  # type: ignore[operator]
    assert tool_listing(tool, tmp_path / "out.iso") == paths


@pytest.mark.tools
@pytest.mark.parametrize("tool", ["xorriso", "bsdtar"])
def test_tools_extract_every_file(source: Path, tmp_path: Path, tool: str) -> None:
    build_to_file(source, EXTRAS, tmp_path / "out.iso").close()
    expected = expected_view(source, EXTRAS, bootable=True)["files"]
    extracted = tool_extract(tool, tmp_path / "out.iso", tmp_path / "x")
    boot_file = extracted.pop("isolinux/isolinux.bin")
    source_boot_file = expected.pop("isolinux/isolinux.bin")  # type: ignore[attr-defined]
    assert boot_file[64:] == source_boot_file[64:]
    extracted.pop("isolinux/boot.cat")
    assert extracted == expected


# --------------------------------------------------------------------------------------
# booting
# --------------------------------------------------------------------------------------


def test_eltorito_entry_and_boot_info_table_patched_in_output_only(source: Path, tmp_path: Path) -> None:
    (source / "isolinux/boot.cat").write_bytes(b"stale catalog from an old build")
    before = tree_digest(source)
    source_boot_file = (source / "isolinux/isolinux.bin").read_bytes()
    build_to_file(source, EXTRAS, tmp_path / "out.iso").close()

    (entry,) = eltorito_entries(tmp_path / "out.iso")
    iso = pycdlib.PyCdlib()
    iso.open(str(tmp_path / "out.iso"))
    try:
        boot_extent = iso.get_record(iso_path="/ISOLINUX/ISOLINUX.BIN;1").extent_location()
        catalog_extent = iso.get_record(iso_path="/ISOLINUX/BOOT.CAT;1").extent_location()
        isolinux_children = [c.file_identifier() for c in iso.list_children(iso_path="/ISOLINUX")]
    finally:
        iso.close()
    assert isolinux_children.count(b"BOOT.CAT;1") == 1  # the catalog replaced the stale file
    assert entry["platform_id"] == 0 and entry["bootable"]
    assert entry["media_type"] == 0  # no emulation
    assert entry["sector_count"] == 4
    assert entry["load_rba"] == boot_extent
    assert entry["catalog_rba"] == catalog_extent
    assert entry["boot_info_table"] == {
        "pvd_lba": 16,
        "file_lba": boot_extent,
        "file_length": len(source_boot_file),
        "checksum": boot_info_checksum(source_boot_file),
    }
    with open(tmp_path / "out.iso", "rb") as image:
        image.seek(boot_extent * SECTOR)
        written = image.read(len(source_boot_file))
    assert written[:8] == source_boot_file[:8] and written[64:] == source_boot_file[64:]
    assert written[8:64] != source_boot_file[8:64]
    assert (source / "isolinux/isolinux.bin").read_bytes() == source_boot_file
    assert tree_digest(source) == before


def test_tree_without_isolinux_is_not_bootable(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src", with_isolinux=False)
    image = build_to_file(source, EXTRAS, tmp_path / "out.iso")
    assert image.boot_description == "not bootable (no isolinux/isolinux.bin)"
    image.close()
    assert eltorito_entries(tmp_path / "out.iso") == []
    assert not any("BOOT.CAT" in p for p in iso9660_paths(tmp_path / "out.iso"))


def test_describe_boot_agrees_with_the_build(tmp_path: Path) -> None:
    bootable = make_source_tree(tmp_path / "bootable")
    plain = make_source_tree(tmp_path / "plain", with_isolinux=False)
    linked = make_source_tree(tmp_path / "linked", with_isolinux=False)
    os.symlink(bootable / "isolinux", linked / "isolinux")  # a symlink is not followed
    for source in (bootable, plain, linked):
        with build_iso(source, EXTRAS) as image:
            assert describe_boot(source) == image.boot_description
    assert describe_boot(bootable) == BIOS_BOOT
    assert describe_boot(linked) == "not bootable (no isolinux/isolinux.bin)"
    assert describe_boot(tmp_path / "missing") == "not bootable (no isolinux/isolinux.bin)"


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------

AWKWARD_FILES = [
    "a" * 196 + ".cfg",  # 200 characters
    "ü" * 120 + ".txt",  # 244 bytes of UTF-8
    "archive.tar.gz",
    "v1.2.3.release.notes.txt",
    "with space.txt",
    "  leading spaces",
    "trailing dot.",
    ".hidden",
    "Ünïcödé файл.txt",
    "日本語のファイル.txt",
    "rocket 🚀.txt",  # outside the BMP: not representable in Joliet
    "README",
    "readme",
    "ReadMe",
    "a-b.txt",
    "a_b.txt",
    "a b.txt",
    "x" * 40 + "1.txt",
    "x" * 40 + "2.txt",
    "y" * 70 + "1.txt",  # same first 64 Joliet characters as the next one
    "y" * 70 + "2.txt",
    "what?.txt",
    "a:b;c*d\\e.txt",
    "it's.txt",
    "ext.averyveryverylongextensionname",
    "foo",
    "same_name",
    "Foo/inside.txt",
    "same.name/inside.txt",
    "sub/README",
    "sub/readme",
]
DEEP_DIR = "/".join(["deep"] + [f"level{i:02d}" for i in range(1, 13)])  # 13 levels
AWKWARD_FILES += [
    f"{DEEP_DIR}/bottom.txt",
    "deep/level01/level02/level03/level04/level05/level06/level07/mid.txt",
]
SYMLINKS = {
    "link-to-file": "README",
    "link-to-dir": "Foo",
    "loop": ".",
    "dangling": "nowhere/at/all",
    "absolute": "/etc/hostname",
    "Foo/up": "..",
}


@pytest.fixture
def awkward_source(tmp_path: Path) -> Path:
    source = tmp_path / "awkward"
    for rel in AWKWARD_FILES:
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content of {rel}\n".encode())
    for rel, target in SYMLINKS.items():
        os.symlink(target, source / rel)
    os.mkfifo(source / "pipe")  # skipped: no place for a fifo on a CD
    return source


def test_awkward_names_read_back_under_their_real_names(awkward_source: Path, tmp_path: Path) -> None:
    before = tree_digest(awkward_source)
    build_to_file(awkward_source, {}, tmp_path / "out.iso").close()
    expected = expected_view(awkward_source, {}, bootable=False)
    files = read_rr_files(tmp_path / "out.iso")
    assert files == expected["files"]
    tree = read_rr_tree(tmp_path / "out.iso")
    assert tree["symlinks"] == SYMLINKS
    assert tree["dirs"] - {".rr_moved"} == expected["dirs"]
    assert "pipe" not in files and "pipe" not in tree["symlinks"]
    assert tree_digest(awkward_source) == before


@pytest.mark.tools
def test_awkward_names_listed_by_xorriso_without_errors(awkward_source: Path, tmp_path: Path) -> None:
    build_to_file(awkward_source, {}, tmp_path / "out.iso").close()
    expected = expected_view(awkward_source, {}, bootable=False)
    listing = tool_listing("xorriso", tmp_path / "out.iso") - {".rr_moved"}
    assert listing == set(expected["files"]) | expected["dirs"] | set(SYMLINKS)  # type: ignore[operator]


def test_iso9660_names_are_valid_and_unique(awkward_source: Path, tmp_path: Path) -> None:
    build_to_file(awkward_source, {}, tmp_path / "out.iso").close()
    paths = iso9660_paths(tmp_path / "out.iso")
    file_name = re.compile(r"^([A-Z0-9_]+)\.([A-Z0-9_]*);1$")
    dir_name = re.compile(r"^[A-Z0-9_]{1,31}$")
    by_parent: dict[str, list[str]] = {}
    for path in paths:
        parent, _, name = path.rpartition("/")
        by_parent.setdefault(parent, []).append(name.removesuffix(";1").removesuffix("."))
        if (match := file_name.match(name)) is not None:
            assert len(match[1]) + len(match[2]) <= 30, name
        else:
            assert dir_name.match(name), name
    for parent, names in by_parent.items():
        assert len(names) == len(set(names)), parent
    # Every entry is there, none dropped or merged; plus the relocation folder, and a
    # placeholder where the relocated folder (depth 8) used to be.
    expected = expected_view(awkward_source, {}, bootable=False)
    real_entries = len(expected["files"]) + len(expected["dirs"]) + len(SYMLINKS)  # type: ignore[arg-type]
    assert len(paths) == real_entries + 2
    assert "/RR_MOVED" in paths
    # Collisions get numeric suffixes, in sorted order of the real names.
    assert {"/README.;1", "/README_1.;1", "/README_2.;1"} <= paths
    assert {"/A_B.TXT;1", "/A_B_1.TXT;1", "/A_B_2.TXT;1"} <= paths
    assert "/" + "A" * 27 + ".CFG;1" in paths  # name + extension: 30
    assert "/FOO" in paths and "/FOO_1.;1" in paths  # "Foo" (dir) sorts before "foo" (file)


def test_joliet_names_are_valid_and_unique(awkward_source: Path, tmp_path: Path) -> None:
    build_to_file(awkward_source, {}, tmp_path / "out.iso").close()
    paths = joliet_paths(tmp_path / "out.iso")
    by_parent: dict[str, list[str]] = {}
    for path in paths:
        parent, _, name = path.rpartition("/")
        by_parent.setdefault(parent, []).append(name.casefold())
        assert len(name) <= 64, name
        assert not set(name) & set("*/:;?\\"), name
        assert all(ord(ch) <= 0xFFFF for ch in name), name
    for parent, names in by_parent.items():
        assert len(names) == len(set(names)), parent
    expected = expected_view(awkward_source, {}, bootable=False)
    assert len(paths) == len(expected["files"]) + len(expected["dirs"])  # type: ignore[arg-type]
    assert "/rocket _.txt" in paths
    assert "/what_.txt" in paths and "/a_b_c_d_e.txt" in paths
    assert "/Ünïcödé файл.txt" in paths
    assert {"/README", "/readme~1", "/ReadMe~2"} <= paths or {"/README", "/ReadMe~1", "/readme~2"} <= paths
    long_y = sorted(p for p in paths if p.startswith("/yyy"))
    assert len(long_y) == 2 and all(p.endswith(".txt") for p in long_y) and long_y[1].endswith("~1.txt")


def test_undecodable_file_name_gets_a_replacement_character(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    try:
        (source / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    except (OSError, UnicodeError):
        pytest.skip("the filesystem refuses non-UTF-8 names")
    (source / "café.txt").write_bytes(b"utf-8 name")
    build_to_file(source, {}, tmp_path / "out.iso").close()
    assert read_rr_files(tmp_path / "out.iso") == {
        "caf\ufffd.txt": b"latin-1 name",
        "café.txt": b"utf-8 name",
    }


def test_deep_folders_are_relocated_and_read_back(awkward_source: Path, tmp_path: Path) -> None:
    build_to_file(awkward_source, {}, tmp_path / "out.iso").close()
    files = read_rr_files(tmp_path / "out.iso")
    assert files[f"{DEEP_DIR}/bottom.txt"] == f"content of {DEEP_DIR}/bottom.txt\n".encode()
    names = iso9660_paths(tmp_path / "out.iso")
    assert any(p.startswith("/RR_MOVED/") for p in names)
    assert max(p.count("/") for p in names) <= 8  # ECMA-119 keeps 8 levels


# --------------------------------------------------------------------------------------
# size limits and memory
# --------------------------------------------------------------------------------------


class OrderedHashSink:
    """A write-only seekable sink for write_fp() that hashes the image it is given.

    Writes before ``data_start`` (metadata, written out of order) are kept in memory;
    from there on writes must come in increasing offsets (gaps are zeros), which holds
    when the files were added in disk order. Memory stays small whatever the size.
    """

    def __init__(self, data_start: int) -> None:
        self.head = bytearray(data_start)
        self.digest = hashlib.sha256()
        self.sealed_to = -1  # hashed up to here, once data started
        self.position = 0
        self.end = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.end}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def write(self, data: bytes) -> int:
        start, end = self.position, self.position + len(data)
        if end <= len(self.head) and self.sealed_to < 0:
            self.head[start:end] = data
        else:
            if self.sealed_to < 0:
                self.digest.update(self.head)
                self.sealed_to = len(self.head)
            assert start >= self.sealed_to, "write_fp went back into hashed data"
            self._zeros(start - self.sealed_to)
            self.digest.update(data)
            self.sealed_to = end
        self.position, self.end = end, max(self.end, end)
        return len(data)

    def _zeros(self, count: int) -> None:
        zeros = bytes(min(count, MiB))
        while count > 0:
            self.digest.update(zeros[: min(count, MiB)])
            count -= MiB

    def hexdigest(self, size: int) -> str:
        self._zeros(size - self.sealed_to)
        return self.digest.hexdigest()


def make_sparse(path: Path, size: int, markers: dict[int, bytes]) -> None:
    """A sparse file of ``size`` bytes with ``markers`` written at their offsets."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in markers.items():
            handle.seek(offset)
            handle.write(data)
    if os.stat(path).st_blocks * 512 > size // 4:
        pytest.skip("this filesystem cannot make sparse files")


def test_file_over_4_gib_streams_byte_identical(tmp_path: Path) -> None:
    """One sparse 4 GiB + 3 MiB file: multi-extent records, size, and full-image hashes."""
    source = tmp_path / "src"
    source.mkdir()
    size = 4 * GiB + 3 * MiB + 123
    markers = {0: b"HEAD" * 1024, 4 * GiB - 2: b"across the 4 GiB line", size - 9: b"TAIL-MARK"}
    make_sparse(source / "huge.img", size, markers)
    (source / "zz-readme.txt").write_bytes(b"after the huge file, in add order and disk order\n")
    extras = {"ks_scripts/network.cfg": b'DHCP="yes"'}

    with build_iso(source, extras, chunk_size=MiB) as image:
        assert image.size > size
        # Our stream: hash it, and keep a sparse copy on disk to read back.
        streamed = hashlib.sha256()
        received = 0
        zeros = bytes(MiB)
        with open(tmp_path / "out.iso", "wb") as copy:
            for chunk in image:
                streamed.update(chunk)
                received += len(chunk)
                if chunk == zeros[: len(chunk)]:
                    copy.seek(len(chunk), os.SEEK_CUR)
                else:
                    copy.write(chunk)
            copy.truncate(received)
        assert received == image.size

        # ISO9660 multi-extent: two directory records, the first flagged "not final".
        huge = [r for r in root_directory_records(tmp_path / "out.iso") if r["name"] == b"HUGE.IMG;1"]
        assert len(huge) == 2
        assert huge[0]["flags"] & 0x80 and not huge[1]["flags"] & 0x80
        assert huge[0]["length"] + huge[1]["length"] == size
        assert huge[1]["extent"] == huge[0]["extent"] + huge[0]["length"] // SECTOR
        data_start = huge[0]["extent"] * SECTOR
        with open(tmp_path / "out.iso", "rb") as copy:
            for offset, marker in markers.items():
                copy.seek(data_start + offset)
                assert copy.read(len(marker)) == marker

        # pycdlib's own writer over the same layout, hashed the same way.
        sink = OrderedHashSink(data_start)
        image.write_reference(sink)  # type: ignore[arg-type]
        assert sink.hexdigest(image.size) == streamed.hexdigest()


def test_memory_stays_flat_while_streaming_200_mb(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    markers = {i * 10 * MiB: pseudo_random_bytes(str(i), 64 * KiB) for i in range(20)}
    make_sparse(source / "images" / "big.img", 200 * MiB, markers)
    tracemalloc.start()
    try:
        with build_iso(source, EXTRAS) as image:
            received = sum(len(chunk) for chunk in image)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == image.size > 200 * MiB
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


@needs_proc
def test_many_files_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    """add_file() keeps no file open; the stream opens one file at a time (and holds the
    descriptors of that file's folders, which it opens files from: a few, never more
    than the tree is deep)."""
    source = make_source_tree(tmp_path / "src")
    for i in range(600):
        (source / "Packages" / f"pkg-{i:04d}.rpm").write_bytes(f"package {i}\n".encode() * (i % 7))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 40, hard))
    try:
        with build_iso(source, EXTRAS, chunk_size=4 * KiB) as image:
            most_open = 0
            digest = hashlib.sha256()
            for chunk in image:
                digest.update(chunk)
                files = [target for target in source_fds(source) if not os.path.isdir(target)]
                most_open = max(most_open, len(files))
                assert len(source_fds(source)) - len(files) <= 3  # the root and at most two folders
            reference = hashlib.sha256(reference_bytes(image)).hexdigest()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert most_open <= 1
    assert digest.hexdigest() == reference


@needs_proc
def test_close_mid_stream_closes_the_source_file(source: Path) -> None:
    (source / "images/install.img").write_bytes(pseudo_random_bytes("big", 4 * MiB))
    image = build_iso(source, EXTRAS, chunk_size=64 * KiB)
    stream = iter(image)
    received = 0
    while not source_fds(source):
        received += len(next(stream))
    assert received < image.size
    image.close()
    assert source_fds(source) == []


# --------------------------------------------------------------------------------------
# errors: before the first byte (SourceError) and while streaming (StreamError)
# --------------------------------------------------------------------------------------


def big_file_tree(tmp_path: Path) -> tuple[Path, Path]:
    source = make_source_tree(tmp_path / "src")
    big = source / "images" / "install.img"
    big.write_bytes(pseudo_random_bytes("install", 4 * MiB))
    return source, big


def test_file_shrunk_after_layout_raises_stream_error(tmp_path: Path) -> None:
    source, big = big_file_tree(tmp_path)
    with build_iso(source, EXTRAS) as image:
        os.truncate(big, 1000)
        received = 0
        with pytest.raises(StreamError, match=r"images/install\.img shrank"):
            for chunk in image:
                received += len(chunk)
        assert received < image.size


def test_file_shrinking_while_being_read_raises_stream_error(tmp_path: Path) -> None:
    source, big = big_file_tree(tmp_path)
    with build_iso(source, EXTRAS, chunk_size=64 * KiB) as image:
        stream = iter(image)
        received = 0
        while received < image.size // 2:  # well inside the 4 MiB file
            received += len(next(stream))
        os.truncate(big, MiB)
        with pytest.raises(StreamError, match="shrank"):
            for chunk in stream:
                received += len(chunk)
        assert received < image.size


def test_file_vanished_after_layout_raises_stream_error(tmp_path: Path) -> None:
    source, big = big_file_tree(tmp_path)
    with build_iso(source, EXTRAS) as image:
        big.unlink()
        with pytest.raises(StreamError, match=r"cannot read images/install\.img"):
            for _chunk in image:
                pass


def test_file_grown_after_layout_raises_stream_error(tmp_path: Path) -> None:
    """A file rewritten in place with another size: never send a truncated copy."""
    source, big = big_file_tree(tmp_path)
    with build_iso(source, EXTRAS) as image:
        with open(big, "ab") as handle:
            handle.write(b"appended later" * 1000)
        received = 0
        with pytest.raises(StreamError, match=r"images/install\.img grew after layout"):
            for chunk in image:
                received += len(chunk)
        assert received < image.size


@pytest.mark.timeout(30)
def test_file_replaced_by_a_fifo_after_layout_fails_instead_of_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: the stream must not hang on one."""
    source, big = big_file_tree(tmp_path)
    with build_iso(source, EXTRAS) as image:
        big.unlink()
        os.mkfifo(big)
        with pytest.raises(StreamError, match=r"images/install\.img is no longer a regular file"):
            for _chunk in image:
                pass


def test_missing_source_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot be read") as error:
        build_iso(tmp_path / "nope", EXTRAS)
    assert str(tmp_path) not in str(error.value)


def test_source_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SourceError, match="not a directory"):
        build_iso(tmp_path / "file", EXTRAS)


def test_extra_file_under_a_source_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "ks_scripts").write_bytes(b"a file, not a folder")
    with pytest.raises(SourceError, match="ks_scripts is not a directory"):
        build_iso(source, EXTRAS)


def test_extra_file_over_a_source_directory(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    with pytest.raises(SourceError, match="images is a directory"):
        build_iso(source, {"images": b"x"})


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../escape", "a//b", "a/./b", "ks_scripts/"])
def test_malformed_extra_file_path(source: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        build_iso(source, {bad: b"x"})


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """As root, run the block with the effective ids of nobody (else as we are)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_unreadable_file_or_folder_raises_source_error() -> None:
    """Real permission denial: as root, the build runs with the effective ids of nobody.

    (Root reads everything, so chmod 000 alone proves nothing; the builder checks with
    the effective ids, which is what a portal worker running as a service user has.)
    """
    top = Path(tempfile.mkdtemp(prefix="iso-perm-"))  # under /tmp, so nobody can reach it
    try:
        top.chmod(0o755)
        source = make_source_tree(top / "src")
        secret = source / "images" / "secret.img"
        secret.write_bytes(b"no one may read this")
        secret.chmod(0o000)
        with (
            unprivileged(),
            pytest.raises(SourceError, match=r"cannot read file images/secret\.img") as error,
        ):
            build_iso(source, EXTRAS)
        assert str(top) not in str(error.value)

        secret.chmod(0o644)
        locked = source / "Packages" / "locked"
        locked.mkdir()
        locked.chmod(0o000)
        with unprivileged(), pytest.raises(SourceError, match="cannot list directory Packages/locked"):
            build_iso(source, EXTRAS)
        locked.chmod(0o755)
        with unprivileged(), build_iso(source, EXTRAS) as image:  # readable again
            assert sum(len(chunk) for chunk in image) == image.size
    finally:
        shutil.rmtree(top)
