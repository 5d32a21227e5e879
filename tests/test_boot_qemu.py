"""The portal's ISOs boot: generated through the API, booted on an emulated PC.

Each test asks ``POST /api/5.0/isos`` for an ISO of the boot kit (``tests/support/bootkit.py``:
a Debian kernel and an initramfs that prints ``ks_scripts/network.cfg`` to the serial
console) and boots it with ``qemu-system-x86_64`` under software emulation (TCG; these
machines have no KVM): SeaBIOS or OVMF (UEFI), as a CD or as a disk (IDE, or a USB
stick on an xHCI controller). The test passes when the kernel, started by isolinux or
GRUB from the ISO, printed the request's network.cfg byte for byte, from the expected
firmware and medium. A boot takes 5 to 15 seconds here.

``.ci/run`` installs QEMU, OVMF and the tools the kit needs; elsewhere the tests skip
when they are missing (and fail instead when ``ISOPORTAL_REQUIRE_TOOLS`` is set).
The boots themselves are run by ``tests/support/qemu.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from tests.support.qemu import Firmware, Medium, assert_booted, boot, generate

pytestmark = pytest.mark.boot


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
