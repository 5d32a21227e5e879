"""A vendor ISO as the source: osversions.json names an ``.iso`` file, the portal adds the
per-host ``ks_scripts`` files to it and streams the result (docs/api.md).

The vendor ISO is made in the test with ``xorriso -as mkisofs`` (BIOS and UEFI El Torito
entries, isohybrid MBR), from ``tests/support/sources.py``'s tree or from the boot kit; the
result is read back with pycdlib and xorriso, compared with pycdlib's own writer, and
(boot kit) booted in QEMU, as a CD and as a disk (the hybrid tables, made anew).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from isos.engine import SourceError, StreamError, build_iso, describe_boot, make_layout_template
from isos.engine.layout_cache import LayoutCache
from isos.models import IsoBuild
from osversions.catalog import CatalogError, resolve_source
from tests.support.api import EXPECTED_NETWORK_CFG, post_json, static_request
from tests.support.bootkit import BootkitUnavailable, bootkit_tree
from tests.support.isoread import read_rr_files
from tests.support.qemu import Firmware, Medium, assert_booted, boot, generate
from tests.support.sources import make_source_tree, pseudo_random_bytes
from tests.support.tools import require_tool, unavailable

URL = "/api/5.0/isos"
VENDOR_DIRECTORY = "rocky9/Vendor-9.4-x86_64-minimal.iso"
EXTRA_NAMES = ("disk.cfg", "mgmt_network.cfg", "network.cfg", "password.cfg", "state.out")


def make_vendor_iso(source: Path, destination: Path, *, efi: bool = True) -> Path:
    """A vendor-like ISO of ``source``: BIOS (and UEFI) El Torito, isohybrid MBR."""
    xorriso = require_tool("xorriso")
    destination.parent.mkdir(parents=True, exist_ok=True)
    command = [xorriso, "-as", "mkisofs", "-o", str(destination), "-R", "-J", "-V", "VENDOR_9_4"]
    command += ["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"]
    command += ["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"]
    if efi:
        command += ["-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot"]
    if Path("/usr/lib/ISOLINUX/isohdpfx.bin").is_file():
        command += ["-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin"]
    result = subprocess.run([*command, str(source)], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    # Settled (older than the layout cache's one second), as a real vendor ISO is.
    past = time.time() - 60
    os.utime(destination, (past, past))
    return destination


def add_to_catalog(location: Path, name: str, directory: str) -> None:
    catalog_file = location / "osversions.json"
    catalog = json.loads(catalog_file.read_text())
    catalog[name] = directory
    catalog_file.write_text(json.dumps(catalog))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def vendor_tree(tmp_path: Path) -> Path:
    return make_source_tree(
        tmp_path / "vendor-tree", files={"images/efiboot.img": pseudo_random_bytes("efiboot", 64 * 1024)}
    )


@pytest.fixture
def vendor_iso(kickstart_location: Path, vendor_tree: Path) -> Path:
    iso = make_vendor_iso(vendor_tree, kickstart_location / VENDOR_DIRECTORY)
    add_to_catalog(kickstart_location, "Rocky 9 (vendor ISO)", VENDOR_DIRECTORY)
    return iso


def original_files(tree: Path) -> dict[str, bytes]:
    return {
        path.relative_to(tree).as_posix(): path.read_bytes() for path in tree.rglob("*") if path.is_file()
    }


def assert_original_files(
    files: dict[str, bytes], tree: Path, replaced: frozenset[str] | set[str] = frozenset()
) -> None:
    """Every file of the tree the vendor ISO was made of, with its bytes; the BIOS boot
    file's boot info table (bytes 8 to 64) is the new layout's, as in any built ISO."""
    for rel, content in original_files(tree).items():
        if rel in replaced:
            continue
        if rel == "isolinux/isolinux.bin":
            assert files[rel][:8] + files[rel][64:] == content[:8] + content[64:]
        else:
            assert files[rel] == content, rel


def el_torito_report(iso: Path) -> str:
    result = subprocess.run(
        [require_tool("xorriso"), "-indev", str(iso), "-report_el_torito", "plain"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.django_db
def test_the_api_streams_a_vendor_iso_with_the_hosts_files(
    operations_client: Client, vendor_iso: Path, vendor_tree: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    before = sha256(vendor_iso)

    def no_temporary_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("a temporary file was made")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_temporary_files)
    response = post_json(operations_client, URL, static_request(osversionDir=VENDOR_DIRECTORY))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    monkeypatch.undo()
    assert int(response["Content-Length"]) == len(body)
    assert response["Content-Disposition"] == (
        'attachment; filename="test.quest-rocky9_Vendor-9.4-x86_64-minimal.iso.iso"'
    )
    generated = tmp_path / "generated.iso"
    generated.write_bytes(body)

    files = read_rr_files(generated)
    assert_original_files(files, vendor_tree)
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert set(EXTRA_NAMES) <= {rel.removeprefix("ks_scripts/") for rel in files}
    state = files["ks_scripts/state.out"].decode()
    assert "El Torito from the vendor ISO: BIOS, UEFI" in state
    # The history record says how the ISO boots, as state.out does: the modes it keeps.
    build = IsoBuild.objects.get()
    assert "boot modes: BIOS CD" in build.boot and build.boot in state
    history = operations_client.get("/isos/history/").content.decode()
    assert f"Boots: {html.escape(build.boot)}" in history

    report = el_torito_report(generated)
    assert "El Torito cat path : /isolinux/boot.cat" in report
    assert "El Torito img path :   1  /isolinux/isolinux.bin" in report
    assert "El Torito img path :   2  /images/efiboot.img" in report
    assert "boot-info-table" in report
    assert [line.split()[6] for line in report.splitlines() if line.startswith("El Torito boot img")] == [
        "BIOS",
        "UEFI",
    ]
    if "hybrid" in state:
        # Made anew as for a directory source: the tables xorriso finds nothing wrong in.
        area = subprocess.run(
            [require_tool("xorriso"), "-indev", str(generated), "-report_system_area", "plain"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert "MBR isohybrid" in area and "GPT" in area
        assert not [line for line in area.splitlines() if "wrong" in line or "problems" in line], area
    assert sha256(vendor_iso) == before


def test_the_stream_is_pycdlibs_own_write(vendor_tree: Path, tmp_path: Path, frozen_clock: None) -> None:
    """Byte-identical to write_fp(), with a vendor file replaced and a new folder made."""
    iso = make_vendor_iso(vendor_tree, tmp_path / "vendor.iso")
    before = sha256(iso)
    extra = {
        "ks_scripts/ks.cfg": b"replaced kickstart\n",
        "ks_scripts/network.cfg": EXPECTED_NETWORK_CFG,
        "extra/deep/folder/file.bin": pseudo_random_bytes("big", 300_000),
    }
    with build_iso(iso, extra, chunk_size=64 * 1024) as image:
        assert image.boot_description == describe_boot(iso)
        assert image.boot_description.startswith("El Torito from the vendor ISO: BIOS, UEFI")
        streamed = b"".join(image)
        reference = io.BytesIO()
        image.write_reference(reference)
    assert len(streamed) == image.size
    assert streamed == reference.getvalue()
    generated = tmp_path / "generated.iso"
    generated.write_bytes(streamed)
    files = read_rr_files(generated)
    assert files["ks_scripts/ks.cfg"] == b"replaced kickstart\n"
    assert files["extra/deep/folder/file.bin"] == extra["extra/deep/folder/file.bin"]
    assert_original_files(files, vendor_tree, replaced={"ks_scripts/ks.cfg"})
    assert sha256(iso) == before


def test_a_cached_layout_of_a_vendor_iso_is_the_same_image(vendor_tree: Path, tmp_path: Path) -> None:
    iso = make_vendor_iso(vendor_tree, tmp_path / "vendor.iso")
    extra = {f"ks_scripts/{name}": f"{name} of this host\n".encode() for name in EXTRA_NAMES}
    cache = LayoutCache(make_template=make_layout_template)
    with cache.build_iso(iso, extra) as first:
        first_bytes = b"".join(first)
    with cache.build_iso(iso, extra) as second:
        assert b"".join(second) == first_bytes
    assert (cache.misses, cache.hits) == (1, 1)
    generated = tmp_path / "generated.iso"
    generated.write_bytes(first_bytes)
    files = read_rr_files(generated)
    assert all(files[name] == data for name, data in extra.items())
    assert files["images/install.img"] == (vendor_tree / "images/install.img").read_bytes()

    # The vendor ISO replaced under the same name: the stream refuses, the cache forgets.
    image = cache.build_iso(iso, extra)
    os.utime(iso)
    with pytest.raises(StreamError, match="changed after layout"):
        b"".join(image)
    assert len(cache) == 0


def test_a_vendor_iso_just_changed_is_laid_out_in_the_child_but_not_cached(
    vendor_tree: Path, tmp_path: Path
) -> None:
    iso = make_vendor_iso(vendor_tree, tmp_path / "vendor.iso")
    os.utime(iso)  # modified just now: still settling
    made: list[str] = []

    def make_template(source: str, names: list[str], *, volume_id: str) -> Any:
        made.append(source)
        return make_layout_template(source, names, volume_id=volume_id)

    cache = LayoutCache(make_template=make_template)
    extra = {"ks_scripts/network.cfg": EXPECTED_NETWORK_CFG}
    with cache.build_iso(iso, extra) as image:
        generated = tmp_path / "generated.iso"
        generated.write_bytes(b"".join(image))
    assert made == [str(iso.resolve())]
    assert len(cache) == 0
    assert read_rr_files(generated)["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG


def test_memory_stays_flat_while_streaming_a_big_vendor_iso(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path / "tree")
    with (tree / "images" / "big.img").open("wb") as big:
        big.truncate(200 * 1024 * 1024)
    iso = make_vendor_iso(tree, tmp_path / "big.iso", efi=False)
    (tree / "images" / "big.img").unlink()
    extra = {"ks_scripts/network.cfg": EXPECTED_NETWORK_CFG}
    with build_iso(iso, extra, chunk_size=1 << 20) as image:
        received = 0
        tracemalloc.start()
        try:
            for chunk in image:
                received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == image.size > 200 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, peak


# --------------------------------------------------------------------------------------
# Booting an ISO made from a vendor ISO of the boot kit
# --------------------------------------------------------------------------------------

BOOTKIT_VENDOR_DIRECTORY = "bootkit-vendor/bootkit.iso"


@pytest.fixture
def bootkit_vendor_iso(kickstart_location: Path, tmp_path: Path) -> Path:
    try:
        tree = bootkit_tree()
    except BootkitUnavailable as exc:
        unavailable(f"boot kit unavailable: {exc}")
    iso = make_vendor_iso(tree, kickstart_location / BOOTKIT_VENDOR_DIRECTORY)
    add_to_catalog(kickstart_location, "Bootkit (vendor ISO)", BOOTKIT_VENDOR_DIRECTORY)
    return iso


@pytest.mark.django_db
@pytest.mark.parametrize("medium", ["cd", "ide"])
@pytest.mark.boot
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_an_iso_made_from_a_vendor_iso_boots(
    operations_client: Client, bootkit_vendor_iso: Path, tmp_path: Path, firmware: Firmware, medium: Medium
) -> None:
    """As a CD (the vendor's El Torito entries) and as a disk (the hybrid MBR and GPT)."""
    generated = generate(operations_client, tmp_path / "generated.iso", BOOTKIT_VENDOR_DIRECTORY)
    result = boot(generated, tmp_path, firmware, medium)
    print(f"vendor ISO, {firmware} {medium}: {result.seconds:.1f} s")  # shown with -s or -rA
    assert_booted(result, firmware, r"/dev/sr\d" if medium == "cd" else r"/dev/sd[a-z]\d*")


# --------------------------------------------------------------------------------------
# Resolving a vendor ISO source, and what the builder refuses or describes
# --------------------------------------------------------------------------------------


def test_resolve_source_accepts_a_vendor_iso_inside_the_location(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.iso").write_bytes(b"\0" * 2048)
    location = tmp_path / "location"
    (location / "rocky9").mkdir(parents=True)
    (location / "rocky9" / "vendor.iso").write_bytes(b"\0" * 2048)
    (location / "rocky9" / "notes.txt").write_bytes(b"")
    (location / "rocky9" / "folder.iso").mkdir()
    (location / "linked.iso").symlink_to(location / "rocky9" / "vendor.iso")
    (location / "escape.iso").symlink_to(outside / "elsewhere.iso")
    assert resolve_source("rocky9/vendor.iso", location) == (location / "rocky9" / "vendor.iso").resolve()
    assert resolve_source("linked.iso", location) == (location / "rocky9" / "vendor.iso").resolve()
    assert resolve_source("rocky9/folder.iso", location).is_dir()  # a directory stays one
    for bad in ("escape.iso", "rocky9/notes.txt", "rocky9/missing.iso", "../outside/elsewhere.iso"):
        with pytest.raises(CatalogError):
            resolve_source(bad, location)


def test_a_vendor_iso_without_boot_entries_or_joliet(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path / "tree", with_isolinux=False)
    iso = tmp_path / "plain.iso"
    result = subprocess.run(
        [require_tool("xorriso"), "-as", "mkisofs", "-o", str(iso), "-R", str(tree)],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    description = "not bootable (the vendor ISO has no El Torito boot entry)"
    assert describe_boot(iso) == description
    extra = {"ks_scripts/network.cfg": EXPECTED_NETWORK_CFG}
    with build_iso(iso, extra) as image:
        assert image.boot_description == description
        generated = tmp_path / "generated.iso"
        generated.write_bytes(b"".join(image))
    files = read_rr_files(generated)
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert files["ks_scripts/ks.cfg"] == (tree / "ks_scripts/ks.cfg").read_bytes()
    template = make_layout_template(iso, list(extra))  # one length field a file: no Joliet
    assert all(len(offsets) == 1 for offsets in template.length_fields.values())


def test_an_extra_file_where_the_vendor_iso_has_a_folder_is_refused(
    vendor_tree: Path, tmp_path: Path
) -> None:
    iso = make_vendor_iso(vendor_tree, tmp_path / "vendor.iso")
    with pytest.raises(SourceError, match="images/pxeboot is a directory in the vendor ISO"):
        build_iso(iso, {"images/pxeboot": b"x"})
    with pytest.raises(SourceError, match="EULA is not a directory in the vendor ISO"):
        build_iso(iso, {"EULA/file": b"x"})


def test_an_unreadable_vendor_iso_is_refused_before_the_first_byte(tmp_path: Path) -> None:
    broken = tmp_path / "broken.iso"
    broken.write_bytes(b"not an ISO at all" * 1000)
    with pytest.raises(SourceError, match="the vendor ISO cannot be parsed"):
        build_iso(broken, {"ks_scripts/network.cfg": b"x"})
