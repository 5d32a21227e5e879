"""Realistic ISO source trees on disk, and their fingerprints.

A source tree looks like an extracted vendor netinstall ISO, small: a real
``isolinux.bin`` (Debian's, when installed), a kernel, an install image, a kickstart
stub and a few nested folders. ``tree_digest`` proves a tree was left untouched.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import time
from pathlib import Path

SYSTEM_ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")

# The catalog (osversions.json) of conftest's kickstart_location: a source tree for each.
CATALOG = {"CentOS 7.2": "centos72", "Rocky Linux 8": "rocky/8"}

ISOLINUX_CFG = b"""default linux
prompt 0
timeout 50
label linux
  kernel vmlinuz
  append initrd=initrd.img inst.ks=cdrom:/ks_scripts/ks.cfg
"""

KICKSTART_STUB = b"""#version=RHEL7
install
cdrom
lang en_US.UTF-8
keyboard us
%include /tmp/network.cfg
%include /mnt/ks_scripts/password.cfg
reboot
"""


def pseudo_random_bytes(name: str, size: int) -> bytes:
    """Deterministic bytes that do not compress (seeded by ``name``)."""
    return random.Random(name).randbytes(size)


def make_source_tree(
    root: Path, *, with_isolinux: bool = True, files: dict[str, bytes] | None = None
) -> Path:
    """Create a small, realistic source tree under ``root`` and return ``root``.

    ``files`` maps relative POSIX paths to content; they are written last, so they may
    replace the defaults.
    """
    layout: dict[str, bytes] = {
        ".treeinfo": b"[general]\nfamily = CentOS\nversion = 7\narch = x86_64\n",
        "images/install.img": pseudo_random_bytes("install.img", 256 * 1024),
        "images/pxeboot/initrd.img": pseudo_random_bytes("initrd.img", 40 * 1024 + 17),
        "ks_scripts/ks.cfg": KICKSTART_STUB,
        "EFI/BOOT/grub.cfg": b"set timeout=5\nmenuentry 'Install' {\n  linux /vmlinuz\n}\n",
        "repodata/repomd.xml": b'<?xml version="1.0"?>\n<repomd/>\n',
        "Packages/a/acl-2.2.51-14.el7.x86_64.rpm": pseudo_random_bytes("acl", 5000),
        "Packages/b/bash-4.2.46-34.el7.x86_64.rpm": pseudo_random_bytes("bash", 70000),
        "EULA": b"",
    }
    if with_isolinux:
        if SYSTEM_ISOLINUX_BIN.is_file():
            isolinux_bin = SYSTEM_ISOLINUX_BIN.read_bytes()
        else:
            isolinux_bin = pseudo_random_bytes("isolinux.bin", 24 * 1024)
        layout.update(
            {
                "isolinux/isolinux.bin": isolinux_bin,
                "isolinux/isolinux.cfg": ISOLINUX_CFG,
                "isolinux/vmlinuz": pseudo_random_bytes("vmlinuz", 96 * 1024 + 5),
                "isolinux/initrd.img": pseudo_random_bytes("isolinux-initrd", 64 * 1024),
            }
        )
    layout.update(files or {})

    root.mkdir(parents=True, exist_ok=True)
    for rel, content in layout.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "images" / "empty-dir").mkdir(exist_ok=True)
    return root


def copy_isolinux_bin(destination: Path) -> None:
    """Put an isolinux.bin at ``destination`` (Debian's, or deterministic bytes)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if SYSTEM_ISOLINUX_BIN.is_file():
        shutil.copyfile(SYSTEM_ISOLINUX_BIN, destination)
    else:
        destination.write_bytes(pseudo_random_bytes("isolinux.bin", 24 * 1024))


def tree_digest(root: Path) -> str:
    """sha256 over every relative path, its mode, and its content (or link target)."""
    digest = hashlib.sha256()
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            digest.update(os.fsencode(rel) + b"\0" + str(info.st_mode).encode() + b"\0")
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.fsencode(os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def settled(tree: Path) -> Path:
    """Backdate the tree's times, as if it had been left alone for a while.

    File times tick coarsely, so the layout cache does not trust (nor pin for an ISO URL) a
    tree changed in the last second; tests that change a tree and look again at once must
    age it first.
    """
    past = time.time_ns() - 10 * 10**9
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, ns=(past, past), follow_symlinks=False)
    return tree
