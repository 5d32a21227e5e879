"""isos.engine booting: UEFI El Torito, hybrid MBR and GPT, and the source's settings file.

Images are read back raw (the boot catalog, the MBR, both GPTs) and through xorriso's
``-report_el_torito`` and ``-report_system_area``, which flag a broken partition table;
the stream is checked against pycdlib's own writer (plus our GPT fix) byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pycdlib
import pycdlib.headervd
import pytest

from isos.engine import IsoImage, SourceError, build_iso, describe_boot, make_layout_template
from isos.engine.boot_plan import EFI_IMAGE_MAX
from isos.engine.layout_cache import LayoutCache
from isos.engine.layout_process import make_layout_template_in_child
from tests.support.isoread import SECTOR, eltorito_entries, read_rr_files
from tests.support.layouts import assert_same_layout_shape
from tests.support.sources import SYSTEM_ISOLINUX_BIN, make_source_tree, pseudo_random_bytes
from tests.support.tools import require_tool

EXTRAS = {
    "ks_scripts/network.cfg": b'IPADDR="1.3.3.7"\nNETMASK="255.255.255.0"\nDHCP="no"',
    "ks_scripts/state.out": b"built for a test\n",
}
GPT_HEADER = 92
# What xorriso prints about a damaged table: "GPT array CRC wrong", "GPT backup
# problems: Disk GUID differs (...), Array CRC ... wrong", "... damaged", "invalid".
XORRISO_COMPLAINT = re.compile(r"CRC|wrong|problem|differ|invalid|damaged|corrupt|broken", re.IGNORECASE)

# Debian's isolinux.bin (the isolinux package): without it, skip (or fail under ISOPORTAL_REQUIRE_TOOLS).
needs_isohybrid_isolinux = pytest.mark.usefixtures("system_isolinux_bin")


# pycdlib stamps dates: every layout here is made with the clock pinned (conftest).
pytestmark = pytest.mark.usefixtures("frozen_clock")


def make_efi_image(path: Path, kib: int = 1440) -> bytes:
    """A real FAT EFI System Partition image holding a dummy EFI/BOOT/BOOTX64.EFI."""
    for tool in ("mkfs.fat", "mmd", "mcopy"):
        require_tool(tool)
    path.parent.mkdir(parents=True, exist_ok=True)
    loader = path.parent / "BOOTX64.EFI"
    loader.write_bytes(b"MZ" + pseudo_random_bytes("bootx64", 4000))
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for args in (
        ["mkfs.fat", "-C", str(path), str(kib)],
        ["mmd", "-i", str(path), "::/EFI", "::/EFI/BOOT"],
        ["mcopy", "-i", str(path), str(loader), "::/EFI/BOOT/BOOTX64.EFI"],
    ):
        subprocess.run(args, check=True, capture_output=True, env=env)
    loader.unlink()
    return path.read_bytes()


@pytest.fixture
def efi_source(tmp_path: Path) -> Path:
    """A tree with Debian's isolinux.bin and images/efiboot.img."""
    source = make_source_tree(tmp_path / "src")
    make_efi_image(source / "images/efiboot.img")
    return source


def stream_and_reference(image: IsoImage) -> tuple[bytes, bytes]:
    data = b"".join(image)
    sink = io.BytesIO()
    image.write_reference(sink)
    return data, sink.getvalue()


def build_file(source: Path, target: Path, extras: dict[str, bytes] | None = None) -> str:
    """Build, check the stream against the reference, write ``target``; the description."""
    with build_iso(source, EXTRAS if extras is None else extras) as image:
        data, reference = stream_and_reference(image)
        assert len(data) == image.size
        assert data == reference
        target.write_bytes(data)
        return image.boot_description


