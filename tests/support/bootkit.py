"""A tiny bootable ISO source tree made from Debian's own packages.

The "boot kit" is what the boot tests put in the kickstart files location: a source tree
that BIOS (isolinux) and UEFI (a standalone GRUB in ``images/efiboot.img``) both boot into
a small Debian kernel, whose initramfs loads the CD and disk drivers, mounts the boot
medium, prints ``ks_scripts/network.cfg`` to the serial console between two markers, and
powers the machine off.

Everything comes from Debian's packages, fetched with ``apt-get download`` and unpacked
with ``dpkg -x`` into a cache folder (nothing is installed, nothing goes into /boot). The
finished tree is cached too, under a name that changes with the packages and with this
file, so only the first run pays for it (about ten seconds). The tools it runs are
``apt-get``/``apt-cache``/``dpkg`` and ``grub-mkstandalone`` (grub-common),
``mkfs.fat`` (dosfstools), ``mmd``/``mcopy`` (mtools); ``.ci/run`` installs them.

``bootkit_source`` (tests/conftest.py) is the pytest fixture; ``BootkitUnavailable`` says
why a kit cannot be made here (the fixture then skips, or fails when
``ISOPORTAL_REQUIRE_TOOLS`` is set, as CI does, so that a missing tool never passes as a
skipped test: see ``tools``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The catalog entry the boot tests request ISOs from.
BOOTKIT_OSVERSION = "Bootkit"
BOOTKIT_DIRECTORY = "bootkit"

NETWORK_CFG_BEGIN = "@@bootkit network.cfg begin@@"
NETWORK_CFG_END = "@@bootkit network.cfg end@@"
BASE64_BEGIN = "@@bootkit base64 begin@@"
BASE64_END = "@@bootkit base64 end@@"
NO_MEDIUM = "@@bootkit no boot medium@@"

# What reads a CD or a disk on QEMU's default "pc" machine: the PIIX IDE controller
# (ata_piix over libata), CD-ROMs (sr_mod), disks (sd_mod) and ISO9660 (isofs). Their
# own dependencies are found in the modules themselves (the package has no modules.dep).
BOOT_MEDIUM_MODULES = ("ata_piix", "sr_mod", "sd_mod", "isofs", "xhci_pci", "usb_storage")

# Tried in this order: a CD first, then a disk or USB stick holding the hybrid image.
BOOT_DEVICES = "/dev/sr0 /dev/sr1 /dev/sda /dev/sdb /dev/vda /dev/sda1 /dev/sdb1"

KERNEL_COMMAND_LINE = "console=ttyS0,115200 quiet panic=-1"

INIT_SCRIPT = f"""#!/bin/busybox sh
# The boot kit's /init: find the boot medium, print network.cfg, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
if [ -d /sys/firmware/efi ]; then echo "bootkit: firmware uefi"; else echo "bootkit: firmware bios"; fi
for module in $(cat /modules/order); do
  insmod "/modules/$module" || echo "bootkit: cannot load $module"
done
# The SCSI scan is asynchronous: give the devices some time to appear.
tries=0
while [ $tries -lt 60 ]; do
  for device in {BOOT_DEVICES}; do
    [ -b "$device" ] || continue
    if mount -t iso9660 -o ro "$device" /mnt 2>/dev/null; then
      if [ -f /mnt/ks_scripts/network.cfg ]; then
        echo "bootkit: boot medium $device"
        echo "{NETWORK_CFG_BEGIN}"
        cat /mnt/ks_scripts/network.cfg
        echo
        echo "{NETWORK_CFG_END}"
        echo "{BASE64_BEGIN}"
        base64 /mnt/ks_scripts/network.cfg
        echo "{BASE64_END}"
        umount /mnt
        poweroff -f
      fi
      umount /mnt
    fi
  done
  tries=$((tries + 1))
  sleep 0.5
done
echo "{NO_MEDIUM}"
ls -l /dev
poweroff -f
"""

ISOLINUX_CFG = f"""serial 0 115200
default linux
prompt 0
timeout 0
label linux
  kernel /isolinux/vmlinuz
  append initrd=/isolinux/initrd.img {KERNEL_COMMAND_LINE}
