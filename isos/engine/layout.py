"""Laying an image out with pycdlib: a source directory, or a vendor ISO, plus the extra files.

pycdlib only stats source files here (and reads the BIOS boot file once, for the boot
info table's checksum); nothing is written. The result, :class:`Layout`, says where each
file's bytes go and where they come from; the stream and the templates take it from
there. Both kinds of source share one tail: the hybrid MBR/GPT, the final size and the
file extents (:func:`_finish`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from isos.engine.boot_plan import (
    BootPlan,
    BootSettingsError,
    read_settings,
    read_vendor_boot_from,
    resolve_boot,
)
from isos.engine.errors import SourceError
from isos.engine.hybrid import add_isohybrid, hybrid_seed, settle_gpt
from isos.engine.names import (
    RELOCATION_DEPTH,
    RELOCATION_KEY,
    RELOCATION_RR_NAME,
    assign_names,
    printable,
    valid_utf8,
    volume_label,
)
from isos.engine.plan import BLOCK_SIZE, FileData
from isos.engine.pycdlib_internals import (
    boot_entry_rba_offsets,
    close_quietly,
    detach_outside_images,
    file_extents,
    modification_date_fixes,
    volume_size,
)
from isos.engine.scan import check_extra_path, overlay_extras, scan_source, tree_probe
from isos.engine.source_files import NotAsLaidOut, SourceRoot, close_now, is_symlink_error, open_checked
from isos.engine.system_area import VendorSystemArea, re_point
from isos.engine.tree import Entry, lookup, max_dir_depth, walk_files
from isos.engine.vendor import (
    VendorOrigin,
    add_extra_files,
    is_vendor_iso,
    open_vendor_iso,
    open_vendor_source,
)


@dataclass
class Layout:
    """pycdlib's layout of a tree, before its metadata is rendered."""

    iso: pycdlib.PyCdlib
    files: list[FileData]
    patches: list[tuple[int, bytes]]  # everything the stream patches over the metadata
    fixes: list[tuple[int, bytes]]  # of which: our corrections to pycdlib's write_fp()
    size: int  # with the hybrid padding
    boot_description: str
    # extra file → (ISO9660 path, Joliet path, or None in a vendor ISO without Joliet)
    extra_paths: dict[str, tuple[str, str | None]]
    source: SourceRoot | None = None  # a directory source, as scanned (None: a vendor ISO)


@contextlib.contextmanager
def closed_on_error(iso: pycdlib.PyCdlib) -> Iterator[None]:
    """Release pycdlib's state (and any file it opened) if anything in the block fails."""
    try:
        yield
    except BaseException:
        close_quietly(iso)
        raise


def lay_out(source_dir: os.PathLike[str] | str, extra_files: Mapping[str, bytes], volume_id: str) -> Layout:
    """The layout of a source directory or vendor ISO plus ``extra_files``.

    Raises SourceError when the source cannot be laid out, ValueError for a malformed
    extra file path. The caller closes ``Layout.iso``.

    The source is resolved to its real path here, once; from then on nothing under it is
    opened through a symlink (:mod:`isos.engine.source_files`).
    """
    root = os.path.realpath(os.fspath(source_dir))
    if is_vendor_iso(root):
        return _lay_out_vendor_iso(root, extra_files)
    return _lay_out_tree(root, extra_files, volume_id)