def xorriso_report(iso: Path, what: str) -> list[str]:
    """``xorriso -report_<what> plain``: its report lines; fails on any WARNING or worse."""
    xorriso = require_tool("xorriso")
    result = subprocess.run(
        [
            xorriso,
            "-abort_on",
            "NEVER",
            "-return_with",
            "WARNING",
            "32",
            "-indev",
            str(iso),
            f"-report_{what}",
            "plain",
        ],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        timeout=120,
        check=False,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    assert not re.search(r"\b(WARNING|SORRY|FAILURE|FATAL)\b", stderr), stderr
    return result.stdout.decode("utf-8", "replace").splitlines()


def fields(lines: list[str], label: str) -> list[list[str]]:
    """The whitespace-split values of every report line with this label."""
    return [line.split(":", 1)[1].split() for line in lines if line.split(":", 1)[0].strip() == label]


def extent_of(iso: Path, iso_path: str) -> int:
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        return int(reader.get_record(iso_path=iso_path).extent_location())
    finally:
        reader.close()


def gpt_header(data: bytes, lba: int) -> dict[str, int]:
    raw = data[lba * 512 : lba * 512 + GPT_HEADER]
    assert raw[:8] == b"EFI PART"
    (header_crc,) = struct.unpack_from("<I", raw, 16)
    current, backup, first_usable, last_usable = struct.unpack_from("<QQQQ", raw, 24)
    array_lba, entries, entry_size, array_crc = struct.unpack_from("<QIII", raw, 72)
    return {
        "header_crc": header_crc,
        "header_crc_ok": header_crc == zlib.crc32(raw[:16] + b"\0" * 4 + raw[20:]),
        "current": current,
        "backup": backup,
        "first_usable": first_usable,
        "last_usable": last_usable,
        "array_lba": array_lba,
        "entries": entries,
        "entry_size": entry_size,
        "array_crc": array_crc,
        "disk_guid": int.from_bytes(raw[56:72], "little"),
    }


# --------------------------------------------------------------------------------------
# UEFI El Torito
# --------------------------------------------------------------------------------------


@needs_isohybrid_isolinux
def test_uefi_entry_beside_the_bios_one(efi_source: Path, tmp_path: Path) -> None:
    efi_bytes = (efi_source / "images/efiboot.img").read_bytes()
    description = build_file(efi_source, tmp_path / "out.iso")
    assert description == (
        "BIOS El Torito: isolinux/isolinux.bin; UEFI El Torito: images/efiboot.img; hybrid MBR+GPT"
    )
    assert describe_boot(efi_source) == description

    bios, uefi = eltorito_entries(tmp_path / "out.iso")
    assert (bios["platform_id"], bios["media_type"], bios["sector_count"]) == (0, 0, 4)
    assert bios["load_rba"] == extent_of(tmp_path / "out.iso", "/ISOLINUX/ISOLINUX.BIN;1")
    assert uefi["platform_id"] == 0xEF and uefi["bootable"]
    assert uefi["media_type"] == 0  # no emulation
    assert uefi["sector_count"] == len(efi_bytes) // 512
    assert uefi["load_rba"] == extent_of(tmp_path / "out.iso", "/IMAGES/EFIBOOT.IMG;1")
    assert uefi["catalog_rba"] == extent_of(tmp_path / "out.iso", "/ISOLINUX/BOOT.CAT;1")
    # The image goes in as it is: no boot info table patched into it.
    assert read_rr_files(tmp_path / "out.iso")["images/efiboot.img"] == efi_bytes

    report = xorriso_report(tmp_path / "out.iso", "el_torito")
    assert fields(report, "El Torito cat path") == [["/isolinux/boot.cat"]]
    images = fields(report, "El Torito boot img")
    assert [row[:4] for row in images] == [["1", "BIOS", "y", "none"], ["2", "UEFI", "y", "none"]]
    assert images[1][6:] == [str(len(efi_bytes) // 512), str(uefi["load_rba"])]
    assert fields(report, "El Torito img path") == [
        ["1", "/isolinux/isolinux.bin"],
        ["2", "/images/efiboot.img"],
    ]
    assert fields(report, "El Torito img opts") == [["1", "boot-info-table", "isohybrid-suitable"]]


def test_uefi_alone_without_isolinux(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src", with_isolinux=False)
    make_efi_image(source / "EFI/BOOT/efiboot.img")  # the second conventional place
    description = build_file(source, tmp_path / "out.iso")
    assert description == describe_boot(source) == "UEFI El Torito: EFI/BOOT/efiboot.img"
    (uefi,) = eltorito_entries(tmp_path / "out.iso")
    assert uefi["platform_id"] == 0xEF and uefi["media_type"] == 0
    assert uefi["catalog_rba"] == extent_of(tmp_path / "out.iso", "/BOOT.CAT;1")
    report = xorriso_report(tmp_path / "out.iso", "el_torito")
    assert [row[:4] for row in fields(report, "El Torito boot img")] == [["1", "UEFI", "y", "none"]]
    # pycdlib's isohybrid needs an isolinux initial entry: no MBR, no GPT (docs/sources-and-booting.md).
    assert (tmp_path / "out.iso").read_bytes()[: SECTOR * 16].count(0) == SECTOR * 16


# --------------------------------------------------------------------------------------
# USB: the hybrid MBR and GPT
# --------------------------------------------------------------------------------------


@needs_isohybrid_isolinux
def test_system_area_has_mbr_and_gpt_that_xorriso_accepts(efi_source: Path, tmp_path: Path) -> None:
    build_file(efi_source, tmp_path / "out.iso")
    data = (tmp_path / "out.iso").read_bytes()
    efi_lba = extent_of(tmp_path / "out.iso", "/IMAGES/EFIBOOT.IMG;1") * 4
    efi_sectors = (efi_source / "images/efiboot.img").stat().st_size // 512
    iso_sectors = struct.unpack_from("<I", data, 16 * SECTOR + 80)[0] * 4

    report = xorriso_report(tmp_path / "out.iso", "system_area")
    complaints = [line for line in report if XORRISO_COMPLAINT.search(line)]
    assert complaints == []
    assert fields(report, "System area summary") == [["MBR", "isohybrid", "cyl-align-on", "GPT"]]
    mbr = fields(report, "MBR partition")
    assert mbr[0][:3] == ["1", "0x80", "0x00"] and mbr[0][3] == "0"
    assert mbr[1] == ["2", "0x00", "0xef", str(efi_lba), str(efi_sectors)]
    assert fields(report, "MBR partition path") == [["2", "/images/efiboot.img"]]
    assert fields(report, "GPT start and size") == [
        ["1", "64", str(iso_sectors - 64)],  # past the system area and its tables
        ["2", str(efi_lba), str(efi_sectors)],
    ]
    assert fields(report, "GPT partition path") == [["2", "/images/efiboot.img"]]
    lba_range = fields(report, "GPT lba range")
    assert lba_range == [["34", str(len(data) // 512 - 34), str(len(data) // 512 - 1)]]

    # The raw tables: the MBR boot code finds isolinux.bin; both GPT headers agree and
    # their CRCs cover the header and the whole 128-entry array.
    assert data[510:512] == b"\x55\xaa"
    assert (
        struct.unpack_from("<I", data, 432)[0]
        == extent_of(tmp_path / "out.iso", "/ISOLINUX/ISOLINUX.BIN;1") * 4
    )
    primary = gpt_header(data, 1)
    backup = gpt_header(data, primary["backup"])
    assert primary["backup"] == len(data) // 512 - 1 and backup["backup"] == 1
    assert primary["header_crc_ok"] and backup["header_crc_ok"]
    assert primary["disk_guid"] == backup["disk_guid"]
    for header in (primary, backup):
        start = header["array_lba"] * 512
        array = data[start : start + header["entries"] * header["entry_size"]]
        assert header["array_crc"] == zlib.crc32(array)
    assert data[2 * 512 : 2 * 512 + 128 * 128] == data[backup["array_lba"] * 512 : backup["current"] * 512]


@needs_isohybrid_isolinux
def test_pycdlib_alone_writes_a_gpt_xorriso_flags(efi_source: Path, tmp_path: Path) -> None:
    """Why the GPT headers are patched: pycdlib's own write_fp() gives the array CRC
    over the filled entries only and the backup GPT other GUIDs. Only the two headers'
    checksum fields differ from ours."""
    with build_iso(efi_source, EXTRAS) as image:
        ours, _ = stream_and_reference(image)
        assert image._iso is not None
        raw = io.BytesIO()
        image._iso.write_fp(raw)  # pycdlib alone, without the fixes write_reference() adds
    (tmp_path / "pycdlib.iso").write_bytes(raw.getvalue())
    report = xorriso_report(tmp_path / "pycdlib.iso", "system_area")
    assert any(line.startswith("GPT array CRC wrong") for line in report)

    backup = gpt_header(ours, 1)["backup"]
    differing = {i for i, (a, b) in enumerate(zip(ours, raw.getvalue(), strict=True)) if a != b}
    allowed = {base + i for base in (512, backup * 512) for i in (*range(16, 20), *range(88, 92))}
    assert differing and differing <= allowed


@needs_isohybrid_isolinux
def test_bios_only_hybrid_gets_an_mbr_and_no_gpt(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    assert build_file(source, tmp_path / "out.iso") == "BIOS El Torito: isolinux/isolinux.bin; hybrid MBR"
    report = xorriso_report(tmp_path / "out.iso", "system_area")
    assert [line for line in report if XORRISO_COMPLAINT.search(line)] == []
    assert fields(report, "System area summary") == [["MBR", "isohybrid", "cyl-align-on"]]
    assert fields(report, "MBR partition")[0][:3] == ["1", "0x80", "0x17"]
    assert fields(report, "GPT start and size") == []


def test_boot_file_not_built_for_isohybrid_makes_no_hybrid(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    (source / "isolinux/isolinux.bin").write_bytes(pseudo_random_bytes("not isohybrid", 24 * 1024))
    make_efi_image(source / "images/efiboot.img")
    description = build_file(source, tmp_path / "out.iso")
    assert description == describe_boot(source)
    assert description == "BIOS El Torito: isolinux/isolinux.bin; UEFI El Torito: images/efiboot.img"
    assert len(eltorito_entries(tmp_path / "out.iso")) == 2
    assert (tmp_path / "out.iso").read_bytes()[:512].count(0) == 512


@needs_isohybrid_isolinux
def test_image_size_counts_the_padding_to_a_whole_cylinder(efi_source: Path) -> None:
    with build_iso(efi_source, EXTRAS) as image:
        data, _ = stream_and_reference(image)
    volume = struct.unpack_from("<I", data, 16 * SECTOR + 80)[0] * SECTOR
    assert len(data) > volume
    assert len(data) % (64 * 32 * 512) == 0  # the usual geometry fits here
    assert data[volume : len(data) - 33 * 512].count(0) == len(data) - 33 * 512 - volume


@needs_isohybrid_isolinux
def test_backup_gpt_never_overwrites_the_last_file(efi_source: Path, tmp_path: Path) -> None:
    """An ISO ending right at a 1 MiB cylinder leaves no padding for the backup GPT:
    another geometry is chosen, and the last file's bytes stay whole."""
    filler = efi_source / "zzz" / "last.bin"
    filler.parent.mkdir()
    length = 1
    for _ in range(6):
        filler.write_bytes(pseudo_random_bytes("last", length))
        with build_iso(efi_source, EXTRAS) as image:
            volume = struct.unpack_from("<I", b"".join(image), 16 * SECTOR + 80)[0] * SECTOR
        short = -volume % (1 << 20)
        if short == 0:
            break
        length += short
    else:
        pytest.fail("could not make the volume end on a 1 MiB boundary")

    build_file(efi_source, tmp_path / "out.iso")
    report = xorriso_report(tmp_path / "out.iso", "system_area")
    assert [line for line in report if XORRISO_COMPLAINT.search(line)] == []
    assert fields(report, "MBR heads per cyl") != [["64"]]
    assert read_rr_files(tmp_path / "out.iso")["zzz/last.bin"] == filler.read_bytes()


# --------------------------------------------------------------------------------------
# The stream and the layout templates
# --------------------------------------------------------------------------------------


@needs_isohybrid_isolinux
@pytest.mark.parametrize("chunk_size", [1 << 20, SECTOR, 777])
def test_stream_equals_reference(efi_source: Path, chunk_size: int) -> None:
    with build_iso(efi_source, EXTRAS, chunk_size=chunk_size) as image:
        data, reference = stream_and_reference(image)
        assert len(data) == image.size
        assert data == reference


@needs_isohybrid_isolinux
@pytest.mark.parametrize("network", [b"x", b"y" * 2048, b'IPADDR="10.0.0.9"'])
def test_template_equals_fresh_build(efi_source: Path, network: bytes) -> None:
    extras = {**EXTRAS, "ks_scripts/network.cfg": network}
    template = make_layout_template(efi_source, list(extras))
    assert template.boot_description.endswith("hybrid MBR+GPT")
    with template.instantiate(extras, chunk_size=4096) as from_template:
        templated = b"".join(from_template)
        assert len(templated) == from_template.size
    with build_iso(efi_source, extras) as fresh:
        assert templated == b"".join(fresh)


@needs_isohybrid_isolinux
def test_two_builds_have_the_same_guids(efi_source: Path) -> None:
    """pycdlib draws them at random; they come from the layout instead."""
    with build_iso(efi_source, EXTRAS) as one, build_iso(efi_source, EXTRAS) as two:
        assert b"".join(one) == b"".join(two)


# --------------------------------------------------------------------------------------
# isoportal.json: naming the boot files when the convention does not fit
# --------------------------------------------------------------------------------------


def write_settings(source: Path, settings: object) -> None:
    (source / "isoportal.json").write_text(json.dumps(settings))


@needs_isohybrid_isolinux
def test_settings_name_the_boot_files_and_volume_id(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src", with_isolinux=False)
    (source / "boot/x86").mkdir(parents=True)
    (source / "boot/x86/loader.bin").write_bytes(SYSTEM_ISOLINUX_BIN.read_bytes())
    make_efi_image(source / "uefi/esp.img")
    make_efi_image(source / "images/efiboot.img")  # the convention, overruled
    write_settings(
        source,
        {
            "bios_boot_file": "boot/x86/loader.bin",
            "boot_catalog": "boot/x86/boot.catalog",
            "efi_image": "uefi/esp.img",
            "volume_id": "CentOS 7 x86_64",
        },
    )
    description = build_file(source, tmp_path / "out.iso")
    assert description == describe_boot(source)
    assert description == "BIOS El Torito: boot/x86/loader.bin; UEFI El Torito: uefi/esp.img; hybrid MBR+GPT"
    bios, uefi = eltorito_entries(tmp_path / "out.iso")
    assert bios["load_rba"] == extent_of(tmp_path / "out.iso", "/BOOT/X86/LOADER.BIN;1")
    assert uefi["load_rba"] == extent_of(tmp_path / "out.iso", "/UEFI/ESP.IMG;1")
    report = xorriso_report(tmp_path / "out.iso", "el_torito")
    assert fields(report, "El Torito cat path") == [["/boot/x86/boot.catalog"]]
    reader = pycdlib.PyCdlib()
    reader.open(str(tmp_path / "out.iso"))
    try:
        assert reader.pvd.volume_identifier.rstrip() == b"CentOS 7 x86_64"  # as written, for LABEL=
    finally:
        reader.close()
    system_area = xorriso_report(tmp_path / "out.iso", "system_area")
    assert [line for line in system_area if XORRISO_COMPLAINT.search(line)] == []


def test_settings_turn_a_convention_off(efi_source: Path, tmp_path: Path) -> None:
    write_settings(efi_source, {"efi_image": None})
    description = build_file(efi_source, tmp_path / "out.iso")
    assert description == describe_boot(efi_source)
    assert "UEFI" not in description and description.startswith("BIOS El Torito: isolinux/isolinux.bin")
    assert [e["platform_id"] for e in eltorito_entries(tmp_path / "out.iso")] == [0]

    write_settings(efi_source, {"efi_image": None, "bios_boot_file": None})
    assert build_file(efi_source, tmp_path / "plain.iso") == "not bootable (no boot files named)"
    assert describe_boot(efi_source) == "not bootable (no boot files named)"
    assert eltorito_entries(tmp_path / "plain.iso") == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{not json", r"isoportal\.json is not valid JSON"),
        (["isolinux/isolinux.bin"], r"must hold a JSON object"),
        ({"bios_file": "isolinux/isolinux.bin"}, r"unknown key 'bios_file' \(known keys: bios_boot_file"),
        ({"efi_image": "../outside.img"}, r"efi_image must be a relative path inside the source directory"),
        ({"efi_image": "/etc/passwd"}, r"efi_image must be a relative path"),
        ({"bios_boot_file": 42}, r"bios_boot_file must be a relative path"),
        ({"efi_image": "images/missing.img"}, r"efi_image images/missing\.img is not a file"),
        ({"bios_boot_file": "isolinux"}, r"bios_boot_file isolinux is not a file"),
        ({"efi_image": "isolinux/isolinux.bin"}, r"name the same file"),
        ({"boot_catalog": "nowhere/boot.cat"}, r"boot_catalog nowhere/boot\.cat is not in a folder"),
        ({"boot_catalog": "images"}, r"boot_catalog images is a folder"),
        ({"volume_id": "x" * 17}, r"volume_id must be 1 to 16"),
        ({"volume_id": "bad/label"}, r"volume_id must be 1 to 16"),
    ],
)
def test_bad_settings_are_source_errors(tmp_path: Path, settings: object, message: str) -> None:
    source = make_source_tree(tmp_path / "src")
    if isinstance(settings, str):
        (source / "isoportal.json").write_text(settings)
    else:
        write_settings(source, settings)
    with pytest.raises(SourceError, match=message) as error:
        build_iso(source, EXTRAS)
    assert str(tmp_path) not in str(error.value)
    with pytest.raises(SourceError, match=message):
        describe_boot(source)


def test_an_efi_image_too_big_for_el_torito_is_refused(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    with open(source / "images/efiboot.img", "wb") as image:
        image.truncate(EFI_IMAGE_MAX + 512)
    with pytest.raises(SourceError, match=r'El Torito\'s limit\); set "efi_image": null'):
        build_iso(source, EXTRAS)
    write_settings(source, {"efi_image": None})
    with build_iso(source, EXTRAS) as image:
        assert "UEFI" not in image.boot_description


def test_boot_files_behind_symlinks_are_not_followed(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    make_efi_image(tmp_path / "elsewhere/efiboot.img")
    os.symlink(tmp_path / "elsewhere/efiboot.img", source / "images/efiboot.img")
    with build_iso(source, EXTRAS) as image:
        assert "UEFI" not in image.boot_description
        assert describe_boot(source) == image.boot_description
    write_settings(source, {"efi_image": "images/efiboot.img"})
    with pytest.raises(SourceError, match="is not a file in the source tree"):
        build_iso(source, EXTRAS)


@needs_isohybrid_isolinux
def test_a_template_made_in_a_child_process_has_the_same_hybrid_layout(efi_source: Path) -> None:
    """The worker lays sources out in a child with its own clock: dates, and the GUIDs
    derived from them, differ; the shape of the layout does not."""
    here = make_layout_template(efi_source, list(EXTRAS))
    there = make_layout_template_in_child(str(efi_source), list(EXTRAS), volume_id="CDROM")
    assert_same_layout_shape(here, there)


def aged(tree: Path, past: int) -> Path:
    """Backdate the tree's times to ``past`` (the cache does not trust a tree changed
    this second); the same ``past`` twice leaves the directories' times as they were."""
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, ns=(past, past), follow_symlinks=False)
    return tree


@pytest.mark.parametrize("change", ["settings rewritten", "named boot file rewritten"])
def test_layout_cache_sees_boot_inputs_rewritten_in_place(tmp_path: Path, change: str) -> None:
    """Same names, same sizes, new content: isoportal.json and the boot file it names
    shape the layout, so the cache must not serve the old one."""
    source = make_source_tree(tmp_path / "src", with_isolinux=False)
    loader = source / "boot/loader.bin"
    loader.parent.mkdir()
    loader.write_bytes(pseudo_random_bytes("loader", 8192))
    make_efi_image(source / "uefi/a.img")
    make_efi_image(source / "uefi/b.img")
    write_settings(source, {"bios_boot_file": "boot/loader.bin", "efi_image": "uefi/a.img"})
    cache = LayoutCache(make_template=make_layout_template)
    past = time.time_ns() - 10 * 10**9

    def cached(*, changed: str | None = None) -> bytes:
        aged(source, past)
        if changed is not None:  # the changed file alone gets a time of its own
            os.utime(source / changed, ns=(past + 10**9, past + 10**9))
        with cache.build_iso(source, EXTRAS) as image:
            return b"".join(image)

    cached()
    assert (cache.misses, cache.hits) == (1, 0)
    if change == "settings rewritten":
        write_settings(source, {"bios_boot_file": "boot/loader.bin", "efi_image": "uefi/b.img"})
        data = cached(changed="isoportal.json")
    else:
        loader.write_bytes(pseudo_random_bytes("loader, rebuilt", 8192))
        data = cached(changed="boot/loader.bin")
    assert (cache.misses, cache.hits) == (2, 0)
    with build_iso(source, EXTRAS) as fresh:
        assert data == b"".join(fresh)
