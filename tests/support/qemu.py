"""Booting an ISO on an emulated PC with QEMU, and checking what the boot kit printed.

``qemu-system-x86_64`` under software emulation (TCG; these machines have no KVM) boots the
ISO with SeaBIOS or OVMF (UEFI), as a CD or as a disk (IDE, or a USB stick on an xHCI
controller), until the machine powers off, a dead end shows on the console, or the time is
up. Without QEMU or OVMF the calling test skips (or fails, under ISOPORTAL_REQUIRE_TOOLS).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from django.test import Client

from tests.support.api import EXPECTED_NETWORK_CFG, download, static_request
from tests.support.bootkit import BOOTKIT_DIRECTORY, NO_MEDIUM, ConsoleReport, read_console
from tests.support.tools import unavailable

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


@dataclass(frozen=True)
class Boot:
    """One boot: what the kit's /init printed (None if it never did), and the raw logs."""

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


def qemu_command(iso: Path | str, workdir: Path, firmware: Firmware, medium: Medium) -> list[str]:
    """``iso`` is a file, or an http:// URL for the CD (QEMU's curl block driver, Debian's
    qemu-block-extra, reads it by Range requests as a BMC does)."""
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


def boot(iso: Path | str, workdir: Path, firmware: Firmware, medium: Medium) -> Boot:
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
    """An ISO of the boot kit for docs/api.md's static request, through the HTTP API."""
    response, data = download(client, static_request(osversionDir=osversion_dir))
    destination.write_bytes(data)
    assert destination.stat().st_size == int(response["Content-Length"])
    return destination


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