def _lay_out_tree(root: str, extra_files: Mapping[str, bytes], volume_id: str) -> Layout:
    top = scan_source(root)
    try:
        settings = read_settings(root)
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc
    overlay_extras(top, extra_files)
    try:
        boot = resolve_boot(settings, tree_probe(top))
    except BootSettingsError as exc:
        raise SourceError(str(exc)) from exc

    if boot.boot_catalog is not None:
        folder, _, name = boot.boot_catalog.rpartition("/")
        parent = lookup(top, folder) if folder else top
        assert parent is not None and parent.kind == "dir"  # resolve_boot checked it
        parent.children[name] = Entry(name=name, rel=boot.boot_catalog, kind="catalog")
    if max_dir_depth(top) >= RELOCATION_DEPTH:
        # pycdlib will create the relocation directory at the root: reserve its names
        # so that no source entry can clash with it.
        top.children[RELOCATION_KEY] = Entry(
            name=RELOCATION_RR_NAME, rel=RELOCATION_RR_NAME, kind="relocation"
        )
    assign_names(top)
    relocation = top.children.pop(RELOCATION_KEY, None)

    iso = pycdlib.PyCdlib()
    with closed_on_error(iso):
        iso.new(
            interchange_level=3,
            vol_ident=boot.volume_id or volume_label(volume_id),
            joliet=3,
            rock_ridge="1.09",
        )
        if relocation is not None:
            iso.set_relocated_name(relocation.iso_name, relocation.rr_name)
        memory: dict[int, Entry] = {}
        _populate(iso, top, memory)
        if boot.bootable:
            _add_boot_entries(iso, top, boot)
        assert top.identity is not None
        source = SourceRoot(root, top.identity)
        layout = _finish(
            iso,
            memory=memory,
            sources={e.source: e for e in walk_files(top) if e.source is not None},
            extra_paths={entry.rel: (entry.iso_path, entry.joliet_path) for entry in memory.values()},
            hybrid=boot.hybrid,
            efi=boot.efi_image is not None,
            boot_description=boot.description(),
            source=source,
        )
        _check_boot_info_tables(iso, layout)
        return layout


def _lay_out_vendor_iso(path: str, extra_files: Mapping[str, bytes]) -> Layout:
    """Open the vendor ISO, put the extra files in, lay it out; nothing is written to it.

    pycdlib parses every directory record of the ISO into objects (a few per file: some
    60 MB for a DVD of 10,000 files); the layout cache does this in a child process.
    The vendor's El Torito entries, boot info table and volume id are kept as parsed
    (pycdlib re-patches the boot info table with the boot file's new place). Its hybrid
    MBR/GPT is not re-laid out as parsed: pycdlib 1.22.0 gets that wrong (an MBR-only one
    fails in force_consistency() once the ISO has an EFI entry; a GPT comes out with a
    wrong array CRC and a backup GPT where none fits). It is dropped, and made anew the
    way a directory source's is (:mod:`isos.engine.hybrid`) when the initial entry boots
    an isohybrid isolinux.bin, whether the vendor's was hybrid or not. Any other system
    area (GRUB2's layouts) is kept as the vendor wrote it and re-pointed at the new layout
    (:mod:`isos.engine.system_area`, :func:`_keep_system_area`), or the source is refused;
    so is one whose ISO would boot in fewer modes than the vendor's.
    """
    for key in extra_files:
        check_extra_path(key)
    handle, origin = open_vendor_source(path)
    try:
        boot = read_vendor_boot_from(handle)
        boot.check_modes()  # before anything is laid out: never a mode quietly dropped
    except BaseException:
        handle.close()
        raise
    iso = pycdlib.PyCdlib()
    with closed_on_error(iso):
        open_vendor_iso(iso, handle)  # iso owns the handle from here on
        data_end = boot.area.data_end if boot.area is not None else boot.volume_bytes
        outside = detach_outside_images(iso, data_end)
        if outside and boot.area is None:
            raise SourceError(
                "vendor ISO layout not supported: an El Torito image outside the ISO 9660 volume"
                " but no partition table pointing at it"
            )
        memory, extra_paths = add_extra_files(iso, extra_files)
        try:
            layout = _finish(
                iso,
                memory=memory,
                sources={},
                extra_paths=extra_paths,
                hybrid=boot.hybrid,
                efi=0xEF in boot.platforms,
                boot_description=boot.description(),
                vendor=origin,
            )
        except PyCdlibException as exc:  # from force_consistency(): the rest say what failed
            raise SourceError(f"cannot lay out the vendor ISO ({exc})") from exc
        # The vendor's modification dates, which pycdlib replaced with the time of writing
        # (a correction to pycdlib's own writer too, as the GPT's).
        dates = modification_date_fixes(iso, dict(boot.modification_dates))
        layout.patches.extend(dates)
        layout.fixes.extend(dates)
        if boot.area is not None:
            _keep_system_area(iso, layout, boot.area, outside, origin)
        return layout


