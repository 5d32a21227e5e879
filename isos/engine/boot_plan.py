"""Which files of a source boot the ISO: by convention, or as its ``isoportal.json`` says.

One rule (:func:`resolve_boot`) with a probe that looks paths up in the scanned tree or
on disk, so the layout and ``describe_boot()`` cannot disagree (docs/design.md, "The
engine"; docs/sources-and-booting.md). Nothing here writes to the source or knows pycdlib.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal

from isos.engine.source_files import FILE_FLAGS, SEARCH_FLAGS, close_now, open_real_path
from isos.engine.system_area import (
    BIOS_CD,
    BIOS_DISK,
    MODES,
    UEFI_CD,
    UEFI_DISK,
    VendorSystemArea,
    read_system_area,
    unsupported,
)

SETTINGS_FILE: Final = "isoportal.json"
BIOS_BOOT_FILE: Final = "isolinux/isolinux.bin"
BIOS_BOOT_CATALOG: Final = "isolinux/boot.cat"
# Where the catalog goes when only UEFI boots (no isolinux folder to hold it).
EFI_ONLY_BOOT_CATALOG: Final = "boot.cat"
# The EFI System Partition image of Red Hat-style trees first; then Debian's and GRUB's.
EFI_IMAGES: Final = ("images/efiboot.img", "EFI/BOOT/efiboot.img", "boot/grub/efi.img")
SETTINGS_KEYS: Final = ("bios_boot_file", "boot_catalog", "efi_image", "volume_id")

# An El Torito entry counts 512-byte sectors in 16 bits: a bigger EFI image cannot be
# described (nor its MBR partition sized the way pycdlib sizes it).
EFI_IMAGE_MAX: Final = 0xFFFF * 512
# isolinux.bin built for isohybrid carries this at offset 0x40; the MBR code checks it.
_ISOHYBRID_SIGNATURE: Final = b"\xfb\xc0\x78\x70"
_ISOHYBRID_SIGNATURE_AT: Final = 0x40
HEAD_BYTES: Final = _ISOHYBRID_SIGNATURE_AT + len(_ISOHYBRID_SIGNATURE)
_SETTINGS_MAX_BYTES: Final = 64 * 1024
# The Joliet descriptor holds the label in UCS-2 within 32 bytes; installers find their
# CD by it (inst.stage2=hd:LABEL=...), so it is kept as written, within these characters.
VOLUME_ID: Final = re.compile(r"[A-Za-z0-9_ .+-]{1,16}")
VOLUME_ID_RULE: Final = "1 to 16 of A-Z a-z 0-9 _ space . + -"


class BootSettingsError(ValueError):
    """The settings file or a path it names is unusable; the message names no absolute path."""


@dataclass(frozen=True)
class Found:
    """What a probe sees at a relative path: its kind, size and first bytes (files)."""

    kind: Literal["dir", "file"]
    size: int = 0
    head: bytes = b""


Probe = Callable[[str], "Found | None"]


@dataclass(frozen=True)
class BootPlan:
    """The boot decision for one tree; paths relative to the ISO root, POSIX."""

    bios_boot_file: str | None
    boot_catalog: str | None
    efi_image: str | None
    volume_id: str | None  # None: the caller's default
    hybrid: bool  # isohybrid MBR (and GPT when there is an EFI image)
    not_bootable_reason: str

    @property
    def bootable(self) -> bool:
        return self.bios_boot_file is not None or self.efi_image is not None

    def description(self) -> str:
        """One line, e.g. ``BIOS El Torito: isolinux/isolinux.bin; UEFI El Torito:
        images/efiboot.img; hybrid MBR+GPT`` (written into ``ks_scripts/state.out``)."""
        if not self.bootable:
            return f"not bootable ({self.not_bootable_reason})"
        parts = []
        if self.bios_boot_file is not None:
            parts.append(f"BIOS El Torito: {self.bios_boot_file}")
        if self.efi_image is not None:
            parts.append(f"UEFI El Torito: {self.efi_image}")
        if self.hybrid:
            parts.append("hybrid MBR+GPT" if self.efi_image is not None else "hybrid MBR")
        return "; ".join(parts)


def read_settings(source_dir: str) -> dict[str, str | None]:
    """The source's ``isoportal.json``, checked; ``{}`` when there is none.

    Opened from the source's descriptor without following symlinks: a symlink there is
    not a settings file, whatever it leads to.
    """
    try:
        root = open_real_path(os.path.abspath(source_dir), SEARCH_FLAGS)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BootSettingsError(f"cannot read {SETTINGS_FILE} ({exc.strerror})") from exc
    try:
        descriptor = os.open(SETTINGS_FILE, FILE_FLAGS, dir_fd=root)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BootSettingsError(f"{SETTINGS_FILE} is not a regular file") from exc
        raise BootSettingsError(f"cannot read {SETTINGS_FILE} ({exc.strerror})") from exc
    finally:
        close_now(root)
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise BootSettingsError(f"{SETTINGS_FILE} is not a regular file")
        if info.st_size > _SETTINGS_MAX_BYTES:
            raise BootSettingsError(f"{SETTINGS_FILE} is larger than {_SETTINGS_MAX_BYTES} bytes")
        try:
            raw = handle.read(_SETTINGS_MAX_BYTES + 1)
        except OSError as exc:
            raise BootSettingsError(f"cannot read {SETTINGS_FILE} ({exc.strerror})") from exc
    if len(raw) > _SETTINGS_MAX_BYTES:
        raise BootSettingsError(f"{SETTINGS_FILE} is larger than {_SETTINGS_MAX_BYTES} bytes")
    try:
        loaded = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise BootSettingsError(f"{SETTINGS_FILE} is not valid JSON ({exc})") from exc
    except RecursionError as exc:  # arrays or objects nested deeper than the parser follows
        raise BootSettingsError(f"{SETTINGS_FILE} is not valid JSON (nested too deeply)") from exc
    if not isinstance(loaded, dict):
        raise BootSettingsError(f"{SETTINGS_FILE} must hold a JSON object")
    unknown = sorted(set(loaded) - set(SETTINGS_KEYS))
    if unknown:
        raise BootSettingsError(
            f"{SETTINGS_FILE}: unknown key {', '.join(map(repr, unknown))}"
            f" (known keys: {', '.join(SETTINGS_KEYS)})"
        )
    settings: dict[str, str | None] = {}
    for key, value in loaded.items():
        if key == "volume_id":
            if not isinstance(value, str) or not VOLUME_ID.fullmatch(value):
                raise BootSettingsError(f"{SETTINGS_FILE}: volume_id must be {VOLUME_ID_RULE}")
        elif value is not None and not _is_relative_path(value):
            raise BootSettingsError(
                f"{SETTINGS_FILE}: {key} must be a relative path inside the source directory (or null)"
            )
        settings[key] = value
    return settings


def _is_relative_path(value: object) -> bool:
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value:
        return False
    return "\x00" not in value and all(part not in ("", ".", "..") for part in value.split("/"))


def resolve_boot(settings: dict[str, str | None], probe: Probe) -> BootPlan:
    """Decide how the tree boots. A path the settings name must exist (else
    BootSettingsError); a conventional path that is missing simply does not boot."""

    def named_file(key: str) -> Found | None:
        path = settings[key]
        assert path is not None
        found = probe(path)
        if found is None or found.kind != "file":
            raise BootSettingsError(f"{SETTINGS_FILE}: {key} {path} is not a file in the source tree")
        return found

    bios_found: Found | None = None
    if "bios_boot_file" in settings:
        bios = settings["bios_boot_file"]
        bios_found = named_file("bios_boot_file") if bios is not None else None
    else:
        bios, bios_found = BIOS_BOOT_FILE, probe(BIOS_BOOT_FILE)
        if bios_found is None or bios_found.kind != "file":
            bios = None

    efi_found: Found | None = None
    if "efi_image" in settings:
        efi = settings["efi_image"]
        efi_found = named_file("efi_image") if efi is not None else None
    else:
        efi = None
        for candidate in EFI_IMAGES:
            found = probe(candidate)
            if found is not None and found.kind == "file":
                efi, efi_found = candidate, found
                break
    if efi is not None and efi == bios:
        raise BootSettingsError(f"{SETTINGS_FILE}: bios_boot_file and efi_image name the same file")
    if efi_found is not None and not 0 < efi_found.size <= EFI_IMAGE_MAX:
        raise BootSettingsError(
            f"the EFI image {efi} must hold 1 to {EFI_IMAGE_MAX} bytes (El Torito's limit);"
            f' set "efi_image": null in {SETTINGS_FILE} to build without UEFI'
        )

    catalog = _catalog_path(settings, bios, efi, probe)
    hybrid = bios_found is not None and (
        bios_found.head[_ISOHYBRID_SIGNATURE_AT:HEAD_BYTES] == _ISOHYBRID_SIGNATURE
    )
    return BootPlan(
        bios_boot_file=bios,
        boot_catalog=catalog,
        efi_image=efi,
        volume_id=settings.get("volume_id"),
        hybrid=hybrid,
        not_bootable_reason="no boot files named" if settings else f"no {BIOS_BOOT_FILE}",
    )


def _catalog_path(
    settings: dict[str, str | None], bios: str | None, efi: str | None, probe: Probe
) -> str | None:
    if bios is None and efi is None:
        return None
    catalog = settings.get("boot_catalog")
    if catalog is None:
        if bios is None:
            return EFI_ONLY_BOOT_CATALOG
        folder = bios.rpartition("/")[0]
        return f"{folder}/boot.cat" if folder else "boot.cat"
    if catalog in (bios, efi):
        raise BootSettingsError(f"{SETTINGS_FILE}: boot_catalog names a boot file")
    folder = catalog.rpartition("/")[0]
    parent = probe(folder) if folder else Found("dir")
    if parent is None or parent.kind != "dir":
        raise BootSettingsError(
            f"{SETTINGS_FILE}: boot_catalog {catalog} is not in a folder of the source tree"
        )
    existing = probe(catalog)
    if existing is not None and existing.kind == "dir":
        raise BootSettingsError(f"{SETTINGS_FILE}: boot_catalog {catalog} is a folder in the source tree")
    return catalog


def disk_probe(source_dir: str) -> Probe:
    """A probe of the tree on disk, by the layout's rules: no symlink is followed (each
    component is looked up from its directory's descriptor, the file opened with
    ``O_NOFOLLOW``), any path that cannot be read counts as absent (the build then says why)."""

    def probe(rel: str) -> Found | None:
        try:
            descriptor = open_real_path(os.path.abspath(source_dir), SEARCH_FLAGS)
        except OSError:
            return None
        try:
            parts = rel.split("/")
            for index, part in enumerate(parts):
                info = os.stat(part, dir_fd=descriptor, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    below = os.open(part, SEARCH_FLAGS, dir_fd=descriptor)
                    close_now(descriptor)
                    descriptor = below
                    continue
                if not stat.S_ISREG(info.st_mode) or index != len(parts) - 1:
                    return None
                file = os.open(part, FILE_FLAGS, dir_fd=descriptor)
                try:
                    opened = os.fstat(file)
                    if not stat.S_ISREG(opened.st_mode):
                        return None
                    return Found("file", opened.st_size, os.pread(file, HEAD_BYTES, 0))
                finally:
                    close_now(file)
        except OSError:
            return None
        finally:
            close_now(descriptor)
        return Found("dir")

    return probe


def content_inputs(source_dir: str) -> list[str]:
    """The files whose content, not only their names and sizes, shapes a layout: the
    settings file and the BIOS boot file (its checksum is in the boot info table), for
    a cache to watch. Never raises: a bad settings file fails the build, not this."""
    paths = [SETTINGS_FILE, BIOS_BOOT_FILE]
    try:
        named = read_settings(source_dir).get("bios_boot_file")
    except BootSettingsError:
        named = None
    if named is not None and named not in paths:
        paths.append(named)
    return paths


# --------------------------------------------------------------------------------------
# A vendor ISO used as the source: its own El Torito catalog, read directly
# --------------------------------------------------------------------------------------

_SECTOR: Final = 2048
_FIRST_DESCRIPTOR: Final = 16
_MAX_DESCRIPTORS: Final = 64  # a real volume descriptor set holds a handful
_EL_TORITO_ID: Final = b"EL TORITO SPECIFICATION"
_PLATFORMS: Final = {0x00: "BIOS", 0xEF: "UEFI", 0x01: "PowerPC", 0x02: "Mac"}


@dataclass(frozen=True)
class VendorBoot:
    """A vendor ISO's El Torito entries (platform ids, catalog order), whether the ISO
    made from it is hybrid anew (its initial entry boots an isohybrid isolinux.bin), and
    otherwise its own system area, kept and re-pointed (:mod:`isos.engine.system_area`)."""

    platforms: tuple[int, ...]
    hybrid: bool
    area: VendorSystemArea | None = None
    initial_image: int | None = None  # the BIOS El Torito image's offset in the vendor ISO
    volume_bytes: int = 0
    vendor_modes: tuple[str, ...] = ()  # the modes the vendor's own ISO boots in
    # The vendor's volume modification dates by descriptor type (1 primary, 2 Joliet).
    modification_dates: tuple[tuple[int, bytes], ...] = ()
    # What a hybrid ISO made anew lacks of the vendor's (its APM: Mac booting).
    not_remade: tuple[str, ...] = ()

    def modes(self) -> tuple[str, ...]:
        """The modes the portal's ISO boots in (docs/sources-and-booting.md)."""
        efi = 0xEF in self.platforms
        kept = {
            BIOS_CD: 0x00 in self.platforms,
            BIOS_DISK: self.hybrid or (self.area is not None and self.area.bios_disk()),
            UEFI_CD: efi,
            UEFI_DISK: (self.hybrid and efi) or (self.area is not None and self.area.uefi_disk()),
        }
        return tuple(mode for mode in MODES if kept[mode])

    def description(self) -> str:
        """One line for ``ks_scripts/state.out``, e.g. ``El Torito from the vendor ISO:
        BIOS, UEFI; hybrid MBR+GPT; boot modes: BIOS CD, BIOS disk/USB, UEFI CD, UEFI
        disk/USB``."""
        if not self.platforms:
            return "not bootable (the vendor ISO has no El Torito boot entry)"
        names = [_PLATFORMS.get(platform, f"platform 0x{platform:02x}") for platform in self.platforms]
        text = f"El Torito from the vendor ISO: {', '.join(names)}"
        if self.hybrid:
            text += "; hybrid MBR+GPT" if 0xEF in self.platforms else "; hybrid MBR"
            if self.not_remade:
                text += f"; not kept: {', '.join(self.not_remade)}"
        elif self.area is not None:
            text += f"; {self.area.description()}"
        return f"{text}; boot modes: {', '.join(self.modes()) or 'none'}"

    def check_modes(self) -> None:
        """SourceError when the portal's ISO would lose a mode the vendor's boots in."""
        lost = [mode for mode in self.vendor_modes if mode not in self.modes()]
        if lost:
            raise unsupported(f"the vendor's ISO boots {', '.join(lost)}, which the portal's would not")


