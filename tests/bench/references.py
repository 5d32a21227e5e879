"""The references isobench measures against, run in the same call.

- the floor: ``cat`` of every source file into the same kind of sink (a pipe read with
  ``readinto`` into a reused buffer, as the HTTP client reads);
- Traffic Ops' way: ``genisoimage`` (its mkisofs flags) builds the whole ISO to a file,
  which is then sent; ``xorriso -as mkisofs`` likewise.

mkisofs' ``-boot-info-table`` writes into the source's isolinux.bin, so the tools build
from a shadow tree: hard links to every file but a private copy of the boot file.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path
from typing import cast

from isos.engine import BOOT_FILE

CHUNK = 1 << 20
MKISOFS_FLAGS = [
    "-joliet-long",
    "-input-charset",
    "utf-8",
    "-b",
    "isolinux/isolinux.bin",
    "-c",
    "isolinux/boot.cat",
    "-no-emul-boot",
    "-boot-load-size",
    "4",
    "-boot-info-table",
    "-R",
    "-J",
    "-T",
    "-iso-level",
    "3",
]
TOOLS = {
    "genisoimage": ["genisoimage", "-quiet"],
    "xorriso": ["xorriso", "-as", "mkisofs", "-quiet"],
}


def available(tool: str) -> bool:
    return shutil.which(TOOLS[tool][0]) is not None


def cat_floor(source: Path) -> tuple[float, int]:
    """Seconds and bytes to read every source file through cat into the sink."""
    if source.is_file():  # a vendor ISO: the floor is reading it
        files = [str(source)]
    else:
        files = sorted(str(path) for path in source.rglob("*") if path.is_file() and not path.is_symlink())
    buffer = memoryview(bytearray(CHUNK))
    started = time.perf_counter()
    total = 0
    with subprocess.Popen(["cat", *files], stdout=subprocess.PIPE, bufsize=0) as cat:
        pipe = cast(io.RawIOBase, cat.stdout)  # unbuffered (bufsize=0): a raw pipe
        while count := pipe.readinto(buffer):
            total += count
    return time.perf_counter() - started, total


def shadow_tree(source: Path, shadow: Path) -> Path:
    """Hard links to the source, with a private copy of the boot file the tools patch."""
    if not shadow.exists():
        shadow.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(source), str(shadow)], check=True)
        boot = shadow / BOOT_FILE
        if boot.exists():
            boot.unlink()
            shutil.copyfile(source / BOOT_FILE, boot)
    return shadow


def build_with(tool: str, shadow: Path, output: Path) -> float:
    """Seconds for the tool to write the whole ISO to ``output``."""
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [*TOOLS[tool], *MKISOFS_FLAGS, "-o", str(output), str(shadow)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started
