"""The portal's ISOs boot: generated through the API, booted on an emulated PC.

Each test asks ``POST /api/5.0/isos`` for an ISO of the boot kit (``tests/bootkit.py``:
a Debian kernel and an initramfs that prints ``ks_scripts/network.cfg`` to the serial
console) and boots it with ``qemu-system-x86_64`` under software emulation (TCG; these
machines have no KVM): SeaBIOS or OVMF (UEFI), as a CD or as a disk (IDE, or a USB
stick on an xHCI controller). The test passes when the kernel, started by isolinux or
GRUB from the ISO, printed the request's network.cfg byte for byte, from the expected
firmware and medium. A boot takes 5 to 15 seconds here.

``.ci/run`` installs QEMU, OVMF and the tools the kit needs; elsewhere the tests skip
when they are missing (and fail instead when ``ISOPORTAL_REQUIRE_BOOT_TESTS`` is set).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from django.test import Client

from tests.bootkit import (
    BOOTKIT_DIRECTORY,
    NO_MEDIUM,
    REQUIRE_ENV,
    ConsoleReport,
    bootkit_source,
    read_console,
)
from tests.conftest import post_json, static_request
from tests.test_iso_download import EXPECTED_NETWORK_CFG

pytestmark = pytest.mark.boot

__all__ = ["bootkit_source"]  # the fixture, found by pytest through this module

URL = "/api/5.0/isos"
QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
BOOT_TIMEOUT = 180  # seconds; a boot takes 5 to 15 under TCG on two cores

Firmware = Literal["bios", "uefi"]
Medium = Literal["cd", "ide", "usb"]

# Seen on the console when a boot cannot succeed any more: stop waiting at once.
DEAD_ENDS = re.compile(
    rb"No bootable device|Boot failed|Shell> |UEFI Interactive Shell|Kernel panic|"
    rb"Could not find kernel image|no suitable boot|" + re.escape(NO_MEDIUM.encode())
)


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set")
    pytest.skip(reason)


@dataclass(frozen=True)
class Boot:
    report: ConsoleReport | None
    console: bytes
    firmware_log: bytes
    seconds: float

    def explain(self) -> str:
        tail = self.console[-3000:].decode("utf-8", "replace")
        firmware = self.firmware_log[-1500:].decode("utf-8", "replace")
        return (
            f"after {self.seconds:.1f} s the serial console ended with:\n{tail}\n"
            f"and the firmware's debug log with:\n{firmware}"
        )


def qemu_command(iso: Path, workdir: Path, firmware: Firmware, medium: Medium) -> list[str]:
    command = [
        QEMU,
        *("-machine", "pc", "-accel", "tcg", "-m", "512"),
        *("-display", "none", "-serial", f"file:{workdir / 'serial.log'}", "-monitor", "none"),
        # No network card: the firmware would try to boot from the network first.
        *("-nic", "none"),
        # poweroff (and a panic, with panic=-1) ends the emulator instead of rebooting;
        # SeaBIOS reboots one second after finding nothing to boot, ending it too.
        *("-no-reboot", "-boot", "reboot-timeout=1000"),
        # SeaBIOS says why it could not boot only on its debug port, not on the serial line.
        *("-debugcon", f"file:{workdir / 'firmware.log'}", "-global", "isa-debugcon.iobase=0x402"),
    ]
    if firmware == "uefi":
        variables = workdir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, variables)
        command += [
            *("-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
            *("-drive", f"if=pflash,format=raw,file={variables}"),
        ]
    if medium == "cd":
        command += ["-drive", f"file={iso},format=raw,if=ide,media=cdrom,readonly=on"]
    elif medium == "ide":
        # snapshot: the guest's writes (there are none) never reach the file.
        command += ["-drive", f"file={iso},format=raw,if=ide,media=disk,snapshot=on"]
    else:
        command += [
            *("-device", "qemu-xhci,id=xhci"),
            *("-drive", f"if=none,id=stick,file={iso},format=raw,snapshot=on"),
            *("-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"),
        ]
    return command


def boot(iso: Path, workdir: Path, firmware: Firmware, medium: Medium) -> Boot:
    """Boot ``iso`` until the machine powers off, a dead end shows, or the time is up."""
    if shutil.which(QEMU) is None:
        unavailable(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    if firmware == "uefi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        unavailable("OVMF is not installed (apt-get install ovmf)")
    log = workdir / "serial.log"
    log.write_bytes(b"")
    command = qemu_command(iso, workdir, firmware, medium)
    started = time.monotonic()
    with (workdir / "qemu.stderr").open("wb") as stderr:
        machine = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            while machine.poll() is None and time.monotonic() - started < BOOT_TIMEOUT:
                if DEAD_ENDS.search(log.read_bytes()):
                    time.sleep(1)  # let what follows the dead end reach the log
                    break
                time.sleep(0.25)
        finally:
            if machine.poll() is None:
                machine.kill()
            machine.wait(timeout=30)
    seconds = time.monotonic() - started
    console = log.read_bytes()
    errors = (workdir / "qemu.stderr").read_bytes()
    assert machine.returncode in (0, -9), f"{QEMU} failed ({machine.returncode}): {errors.decode()[-2000:]}"
    firmware_log = workdir / "firmware.log"
    firmware_output = firmware_log.read_bytes() if firmware_log.exists() else b""
    return Boot(read_console(console), console, firmware_output, seconds)


def generate(client: Client, destination: Path, osversion_dir: str = BOOTKIT_DIRECTORY) -> Path:
    """An ISO of the boot kit for API.md's static request, through the HTTP API."""
    response = post_json(client, URL, static_request(osversionDir=osversion_dir))
    assert response.status_code == 200, response.content[:300] if not response.streaming else ""
    destination.write_bytes(b"".join(response.streaming_content))
    assert destination.stat().st_size == int(response["Content-Length"])
    return destination