def read_vendor_boot(path: str) -> VendorBoot:
    """:func:`read_vendor_boot_from` the vendor ISO at its real ``path``, opened with no
    symlink at any component; no El Torito entry when it cannot be (the build says why)."""
    try:
        descriptor = open_real_path(os.path.abspath(path), FILE_FLAGS)
    except OSError:
        return VendorBoot((), hybrid=False)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return VendorBoot((), hybrid=False)
        return read_vendor_boot_from(handle)


def read_vendor_boot_from(handle: BinaryIO) -> VendorBoot:
    """Read a vendor ISO's boot record, El Torito catalog, initial boot image's head and
    system area (MBR, GPT).

    The volume descriptors and the catalog's first sector (ECMA-119 8, El Torito 2.0);
    no El Torito entry for an ISO without a boot record, or one that cannot be read
    (the build then says why). Raises SourceError ("vendor ISO layout not supported:
    ...") for a system area the engine cannot keep (:mod:`isos.engine.system_area`).
    """
    try:
        volume_bytes = _volume_bytes(handle)
        dates = _modification_dates(handle)
        catalog = _read_catalog(handle)
        entries = [catalog[i : i + 32] for i in range(0, len(catalog) - 31, 32)]
        platforms: list[int] = []
        if len(entries) < 2 or entries[0][0] != 1:  # no catalog (or no validation entry)
            entries = []
        elif entries[1][0] == 0x88:
            platforms = [entries[0][1]]
        index = 2
        while index < len(entries) and entries[index][0] in (0x90, 0x91):
            header = entries[index]
            count = int.from_bytes(header[2:4], "little")
            section = entries[index + 1 : index + 1 + count]
            platforms += [header[1] for entry in section if entry[0] == 0x88]
            index += 1 + count
            if header[0] == 0x91:  # the final section header
                break
        hybrid = False
        initial = None
        if platforms and platforms[0] == 0x00 and entries[1][0] == 0x88:  # the initial entry
            # pycdlib's isohybrid needs the initial (BIOS) entry's image to be one.
            initial = int.from_bytes(entries[1][8:12], "little") * _SECTOR
            handle.seek(initial)
            head = handle.read(HEAD_BYTES)
            hybrid = head[_ISOHYBRID_SIGNATURE_AT:HEAD_BYTES] == _ISOHYBRID_SIGNATURE
        handle.seek(0)
        mbr = handle.read(512)
    except OSError:
        return VendorBoot((), hybrid=False)
    vendor_modes = [mode for mode, on in ((BIOS_CD, 0x00 in platforms), (UEFI_CD, 0xEF in platforms)) if on]
    area = None
    not_remade: tuple[str, ...] = ()
    if hybrid:
        if mbr[:2] == b"ER":  # -isohybrid-apm-hfsplus (Debian): pycdlib makes no APM
            not_remade = ("APM (Mac)",)
        if any(mbr[:440]) and mbr[510:512] == b"\x55\xaa":  # the vendor's isohybrid MBR
            vendor_modes.append(BIOS_DISK)
            if _efi_partition(mbr):
                vendor_modes.append(UEFI_DISK)
    else:
        area = read_system_area(handle, volume_bytes, initial)
        if area is not None:
            vendor_modes += [
                mode for mode, on in ((BIOS_DISK, area.bios_disk()), (UEFI_DISK, area.uefi_disk())) if on
            ]
    ordered = tuple(mode for mode in MODES if mode in vendor_modes)
    return VendorBoot(tuple(platforms), hybrid, area, initial, volume_bytes, ordered, dates, not_remade)