"""

# Embedded in BOOTX64.EFI: GRUB finds the medium by the kernel it carries (the EFI image
# is a FAT partition or El Torito image; the kernel is on the ISO9660 file system).
GRUB_CFG = f"""serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
search --no-floppy --file --set=root /isolinux/vmlinuz
echo "bootkit grub: loaded from $cmdpath, kernel on $root"
linux /isolinux/vmlinuz {KERNEL_COMMAND_LINE}
initrd /isolinux/initrd.img
boot
"""

GRUB_MODULES = (
    "linux normal search search_fs_file iso9660 part_gpt part_msdos fat serial terminal echo "
    "configfile test gzio efi_gop"
)

CACHE_ENV = "ISOPORTAL_BOOTKIT_CACHE"


class BootkitUnavailable(Exception):
    """The boot kit cannot be made on this machine (a tool or a package is missing)."""


def cache_root() -> Path:
    """Where downloads and finished trees are kept between runs."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    system = Path("/var/cache/isoportal-bootkit")
    if os.access(system.parent, os.W_OK) or os.access(system, os.W_OK):
        return system
    return Path.home() / ".cache" / "isoportal-bootkit"


def run(command: list[str], cwd: Path | None = None) -> str:
    """Run a tool; a missing tool or a failure is a BootkitUnavailable with its output."""
    if shutil.which(command[0]) is None:
        raise BootkitUnavailable(f"{command[0]} is not installed")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BootkitUnavailable(f"{' '.join(command)} failed: {result.stderr.strip()[-800:]}")
    return result.stdout


def kernel_package() -> str:
    """The versioned kernel package behind Debian's ``linux-image-amd64``."""
    found = re.search(
        r"Depends:\s*(linux-image-\S+-amd64)\b", run(["apt-cache", "depends", "linux-image-amd64"])
    )
    if found is None:
        raise BootkitUnavailable("apt-cache names no kernel behind linux-image-amd64")
    return found.group(1)


@functools.cache  # asking apt once per test run is enough
def candidate_versions() -> dict[str, str]:
    """The kit's packages and the versions apt would install (its candidates)."""
    versions = {}
    for package in (*STATIC_PACKAGES, kernel_package()):
        found = re.search(r"Candidate:\s*(\S+)", run(["apt-cache", "policy", package]))
        if found is None or found.group(1) == "(none)":
            raise BootkitUnavailable(f"no candidate version of {package} (apt-get update?)")
        versions[package] = found.group(1)
    return versions


def download_debs(versions: dict[str, str], debs: Path) -> dict[str, Path]:
    """Each package's .deb, downloaded once into ``debs``; other versions are removed."""
    debs.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for package, version in versions.items():
        # apt-get download names files package_version_arch.deb, with ':' as %3a.
        pattern = f"{package}_{version.replace(':', '%3a')}_*.deb"
        if not any(debs.glob(pattern)):
            run(["apt-get", "download", "-q", f"{package}={version}"], cwd=debs)
        matches = sorted(debs.glob(pattern))
        if not matches:
            raise BootkitUnavailable(f"apt-get download left no .deb for {package}")
        wanted[package] = matches[0]
    for old in debs.glob("*.deb"):
        if old not in wanted.values():
            old.unlink()  # superseded by a newer version (a kernel is 70 MB)
    return wanted


def unpack(deb: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    run(["dpkg", "-x", str(deb), str(into)])
    return into


# ------------------------------------------------------------------------------------
# Kernel modules: dependencies read from each module's .modinfo section
# ------------------------------------------------------------------------------------


def module_bytes(path: Path) -> bytes:
    """A module as insmod wants it: Debian 12 kernels ship .ko, .ko.xz or .ko.zst."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        raise BootkitUnavailable(f"{path.name}: zstd-compressed modules are not handled")
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """The key=value strings of an ELF64 little-endian module's ``.modinfo`` section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not an ELF64 little-endian module")
    section_offset = struct.unpack_from("<Q", elf, 0x28)[0]
    entry_size, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", elf, section_offset + index * entry_size)
        return name, offset, size

    _, names_offset, _ = section(names_index)
    for index in range(count):
        name_at, offset, size = section(index)
        name = elf[names_offset + name_at : elf.index(b"\0", names_offset + name_at)]
        if name == b".modinfo":
            pairs = (item.split(b"=", 1) for item in elf[offset : offset + size].split(b"\0") if b"=" in item)
            return {key.decode(): value.decode() for key, value in pairs}
    return {}


def module_load_order(modules_root: Path, wanted: Iterable[str]) -> list[tuple[str, bytes]]:
    """``wanted`` and what they depend on, dependencies first, as (file name, bytes).

    Built-in modules (in modules.builtin) need no loading and are left out.
    """

    def key(name: str) -> str:
        return name.replace("-", "_")

    files = {}
    for path in modules_root.rglob("*.ko*"):
        files[key(path.name.split(".ko", 1)[0])] = path
    builtin = {
        key(Path(line.strip()).name.split(".ko", 1)[0])
        for line in (modules_root / "modules.builtin").read_text().splitlines()
        if line.strip()
    }
    order: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, path_to: tuple[str, ...]) -> None:
        name = key(name)
        if name in done or name in builtin:
            return
        if name in path_to:
            raise BootkitUnavailable(f"module dependency loop: {' -> '.join((*path_to, name))}")
        if name not in files:
            raise BootkitUnavailable(f"kernel module {name} not found under {modules_root}")
        data = module_bytes(files[name])
        for dependency in filter(None, modinfo(data).get("depends", "").split(",")):
            visit(dependency, (*path_to, name))
        done.add(name)
        order.append((f"{name}.ko", data))

    for name in wanted:
        visit(name, ())
    return order