def _keep_system_area(
    iso: pycdlib.PyCdlib,
    layout: Layout,
    area: VendorSystemArea,
    outside: list[tuple[int, int]],
    origin: VendorOrigin,
) -> None:
    """The vendor's system area re-pointed at the new layout; its appended partitions
    streamed after the new volume from the vendor ISO's own bytes, El Torito entries that
    pointed into them pointed at their new place (:mod:`isos.engine.system_area`)."""
    new_volume = layout.size
    moved = {f.origin_offset: f.offset for f in layout.files if f.origin_stamp is not None}
    repointed = re_point(area, new_volume, moved)
    delta = new_volume - area.volume_bytes
    if layout.files and layout.files[-1].end > repointed.tail_start:
        raise SourceError(
            "vendor ISO layout not supported: the new ISO 9660 data would run into the backup GPT"
            " or the appended partitions"
        )
    rba_at = boot_entry_rba_offsets(iso)
    for index, offset in outside:
        if not any(start <= offset < start + length for _, length, start in repointed.appended):
            raise SourceError(
                "vendor ISO layout not supported: an El Torito image outside the ISO 9660 volume"
                " and in no appended partition"
            )
        layout.patches.append((rba_at[index], ((offset + delta) // BLOCK_SIZE).to_bytes(4, "little")))
    for new_offset, length, vendor_offset in repointed.appended:
        layout.files.append(
            FileData(
                new_offset,
                length,
                f"{origin.name} (appended partition)",
                origin.path,
                None,
                origin_offset=vendor_offset,
                origin_stamp=origin.stamp,
            )
        )
    layout.files.sort(key=lambda f: f.offset)
    _adjust_boot_info_checksum(layout, repointed.in_boot_image)
    layout.patches.extend(repointed.patches)
    layout.size = repointed.size


def _adjust_boot_info_checksum(layout: Layout, in_boot_image: list[tuple[int, bytes, bytes]]) -> None:
    """A patch inside a boot image past byte 64 (GRUB's --grub2-boot-info) changes what the
    boot info table's checksum covers (32-bit little-endian words): the checksum follows,
    as xorriso computes it after patching."""
    for at, new, old in in_boot_image:
        for index, (offset, record) in enumerate(layout.patches):
            image = offset - 8
            if len(record) != 56 or not image + 64 <= at < image + 2048 * 1024 or (at - image) % 4:
                continue
            checksum = int.from_bytes(record[12:16], "little")
            for word in range(0, len(new), 4):
                checksum += int.from_bytes(new[word : word + 4], "little")
                checksum -= int.from_bytes(old[word : word + 4], "little")
            record = record[:12] + (checksum & 0xFFFFFFFF).to_bytes(4, "little") + record[16:]
            layout.patches[index] = (offset, record)
            break


def _finish(
    iso: pycdlib.PyCdlib,
    *,
    memory: dict[int, Entry],
    sources: dict[str, Entry],
    extra_paths: dict[str, tuple[str, str | None]],
    hybrid: bool,
    efi: bool,
    boot_description: str,
    vendor: VendorOrigin | None = None,
    source: SourceRoot | None = None,
) -> Layout:
    """Once every file is in: the hybrid MBR/GPT, the final layout, each file's extent."""
    # pycdlib keeps the volume's size up to date as entries are added; the hybrid MBR
    # and GPT depend on it (and on nothing added later).
    iso_size = volume_size(iso)
    padding, seed = 0, hybrid_seed(iso, iso_size)
    if hybrid:
        padding = add_isohybrid(iso, iso_size, efi, seed)
    iso.force_consistency()
    if volume_size(iso) != iso_size:
        raise RuntimeError("pycdlib changed the volume size while laying it out")
    fixes = settle_gpt(iso, seed) if hybrid and efi else []
    files, patches = _file_layout(iso, memory, sources, vendor)
    return Layout(
        iso, files, patches + fixes, fixes, iso_size + padding, boot_description, extra_paths, source
    )


def _populate(iso: pycdlib.PyCdlib, top: Entry, memory: dict[int, Entry]) -> None:
    """Add every entry, parents before children, in sorted order."""
    pending: list[tuple[Entry, str, str]] = [(top, "", "")]
    while pending:
        directory, iso_dir, joliet_dir = pending.pop()
        subdirs: list[tuple[Entry, str, str]] = []
        for entry in sorted(directory.children.values(), key=lambda e: e.name):
            iso_path = f"{iso_dir}/{entry.iso_name}"
            joliet_path = f"{joliet_dir}/{entry.joliet_name}"
            entry.iso_path, entry.joliet_path = iso_path, joliet_path
            try:
                if entry.kind == "dir":
                    iso.add_directory(
                        iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                    subdirs.append((entry, iso_path, joliet_path))
                elif entry.kind == "file":
                    assert entry.source is not None
                    # add_file() stats the path and opens it only when written out,
                    # so thousands of files never hold thousands of descriptors.
                    iso.add_file(
                        entry.source,
                        iso_path=iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                elif entry.kind == "memory":
                    data_fp = io.BytesIO(entry.data)
                    memory[id(data_fp)] = entry
                    iso.add_fp(
                        data_fp,
                        len(entry.data),
                        iso_path=iso_path,
                        rr_name=entry.rr_name,
                        joliet_path=joliet_path,
                        file_mode=entry.mode,
                    )
                elif entry.kind == "symlink":
                    # Rock Ridge only: Joliet has no symlinks. The target is kept as
                    # written, never followed (no loops, no escaping the tree).
                    iso.add_symlink(
                        symlink_path=iso_path,
                        rr_symlink_name=entry.rr_name,
                        rr_path=valid_utf8(entry.target),
                    )
                # "catalog" is added by add_eltorito(); "relocation" by pycdlib itself.
            except PyCdlibException as exc:
                raise SourceError(f"cannot lay out {printable(entry.rel)} ({exc})") from exc
            except OSError as exc:
                raise SourceError(f"cannot read {printable(entry.rel)} ({exc.strerror})") from exc
        pending.extend(reversed(subdirs))


def _add_boot_entries(iso: pycdlib.PyCdlib, top: Entry, boot: BootPlan) -> None:
    """The BIOS entry first (the catalog's initial entry, which isohybrid's MBR code
    loads), then the UEFI one in a section of its own (platform 0xEF)."""
    assert boot.boot_catalog is not None
    catalog = lookup(top, boot.boot_catalog)
    assert catalog is not None and catalog.kind == "catalog"
    entries: list[tuple[str, bool]] = []
    if boot.bios_boot_file is not None:
        entries.append((boot.bios_boot_file, False))
    if boot.efi_image is not None:
        entries.append((boot.efi_image, True))
    for index, (rel, efi) in enumerate(entries):
        image = lookup(top, rel)
        assert image is not None
        catalog_paths: dict[str, Any] = {}
        if index == 0:  # the first call creates the catalog
            catalog_paths = {
                "bootcatfile": catalog.iso_path,
                "rr_bootcatname": catalog.rr_name,
                "joliet_bootcatfile": catalog.joliet_path,
            }
        try:
            if efi:
                # The image as it is: no emulation, no boot info table, its whole
                # length as the sector count (pycdlib counts it when given None).
                iso.add_eltorito(
                    image.iso_path, **catalog_paths, platform_id=0xEF, efi=True, media_name="noemul"
                )
            else:
                # Reads the boot file once, to checksum it for the boot info table;
                # the table itself is only ever patched into the output stream.
                iso.add_eltorito(
                    image.iso_path,
                    **catalog_paths,
                    boot_load_size=4,
                    platform_id=0,
                    boot_info_table=True,
                    media_name="noemul",
                )
        except PyCdlibException as exc:
            raise SourceError(f"cannot make {printable(rel)} bootable ({exc})") from exc
        except OSError as exc:
            raise SourceError(f"cannot read {printable(rel)} ({exc.strerror})") from exc


def _file_layout(
    iso: pycdlib.PyCdlib,
    memory: dict[int, Entry],
    sources: dict[str, Entry],
    vendor: VendorOrigin | None,
) -> tuple[list[FileData], list[tuple[int, bytes]]]:
    """Each file's place and origin, in disk order, plus the boot info table patches."""
    files: list[FileData] = []
    patches: list[tuple[int, bytes]] = []
    for extent in file_extents(iso):
        offset, length = extent.offset, extent.length
        if vendor is not None and extent.original_offset is not None:
            # Data still where the vendor ISO has it: read from there at stream time.
            files.append(
                FileData(
                    offset,
                    length,
                    vendor.name,
                    vendor.path,
                    None,
                    origin_offset=extent.original_offset,
                    origin_stamp=vendor.stamp,
                )
            )
        elif extent.path is not None:
            entry = sources[extent.path]
            if length != entry.size:
                # pycdlib stats by path: what it saw is not what the scan saw.
                raise SourceError(f"{printable(entry.rel)} changed while the source was laid out")
            files.append(
                FileData(offset, length, entry.rel, extent.path, None, entry.mode, identity=entry.identity)
            )
        elif id(extent.fp) in memory:
            entry = memory[id(extent.fp)]
            files.append(FileData(offset, length, entry.rel, None, entry.data))
        else:
            raise RuntimeError("pycdlib inode with an unknown data source")
        if extent.boot_info_table is not None:
            patches.append((offset + 8, extent.boot_info_table))
    files.sort(key=lambda f: f.offset)
    return files, patches


def _check_boot_info_tables(iso: pycdlib.PyCdlib, layout: Layout) -> None:
    """The boot info table's checksum, taken again from the boot file opened safely.

    pycdlib reads the BIOS boot file by path to checksum it; a symlink put there for a
    moment would checksum another file. The file the stream will send (the same inode,
    opened without following symlinks) must give the same sum, else the source changed
    while it was laid out.
    """
    assert layout.source is not None
    by_offset = {file.offset: file for file in layout.files}
    for extent in file_extents(iso):
        file = by_offset.get(extent.offset)
        if extent.boot_info_table is None or file is None or file.path is None:
            continue
        try:
            descriptor = open_checked(layout.source, file.rel, file.identity, file.length)
            try:
                checksum = boot_info_checksum(descriptor, file.length)
            finally:
                close_now(descriptor)
        except NotAsLaidOut as exc:
            raise SourceError(f"{printable(file.rel)} changed while the source was laid out") from exc
        except OSError as exc:
            if exc.errno is not None and is_symlink_error(exc):
                raise SourceError(f"{printable(file.rel)} changed while the source was laid out") from exc
            raise SourceError(f"cannot read {printable(file.rel)} ({exc.strerror})") from exc
        if extent.boot_info_table[12:16] != checksum.to_bytes(4, "little"):
            raise SourceError(f"{printable(file.rel)} changed while the source was laid out")


def boot_info_checksum(descriptor: int, length: int) -> int:
    """El Torito's boot info table checksum: the 32-bit little-endian words of the file
    from offset 64, the last sector zero-padded (as pycdlib and mkisofs compute it)."""
    padded = -(-length // 2048) * 2048
    data = bytearray(padded)
    view = memoryview(data)
    done = 0
    while done < length:
        got = os.preadv(descriptor, [view[done:length]], done)
        if not got:
            raise NotAsLaidOut(errno.ESTALE, "shorter than laid out")
        done += got
    words: tuple[int, ...] = struct.unpack_from(f"<{(padded - 64) // 4}I", data, 64)
    return sum(words) & 0xFFFFFFFF
