"""Large source trees made from random bytes (docs/performance.md's shapes), for the load
test and the benchmark.

- netinstall: about 1 GB in about 300 files (a big install image, rpms, isolinux);
- many-files: 10,000 small files, about 50 MB (a full DVD tree's shape);
- huge: one sparse file over 4 GiB, to prove the size limits;
- vendor-iso: netinstall's tree made into a vendor ISO (isolinux El Torito, isohybrid MBR
  when Debian's is installed) by xorriso, as a vendor ISO source.

``scale`` shrinks netinstall for a quick run. Debian's real isolinux.bin is used when
installed, so the ISOs are the real boot layout.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isos.engine import BOOT_FILE

# Seeded, not secure, on purpose: the same trees every run.

MiB = 1 << 20
DEBIAN_ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
# The boot info table (bytes 8-63 of the boot file) is patched into the ISO only.
BOOT_INFO_TABLE = (8, 64)


@dataclass(frozen=True)
class Workload:
    name: str
    directory: str  # under the kickstart files location
    description: str


WORKLOADS = {
    "netinstall": Workload("netinstall", "netinstall", "~1 GB in ~300 files"),
    "many-files": Workload("many-files", "many-files", "10,000 files, ~50 MB"),
    "huge": Workload("huge", "huge", "one sparse 4.5 GiB file"),
    "vendor-iso": Workload("vendor-iso", "vendor-netinstall.iso", "netinstall made into a vendor ISO"),
}
DEBIAN_ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")


def _write_random(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size
        while left:
            step = min(left, 8 * MiB)
            out.write(rng.randbytes(step))
            left -= step


def _boot_files(root: Path, rng: random.Random) -> None:
    boot = root / BOOT_FILE
    boot.parent.mkdir(parents=True, exist_ok=True)
    if DEBIAN_ISOLINUX.exists():
        shutil.copyfile(DEBIAN_ISOLINUX, boot)
    else:
        _write_random(boot, 38 * 1024, rng)
    (root / "isolinux" / "isolinux.cfg").write_text("default install\nlabel install\n  kernel vmlinuz\n")
    (root / "ks_scripts").mkdir(exist_ok=True)
    (root / "ks_scripts" / "ks.cfg").write_text("# kickstart\n")


def make_netinstall(root: Path, scale: float = 1.0) -> None:
    rng = random.Random(1)
    _boot_files(root, rng)
    _write_random(root / "isolinux" / "vmlinuz", int(10 * MiB * scale), rng)
    _write_random(root / "isolinux" / "initrd.img", int(60 * MiB * scale), rng)
    _write_random(root / "images" / "install.img", int(400 * MiB * scale), rng)
    for number in range(290):
        size = int(rng.randint(1 * MiB, 3 * MiB) * scale)
        _write_random(root / "BaseOS" / "Packages" / f"package-{number:03d}-1.0-1.el9.x86_64.rpm", size, rng)


def make_many_files(root: Path) -> None:
    rng = random.Random(2)
    _boot_files(root, rng)
    for number in range(10_000):
        path = root / "Packages" / f"{number // 100:02d}" / f"pkg-{number:05d}-2.4.1-3.el9.noarch.rpm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(2_000, 8_000)))


def make_huge(root: Path) -> None:
    rng = random.Random(3)
    _boot_files(root, rng)
    (root / "images").mkdir(exist_ok=True)
    with (root / "images" / "huge.img").open("wb") as sparse:
        sparse.truncate(4 * 1024 * MiB + 512 * MiB)


def vendor_tree(iso: Path) -> Path:
    """The tree a vendor-iso workload's ISO is made from (kept beside it, out of the catalog)."""
    return iso.parent / f".{iso.stem}-tree"


def make_vendor_iso(iso: Path, scale: float = 1.0) -> None:
    """netinstall's tree (at ``scale``) as a vendor ISO, the way distributions make theirs."""
    tree = vendor_tree(iso)
    if not tree.exists():
        make_netinstall(tree, scale)
    command = ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-R", "-J", "-V", "VENDOR_NETINST"]
    if DEBIAN_ISOHYBRID_MBR.exists():
        command += ["-isohybrid-mbr", str(DEBIAN_ISOHYBRID_MBR)]
    command += ["-b", BOOT_FILE, "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4"]
    subprocess.run([*command, "-boot-info-table", str(tree)], check=True)


MAKERS: dict[str, Callable[..., None]] = {
    "netinstall": make_netinstall,
    "many-files": make_many_files,
    "huge": make_huge,
    "vendor-iso": make_vendor_iso,
}


def source_checksums(root: Path) -> dict[str, tuple[int, int]]:
    """Every regular file's (size, crc32), the boot file's boot info table masked."""
    sums: dict[str, tuple[int, int]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(root).as_posix()
        crc, size = 0, 0
        with path.open("rb") as source:
            while block := source.read(8 * MiB):
                if relative == BOOT_FILE and size == 0:
                    start, end = BOOT_INFO_TABLE
                    block = block[:start] + bytes(end - start) + block[end:]
                crc = zlib.crc32(block, crc)
                size += len(block)
        sums[relative] = (size, crc)
    return sums


def request_body(workload: str, host: str) -> dict[str, Any]:
    """A static-addressing POST isos body for one of the workloads' sources."""
    return {
        "osversionDir": WORKLOADS[workload].directory if workload in WORKLOADS else workload,
        "hostName": host,
        "domainName": "bench.example",
        "rootPass": "bench-root",
        "dhcp": "no",
        "ipAddress": "192.0.2.10",
        "ipNetmask": "255.255.255.0",
        "ipGateway": "192.0.2.1",
        "interfaceMtu": 9000,
        "interfaceName": "bond0",
        "disk": "sda",
    }