# ------------------------------------------------------------------------------------
# The initramfs: a newc cpio archive, gzip-compressed
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int  # file type and permission bits, as in st_mode
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def newc_cpio(entries: Iterable[CpioEntry]) -> bytes:
    """The "new ASCII" (070701) cpio format the kernel unpacks as its initramfs."""

    def pad(length: int) -> bytes:
        return b"\0" * (-length % 4)

    out = bytearray()
    for inode, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (inode, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        out += header + name + pad(len(header) + len(name)) + entry.data + pad(len(entry.data))
    return bytes(out)


def initramfs(busybox: bytes, modules: list[tuple[str, bytes]]) -> bytes:
    directory, regular, executable = 0o040755, 0o100644, 0o100755
    entries = [CpioEntry(name, directory) for name in ("bin", "dev", "proc", "sys", "mnt", "modules")]
    # The kernel opens /dev/console for init before anything is mounted: without this
    # node, init's output would go nowhere until it mounts devtmpfs.
    entries.append(CpioEntry("dev/console", 0o020600, rdev=(5, 1)))
    entries.append(CpioEntry("bin/busybox", executable, busybox))
    entries.append(CpioEntry("init", executable, INIT_SCRIPT.encode()))
    entries += [CpioEntry(f"modules/{name}", regular, data) for name, data in modules]
    order = "".join(f"{name}\n" for name, _ in modules).encode()
    entries.append(CpioEntry("modules/order", regular, order))
    # mtime 0 in every header and gzip's mtime 0: the same inputs give the same bytes.
    return gzip.compress(newc_cpio(entries), compresslevel=6, mtime=0)


# ------------------------------------------------------------------------------------
# UEFI: a standalone GRUB, alone in a FAT image
# ------------------------------------------------------------------------------------


def grub_efi(grub_modules_dir: Path, work: Path) -> bytes:
    config = work / "grub.cfg"
    config.write_text(GRUB_CFG)
    output = work / "BOOTX64.EFI"
    run(
        [
            "grub-mkstandalone",
            "-O",
            "x86_64-efi",
            "-d",
            str(grub_modules_dir),
            f"--install-modules={GRUB_MODULES}",
            f"--modules={GRUB_MODULES}",
            "--fonts=",
            "--locales=",
            "--themes=",
            "-o",
            str(output),
            f"boot/grub/grub.cfg={config}",
        ]
    )
    return output.read_bytes()


def efi_boot_image(bootx64: bytes, work: Path) -> bytes:
    """A FAT image holding EFI/BOOT/BOOTX64.EFI, the El Torito EFI entry's content."""
    efi = work / "BOOTX64.EFI"
    efi.write_bytes(bootx64)
    image = work / "efiboot.img"
    # FAT12 overhead is small: the file plus 256 KiB of room, in whole KiB.
    size_kib = len(bootx64) // 1024 + 256
    run(["mkfs.fat", "-C", "-n", "EFIBOOT", str(image), str(size_kib)])
    run(["mmd", "-i", str(image), "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-i", str(image), str(efi), "::/EFI/BOOT/BOOTX64.EFI"])
    return image.read_bytes()


# ------------------------------------------------------------------------------------
# The tree, built once per package set and kept in the cache
# ------------------------------------------------------------------------------------

STATIC_PACKAGES = ("isolinux", "syslinux-common", "busybox-static", "grub-efi-amd64-bin")


def build_tree(debs: dict[str, Path], kernel: str, destination: Path, work: Path) -> None:
    root = {package: unpack(deb, work / package) for package, deb in debs.items()}
    kernel_root = root[kernel]
    vmlinuz = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    module_dirs = sorted((kernel_root / "lib" / "modules").iterdir())
    if not vmlinuz or not module_dirs:
        raise BootkitUnavailable(f"{kernel} holds no vmlinuz or modules")
    modules = module_load_order(module_dirs[0], BOOT_MEDIUM_MODULES)
    bootx64 = grub_efi(root["grub-efi-amd64-bin"] / "usr" / "lib" / "grub" / "x86_64-efi", work)

    files = {
        "isolinux/isolinux.bin": (root["isolinux"] / "usr/lib/ISOLINUX/isolinux.bin").read_bytes(),
        "isolinux/ldlinux.c32": (
            root["syslinux-common"] / "usr/lib/syslinux/modules/bios/ldlinux.c32"
        ).read_bytes(),
        "isolinux/isolinux.cfg": ISOLINUX_CFG.encode(),
        "isolinux/vmlinuz": vmlinuz[0].read_bytes(),
        "isolinux/initrd.img": initramfs((root["busybox-static"] / "bin/busybox").read_bytes(), modules),
        "EFI/BOOT/BOOTX64.EFI": bootx64,
        "EFI/BOOT/grub.cfg": GRUB_CFG.encode(),  # what BOOTX64.EFI embeds, for reading
        "images/efiboot.img": efi_boot_image(bootx64, work),
        "ks_scripts/README": b"The boot kit: network.cfg is added by the portal.\n",
    }
    for rel, content in files.items():
        path = destination.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One builder at a time across processes (parallel test runs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Test runs in parallel share the cache, maybe with other versions of this file: a tree
# is removed only when no run has used it for a day.
STALE_TREE_SECONDS = 24 * 3600


def bootkit_tree() -> Path:
    """The boot kit's tree in the cache (built on first use); read it, never write it.

    Raises BootkitUnavailable.
    """
    for tool in ("apt-get", "apt-cache", "dpkg", "grub-mkstandalone", "mkfs.fat", "mmd", "mcopy"):
        if shutil.which(tool) is None:
            raise BootkitUnavailable(f"{tool} is not installed")
    versions = candidate_versions()
    kernel = next(package for package in versions if package.startswith("linux-image-"))
    cache = cache_root()
    with locked(cache / "lock"):
        debs = download_debs(versions, cache / "debs")
        fingerprint = hashlib.sha256(Path(__file__).read_bytes())
        for deb in debs.values():
            fingerprint.update(deb.name.encode() + b"\0")
        tree = cache / f"tree-{kernel}-{fingerprint.hexdigest()[:12]}"
        if not tree.is_dir():
            with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as scratch:
                staging = Path(scratch) / "tree"
                build_tree(debs, kernel, staging, Path(scratch) / "work")
                staging.rename(tree)  # whole or not at all: a killed run leaves no half tree
        os.utime(tree)  # in use: not stale
        for stale in cache.glob("tree-*"):
            if stale != tree and time.time() - stale.stat().st_mtime > STALE_TREE_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
    return tree


def install_bootkit(kickstart_location: Path) -> Path:
    """Copy the kit into the kickstart files location and add it to osversions.json."""
    source = kickstart_location / BOOTKIT_DIRECTORY
    shutil.copytree(bootkit_tree(), source)
    catalog_file = kickstart_location / "osversions.json"
    catalog = json.loads(catalog_file.read_text()) if catalog_file.exists() else {}
    catalog[BOOTKIT_OSVERSION] = BOOTKIT_DIRECTORY
    catalog_file.write_text(json.dumps(catalog))
    return source


# ------------------------------------------------------------------------------------
# Reading the serial console
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleReport:
    """What the kit's /init printed: the file as text and as base64, and where from."""

    network_cfg: bytes
    network_cfg_base64: bytes
    firmware: str
    medium: str
    grub_loaded_from: str | None = None  # GRUB's $cmdpath, e.g. (cd0)/EFI/BOOT; UEFI only


def between(text: str, begin: str, end: str) -> str | None:
    start = text.find(begin + "\n")
    stop = text.find("\n" + end, start)
    if start < 0 or stop < 0:
        return None
    return text[start + len(begin) + 1 : stop]


def read_console(log: bytes) -> ConsoleReport | None:
    """Parse a serial log; None when /init did not get as far as printing the file.

    The serial line turns every newline into CR LF: they are turned back, which is
    exact because network.cfg never holds a CR (its values are checked).
    """
    text = log.decode("utf-8", "replace").replace("\r\n", "\n")
    shown = between(text, NETWORK_CFG_BEGIN, NETWORK_CFG_END)
    encoded = between(text, BASE64_BEGIN, BASE64_END)
    firmware = re.search(r"bootkit: firmware (\w+)", text)
    medium = re.search(r"bootkit: boot medium (\S+)", text)
    grub = re.search(r"bootkit grub: loaded from (\S+),", text)
    if shown is None or encoded is None or firmware is None or medium is None:
        return None
    return ConsoleReport(
        network_cfg=shown.encode(),
        network_cfg_base64=base64.b64decode("".join(encoded.split())),
        firmware=firmware.group(1),
        medium=medium.group(1),
        grub_loaded_from=grub.group(1) if grub else None,
    )