def _efi_partition(mbr: bytes) -> bool:
    """Whether an MBR lists an EFI system partition (0xEF) or a protective GPT (0xEE)."""
    return any(mbr[446 + 16 * index + 4] in (0xEF, 0xEE) for index in range(4))


def _modification_dates(handle: BinaryIO) -> tuple[tuple[int, bytes], ...]:
    """The first primary and supplementary volume descriptors' modification dates."""
    dates: dict[int, bytes] = {}
    for index in range(_FIRST_DESCRIPTOR, _FIRST_DESCRIPTOR + _MAX_DESCRIPTORS):
        handle.seek(index * _SECTOR)
        descriptor = handle.read(_SECTOR)
        if len(descriptor) < _SECTOR or descriptor[1:6] != b"CD001" or descriptor[0] == 255:
            break
        if descriptor[0] in (1, 2):
            dates.setdefault(descriptor[0], descriptor[830:847])
    return tuple(dates.items())


def _volume_bytes(handle: BinaryIO) -> int:
    """The primary volume descriptor's volume space size, in bytes (0 without one)."""
    handle.seek(_FIRST_DESCRIPTOR * _SECTOR)
    descriptor = handle.read(_SECTOR)
    if len(descriptor) < _SECTOR or descriptor[:6] != b"\x01CD001":
        return 0
    return int.from_bytes(descriptor[80:84], "little") * int.from_bytes(descriptor[128:130], "little")


def _read_catalog(handle: BinaryIO) -> bytes:
    """The boot catalog's first sector, or b"" when the ISO has no El Torito boot record."""
    catalog_sector = None
    for index in range(_FIRST_DESCRIPTOR, _FIRST_DESCRIPTOR + _MAX_DESCRIPTORS):
        handle.seek(index * _SECTOR)
        descriptor = handle.read(_SECTOR)
        if len(descriptor) < _SECTOR or descriptor[1:6] != b"CD001" or descriptor[0] == 255:
            break
        if descriptor[0] == 0 and descriptor[7:39].rstrip(b"\0") == _EL_TORITO_ID:
            catalog_sector = int.from_bytes(descriptor[0x47:0x4B], "little")
    if catalog_sector is None:
        return b""
    handle.seek(catalog_sector * _SECTOR)
    return handle.read(_SECTOR)
