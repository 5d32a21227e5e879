"""Look-alikes of today's vendor ISO layouts, made from the boot kit with real boot loaders.

Each builder makes an ISO of the boot kit's kernel and initramfs with the boot loaders
and the ``xorriso`` flags one distribution family uses (docs/sources-and-booting.md,
"Vendor ISO layouts", says where each set of flags comes from):

- ``grub-mkrescue``: GRUB's own tool (GRUB2 El Torito image for BIOS with
  ``--grub2-boot-info``, ``--grub2-mbr``, an in-tree ``efi.img``, GPT, APM, HFS+).
- ``grub2-appended``: Fedora 37+ and RHEL 10 (lorax): ``--grub2-mbr``, BIOS GRUB in
  ``images/eltorito.img`` with ``--grub2-boot-info``, the EFI image appended as
  partition 2 (``-append_partition 2 0xef``) and El Torito's EFI entry pointing at it.
- ``fedora-lorax``: lorax's builds of Fedora 37-39: as ``ubuntu-live-server`` below but
  with BIOS GRUB in ``images/eltorito.img``, a hidden catalog and a second appended
  partition, ``macboot.img`` (HFS+ type), for Macs.
- ``ubuntu-live-server``: Ubuntu 22.04/24.04 (livecd-rootfs): as ``grub2-appended``
  but with ``-partition_offset 16``, the appended partition in a GPT
  (``-appended_part_as_gpt``) and a protective MBR.
- ``ubuntu-22.04``: Ubuntu 22.04.4's own report: ``-partition_offset 16``, the appended
  partition in the MBR (``-append_partition 2 0xef``, ``-part_like_isohybrid``) and a
  GPT made by ``-isohybrid-gpt-basdat``.
- ``debian-netinst``: Debian 12 (debian-cd): isolinux with ``-isohybrid-mbr``,
  ``-e boot/grub/efi.img``, ``-isohybrid-gpt-basdat -isohybrid-apm-hfsplus``.
- ``unknown-mbr``: boot code the engine does not know in the MBR (``-G``): refused.

The boot loaders come from Debian's packages installed on the machine (grub-pc-bin's
``i386-pc``, grub-efi-amd64-bin's ``x86_64-efi``, isolinux); the kernel and initramfs
from the boot kit. ISOs are cached beside the boot kit's tree, under a name that changes
with that tree and with this file, so only the first run pays for them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final, Literal

from tests.support.bootkit import GRUB_CFG, STALE_TREE_SECONDS, bootkit_tree, cache_root, locked
from tests.support.tools import require_file, require_tool

VendorLayout = Literal[
    "grub-mkrescue",
    "grub2-appended",
    "fedora-lorax",
    "ubuntu-live-server",
    "ubuntu-22.04",
    "debian-netinst",
    "unknown-mbr",
]
LAYOUTS: Final[tuple[VendorLayout, ...]] = (
    "grub-mkrescue",
    "grub2-appended",
    "ubuntu-live-server",
    "debian-netinst",
)
EFI_TYPE_GUID: Final = "28732ac11ff8d211ba4b00a0c93ec93b"  # xorriso's spelling of C12A7328-F81F-...
BASIC_DATA_GUID: Final = "a2a0d0ebe5b9334487c068b6b72699c7"

GRUB_PC: Final = Path("/usr/lib/grub/i386-pc")
GRUB_EFI: Final = Path("/usr/lib/grub/x86_64-efi")
ISOHDPFX: Final = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
# What a GRUB for BIOS needs to find the medium (CD or disk) and start the kit's kernel.
BIOS_GRUB_MODULES: Final = (
    "biosdisk iso9660 part_msdos part_gpt linux normal search search_fs_file serial terminal "
    "echo configfile test gzio"
)


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr[-2000:]}"


def _kit_files(kit: Path, into: Path, extra: dict[str, bytes]) -> None:
    """The kit's kernel, initramfs and ks_scripts (what every look-alike boots), and
    ``extra`` files (a vendor ISO that already holds a network.cfg, to boot it as is)."""
    for rel in ("isolinux/vmlinuz", "isolinux/initrd.img", "ks_scripts/README"):
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kit / rel, target)
    for rel, data in extra.items():
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _bios_grub_eltorito(work: Path) -> Path:
    """A GRUB for BIOS as an El Torito image: cdboot.img, then a core image (starting
    with diskboot.img) holding the kit's grub.cfg in a memdisk, as lorax's eltorito.img."""
    config = work / "grub-bios.cfg"
    config.write_text(GRUB_CFG)
    image = work / "eltorito.img"
    _run(
        [
            require_tool("grub-mkstandalone"),
            *(
                "-O",
                "i386-pc-eltorito",
                "-d",
                str(require_file(GRUB_PC / "cdboot.img", "grub-pc-bin").parent),
            ),
            f"--install-modules={BIOS_GRUB_MODULES}",
            f"--modules={BIOS_GRUB_MODULES}",
            *("--fonts=", "--locales=", "--themes=", "-o", str(image)),
            f"boot/grub/grub.cfg={config}",
        ]
    )
    return image


def _grub_mkrescue(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    require_file(GRUB_PC / "boot_hybrid.img", "grub-pc-bin")
    require_file(GRUB_EFI / "linux.mod", "grub-efi-amd64-bin")
    require_tool("xorriso")
    _run([require_tool("grub-mkrescue"), "-o", str(out), str(tree)])


def _grub2_appended(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    (tree / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bios_grub_eltorito(work), tree / "images" / "eltorito.img")
    efiboot = work / "efiboot.img"
    shutil.copyfile(kit / "images" / "efiboot.img", efiboot)
    command = [require_tool("xorriso"), "-as", "mkisofs", "-o", str(out), "-R", "-J", "-V", "FEDORA_LIKE"]
    command += ["--grub2-mbr", str(require_file(GRUB_PC / "boot_hybrid.img", "grub-pc-bin"))]
    command += ["-append_partition", "2", "0xef", str(efiboot)]
    command += ["-c", "boot.cat", "--boot-catalog-hide"]
    command += ["-b", "images/eltorito.img", "-no-emul-boot", "-boot-load-size", "4"]
    command += ["-boot-info-table", "--grub2-boot-info"]
    command += ["-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot"]
    _run([*command, str(tree)])


def _ubuntu_live_server(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    (tree / "boot" / "grub" / "i386-pc").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bios_grub_eltorito(work), tree / "boot" / "grub" / "i386-pc" / "eltorito.img")
    efiboot = work / "efi.img"
    shutil.copyfile(kit / "images" / "efiboot.img", efiboot)
    command = [
        require_tool("xorriso"),
        "-as",
        "mkisofs",
        "-o",
        str(out),
        "-r",
        "-J",
        "-V",
        "Ubuntu-Server 24",
    ]
    command += ["--grub2-mbr", str(require_file(GRUB_PC / "boot_hybrid.img", "grub-pc-bin"))]
    command += ["--protective-msdos-label", "-partition_cyl_align", "off", "-partition_offset", "16"]
    command += ["--mbr-force-bootable", "-append_partition", "2", EFI_TYPE_GUID, str(efiboot)]
    command += ["-appended_part_as_gpt", "-iso_mbr_part_type", BASIC_DATA_GUID]
    command += ["-c", "/boot.catalog", "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"]
    command += ["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info"]
    command += ["-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot"]
    _run([*command, str(tree)])


def _fedora_lorax(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    (tree / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bios_grub_eltorito(work), tree / "images" / "eltorito.img")
    macboot = work / "macboot.img"
    macboot.write_bytes(hashlib.sha256(b"macboot").digest() * 32768)  # 1 MiB, stands in for HFS+
    command = [require_tool("xorriso"), "-as", "mkisofs", "-o", str(out), "-R", "-J", "-V", "Fedora-39"]
    command += ["--grub2-mbr", str(require_file(GRUB_PC / "boot_hybrid.img", "grub-pc-bin"))]
    command += ["-partition_offset", "16", "-appended_part_as_gpt"]
    command += [
        "-append_partition",
        "2",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        str(kit / "images" / "efiboot.img"),
    ]
    command += ["-append_partition", "3", "48465300-0000-11AA-AA11-00306543ECAC", str(macboot)]
    command += ["-iso_mbr_part_type", "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"]
    command += ["-c", "boot.cat", "--boot-catalog-hide", "-b", "images/eltorito.img", "-no-emul-boot"]
    command += ["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info"]
    command += ["-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot"]
    _run([*command, str(tree)])


def _ubuntu_22_04(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    (tree / "boot" / "grub" / "i386-pc").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bios_grub_eltorito(work), tree / "boot" / "grub" / "i386-pc" / "eltorito.img")
    efiboot = work / "efi.img"
    shutil.copyfile(kit / "images" / "efiboot.img", efiboot)
    command = [require_tool("xorriso"), "-as", "mkisofs", "-o", str(out), "-r", "-V", "Ubuntu-Server 22"]
    command += ["--grub2-mbr", str(require_file(GRUB_PC / "boot_hybrid.img", "grub-pc-bin"))]
    command += ["--protective-msdos-label", "-partition_cyl_align", "off", "-partition_offset", "16"]
    command += [
        "--mbr-force-bootable",
        "-append_partition",
        "2",
        "0xef",
        str(efiboot),
        "-part_like_isohybrid",
    ]
    command += ["-c", "/boot.catalog", "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"]
    command += ["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info"]
    command += ["-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot"]
    command += ["-isohybrid-gpt-basdat", "-no-pad"]
    _run([*command, str(tree)])


def _unknown_mbr(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    system_area = bytearray(32768)
    system_area[:32] = b"\xeb\x3c some other boot loader  "
    system_area[510:512] = b"\x55\xaa"
    (work / "system-area.bin").write_bytes(bytes(system_area))
    command = [require_tool("xorriso"), "-as", "mkisofs", "-o", str(out), "-r", "-J", "-V", "OTHER"]
    command += ["-G", str(work / "system-area.bin")]
    _run([*command, str(tree)])


def _debian_netinst(kit: Path, work: Path, out: Path, extra: dict[str, bytes]) -> None:
    tree = work / "tree"
    _kit_files(kit, tree, extra)
    for rel in ("isolinux/isolinux.bin", "isolinux/ldlinux.c32", "isolinux/isolinux.cfg"):
        shutil.copyfile(kit / rel, tree / rel)
    (tree / "boot" / "grub").mkdir(parents=True)
    shutil.copyfile(kit / "images" / "efiboot.img", tree / "boot" / "grub" / "efi.img")
    command = [
        require_tool("xorriso"),
        "-as",
        "mkisofs",
        "-o",
        str(out),
        "-r",
        "-J",
        "-V",
        "Debian 12 netinst",
    ]
    command += ["-isohybrid-mbr", str(require_file(ISOHDPFX, "isolinux"))]
    command += ["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"]
    command += ["-boot-load-size", "4", "-boot-info-table", "-no-emul-boot"]
    command += ["-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot"]
    command += ["-isohybrid-gpt-basdat", "-isohybrid-apm-hfsplus"]
    _run([*command, str(tree)])


_BUILDERS: Final = {
    "grub-mkrescue": _grub_mkrescue,
    "grub2-appended": _grub2_appended,
    "fedora-lorax": _fedora_lorax,
    "ubuntu-live-server": _ubuntu_live_server,
    "ubuntu-22.04": _ubuntu_22_04,
    "debian-netinst": _debian_netinst,
    "unknown-mbr": _unknown_mbr,
}


def vendor_layout_iso(layout: VendorLayout, extra: dict[str, bytes] | None = None) -> Path:
    """The look-alike vendor ISO of ``layout`` (with ``extra`` files in its tree) in the
    cache (made on first use); read it, never write it. Skips (or fails, under
    ISOPORTAL_REQUIRE_TOOLS) without its tools; raises BootkitUnavailable without the kit."""
    kit = bootkit_tree()
    extra = dict(extra or {})
    digest = hashlib.sha256(Path(__file__).read_bytes() + kit.name.encode())
    for rel in sorted(extra):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(extra[rel]).digest())
    fingerprint = digest.hexdigest()[:12]
    cache = cache_root()
    target = cache / f"vendor-{layout}-{fingerprint}.iso"
    with locked(cache / "lock"):
        if not target.is_file():
            with tempfile.TemporaryDirectory(dir=cache, prefix="vendor-") as scratch:
                staging = Path(scratch) / "vendor.iso"
                _BUILDERS[layout](kit, Path(scratch), staging, extra)
                staging.rename(target)  # whole or not at all
        os.utime(target)  # in use: not stale
        for stale in cache.glob("vendor-*.iso"):
            if stale != target and time.time() - stale.stat().st_mtime > STALE_TREE_SECONDS:
                stale.unlink(missing_ok=True)
    return target