def hide_el_torito(iso: Path) -> Path:
    """A copy of ``iso`` whose El Torito boot record no firmware recognizes.

    OVMF boots El Torito from a hard disk or a USB stick too, so it would never need the
    hybrid image's partition table; much real firmware does not. With the record's
    system identifier changed, the firmware must find the EFI System Partition in the
    partition table; the ISO9660 file system (which ignores boot records) is unchanged.
    """
    data = bytearray(iso.read_bytes())
    for sector in range(16, 64):
        descriptor = 2048 * sector
        kind, magic = data[descriptor], bytes(data[descriptor + 1 : descriptor + 6])
        assert magic == b"CD001", f"no volume descriptor at sector {sector}"
        if kind == 255:  # the set's terminator
            break
        if kind == 0 and data[descriptor + 7 : descriptor + 30] == b"EL TORITO SPECIFICATION":
            data[descriptor + 7 : descriptor + 30] = b"HIDDEN BY THE BOOT TEST"  # same length
            hidden = iso.with_name(f"{iso.stem}-no-el-torito.iso")
            hidden.write_bytes(data)
            return hidden
    raise AssertionError("the ISO has no El Torito boot record")


def check_boot(
    client: Client,
    tmp_path: Path,
    firmware: Firmware,
    medium: Medium,
    expected_device: str,
    *,
    expected_grub: str | None = None,
    without_el_torito: bool = False,
) -> None:
    """Generate the ISO, boot it, and check what the kit's /init (and GRUB) printed.

    ``expected_device`` and ``expected_grub`` (GRUB's $cmdpath, where the firmware
    loaded BOOTX64.EFI from) are regular expressions.
    """
    iso = generate(client, tmp_path / "bootkit.iso")
    if without_el_torito:
        iso = hide_el_torito(iso)
    result = boot(iso, tmp_path, firmware, medium)
    print(f"{firmware} {medium}: {result.seconds:.1f} s")  # shown with -s or -rA
    assert_booted(result, firmware, expected_device, expected_grub)


def assert_booted(
    result: Boot, firmware: Firmware, expected_device: str, expected_grub: str | None = None
) -> None:
    """The kit's /init printed the request's network.cfg, under this firmware, from
    a medium matching ``expected_device`` (and GRUB came from ``expected_grub``)."""
    assert result.report is not None, result.explain()
    assert result.report.network_cfg_base64 == EXPECTED_NETWORK_CFG, result.explain()
    assert result.report.network_cfg == EXPECTED_NETWORK_CFG, result.explain()
    assert result.report.firmware == firmware, result.explain()
    assert re.fullmatch(expected_device, result.report.medium), result.explain()
    if expected_grub is not None:
        assert re.fullmatch(expected_grub, result.report.grub_loaded_from or ""), result.explain()


@pytest.mark.django_db
def test_bios_boots_the_iso_as_a_cd(operations_client: Client, bootkit_source: Path, tmp_path: Path) -> None:
    check_boot(operations_client, tmp_path, "bios", "cd", r"/dev/sr\d")


@pytest.mark.django_db
@pytest.mark.parametrize("bus", ["ide", "usb"])
def test_bios_boots_the_iso_as_a_disk(
    operations_client: Client, bootkit_source: Path, tmp_path: Path, bus: Medium
) -> None:
    """The hybrid image's MBR: the same file written to a hard disk or a USB stick.

    SeaBIOS never looks for El Torito on a disk: only the MBR's boot code can start it.
    """
    check_boot(operations_client, tmp_path, "bios", bus, r"/dev/sd[a-z]\d*")


@pytest.mark.django_db
def test_uefi_boots_the_iso_as_a_cd(operations_client: Client, bootkit_source: Path, tmp_path: Path) -> None:
    """The El Torito entry for the EFI platform, its image images/efiboot.img."""
    check_boot(operations_client, tmp_path, "uefi", "cd", r"/dev/sr\d", expected_grub=r"\(cd\d+\)/EFI/BOOT")


@pytest.mark.django_db
@pytest.mark.parametrize("bus", ["ide", "usb"])
def test_uefi_boots_the_iso_as_a_disk(
    operations_client: Client, bootkit_source: Path, tmp_path: Path, bus: Medium
) -> None:
    """The hybrid image's EFI System Partition, found by the firmware in its partition table.

    OVMF finds it in the isohybrid MBR (partition 2, type 0xEF): EDK2 reads a GPT only
    behind a protective MBR (an entry of type 0xEE), and a hybrid image's MBR holds the
    ISO and EFI partitions instead, as Debian's and Fedora's do. The GPT itself is checked
    by reading it back (tests/test_builder_boot.py), not by this boot.
    """
    check_boot(
        operations_client,
        tmp_path,
        "uefi",
        bus,
        r"/dev/sd[a-z]\d*",
        expected_grub=r"\(hd\d+,(msdos|gpt)\d+\)/EFI/BOOT",
        without_el_torito=True,
    )
