"""A source entry swapped after the layout (for a symlink, or another file) never reaches an ISO.

The layout cache's fingerprint looks at directories only, and a directory's time can be
put back with ``os.utime``: the stream is what must refuse a file that is not the one
laid out (docs/sources-and-booting.md, "Symlinks inside a source"). Engine tests first,
then one through the API with the real layout cache and its child process.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from isos.engine import SourceError, StreamError, build_iso, describe_boot, make_layout_template
from isos.engine.boot_plan import BootSettingsError, read_settings
from isos.engine.hook import lay_out_private_view
from isos.engine.layout_cache import LayoutCache, source_fingerprint
from isos.engine.names import assign_names
from isos.engine.stream import IsoImage
from isos.engine.template import make_layout_template as make_template_in_process
from isos.models import IsoBuild
from tests.support.api import download, post_json, static_request
from tests.support.isoread import read_rr_file, read_rr_tree
from tests.support.processes import open_descriptor_targets
from tests.support.sources import make_source_tree, pseudo_random_bytes

EXTRAS = {"ks_scripts/network.cfg": b'IPADDR="1.3.3.7"\n'}
TARGET = "images/install.img"  # 256 KiB in make_source_tree's tree
SECRET = pseudo_random_bytes("outside the kickstart location", 256 * 1024)
AN_HOUR = 3600 * 10**9


def settle(root: Path) -> None:
    """Date every entry of the tree an hour back, so the layout cache's fingerprint holds."""
    when = time.time_ns() - AN_HOUR
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(Path(directory, name), ns=(when, when), follow_symlinks=False)
    os.utime(root, ns=(when, when))


def swap_behind_utime(folder: Path, *changes: Callable[[], object]) -> None:
    """Make the ``changes`` in ``folder``, then put the folder's times back (the attack)."""
    before = os.stat(folder)
    for change in changes:
        change()
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))


def swap_for_symlink(path: Path, target: Path) -> None:
    swap_behind_utime(path.parent, path.unlink, lambda: os.symlink(target, path))


def outside_file(tmp_path: Path, data: bytes = SECRET) -> Path:
    secret = tmp_path / "outside" / "secret.img"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(data)
    return secret


def stream_until_failure(image: IsoImage) -> tuple[bytes, StreamError]:
    """Everything the stream sent before it failed, and the failure."""
    sent = bytearray()
    with pytest.raises(StreamError) as failure:
        for chunk in image:
            sent += chunk
    image.close()
    return bytes(sent), failure.value


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source_tree(tmp_path / "kickstart" / "centos72")


def descriptors_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    return [target for target in open_descriptor_targets(os.getpid()) if target.startswith(prefix)]


# --------------------------------------------------------------------------------------
# The stream: only the inodes laid out, never through a symlink
# --------------------------------------------------------------------------------------


def test_a_file_swapped_for_a_same_size_symlink_fails_the_stream_before_its_bytes(
    source: Path, tmp_path: Path
) -> None:
    template = make_layout_template(source, list(EXTRAS))
    stale: list[bool] = []
    swap_for_symlink(source / TARGET, outside_file(tmp_path))

    sent, failure = stream_until_failure(template.instantiate(EXTRAS, on_stale=lambda: stale.append(True)))

    assert str(failure) == f"{TARGET} is not the file laid out (a symlink in its place or on its way)"
    assert stale == [True]
    assert SECRET[:4096] not in sent
    assert len(sent) < template.size
    assert descriptors_under(source) == []


def test_a_folder_swapped_for_a_symlink_on_the_way_fails_the_stream(source: Path, tmp_path: Path) -> None:
    """No directory on a file's path is followed either: a folder replaced by a symlink to
    a copy outside (same names, same sizes) is refused."""
    template = make_layout_template(source, list(EXTRAS))
    copy = tmp_path / "outside" / "images"
    shutil.copytree(source / "images", copy)
    (copy / "install.img").write_bytes(SECRET)
    swap_behind_utime(
        source, lambda: shutil.rmtree(source / "images"), lambda: os.symlink(copy, source / "images")
    )
    stale: list[bool] = []

    sent, failure = stream_until_failure(template.instantiate(EXTRAS, on_stale=lambda: stale.append(True)))

    assert "is not the file laid out (a symlink in its place or on its way)" in str(failure)
    assert stale == [True]
    assert SECRET[:4096] not in sent


def test_another_regular_file_put_in_place_fails_the_stream(source: Path, tmp_path: Path) -> None:
    """Same name, same size, same type, but another inode: not the file laid out."""
    template = make_layout_template(source, list(EXTRAS))
    other = source / "images" / "other.img"
    other.write_bytes(SECRET)
    swap_behind_utime(source / "images", lambda: os.replace(other, source / TARGET))
    stale: list[bool] = []

    sent, failure = stream_until_failure(template.instantiate(EXTRAS, on_stale=lambda: stale.append(True)))

    assert str(failure) == f"{TARGET} is not the file laid out (another file in its place)"
    assert stale == [True]
    assert SECRET[:4096] not in sent


def test_the_source_directory_swapped_for_a_symlink_fails_the_stream(source: Path, tmp_path: Path) -> None:
    template = make_layout_template(source, list(EXTRAS))
    copy = tmp_path / "outside" / "centos72"
    shutil.copytree(source, copy, symlinks=True)
    (copy / TARGET).write_bytes(SECRET)
    moved = tmp_path / "kickstart" / "centos72.old"
    swap_behind_utime(source.parent, lambda: source.rename(moved), lambda: os.symlink(copy, source))
    stale: list[bool] = []

    sent, failure = stream_until_failure(template.instantiate(EXTRAS, on_stale=lambda: stale.append(True)))

    assert "is not the file laid out" in str(failure)
    assert stale == [True]
    assert SECRET[:4096] not in sent


def test_the_source_directory_replaced_by_another_directory_fails_the_stream(
    source: Path, tmp_path: Path
) -> None:
    """A real directory, but not the one scanned: refused at the root (device and inode)."""
    template = make_layout_template(source, list(EXTRAS))
    copy = tmp_path / "kickstart" / "copy"
    shutil.copytree(source, copy, symlinks=True)
    swap_behind_utime(source.parent, lambda: shutil.rmtree(source), lambda: copy.rename(source))

    _, failure = stream_until_failure(template.instantiate(EXTRAS))

    assert "is not the file laid out (the source directory was replaced)" in str(failure)


def test_a_normal_tree_still_streams_identically_from_a_template(source: Path) -> None:
    """The checks cost nothing in output: a template's stream equals a full build's."""
    image = build_iso(source, EXTRAS)
    try:
        built = b"".join(image)
    finally:
        image.close()
    template = make_layout_template(source, list(EXTRAS))
    from_template = b"".join(template.instantiate(EXTRAS))
    assert len(built) == len(from_template) == template.size
    expected = (source / TARGET).read_bytes()
    assert read_rr_file(from_template, f"/{TARGET}") == read_rr_file(built, f"/{TARGET}") == expected


def test_after_the_swap_the_cache_lays_the_tree_out_anew_with_the_symlink_as_a_symlink(
    source: Path, tmp_path: Path
) -> None:
    settle(source)
    cache = LayoutCache(make_template=make_template_in_process)
    first = cache.build_iso(str(source), EXTRAS)
    b"".join(first)
    first.close()
    secret = outside_file(tmp_path)
    fingerprint = source_fingerprint(str(source.resolve()))
    swap_for_symlink(source / TARGET, secret)
    assert source_fingerprint(str(source.resolve())) == fingerprint  # the cache cannot tell

    stream_until_failure(cache.build_iso(str(source), EXTRAS))
    assert (cache.hits, cache.misses) == (1, 1)

    again = cache.build_iso(str(source), EXTRAS)
    data = b"".join(again)
    again.close()
    assert (cache.hits, cache.misses) == (1, 2)  # laid out anew
    assert len(data) == again.size
    iso_path = tmp_path / "after.iso"
    iso_path.write_bytes(data)
    assert read_rr_tree(iso_path)["symlinks"][TARGET] == str(secret)
    assert SECRET[:4096] not in data


# --------------------------------------------------------------------------------------
# A vendor ISO swapped after its layout
# --------------------------------------------------------------------------------------


def make_vendor_iso(source: Path, path: Path, extras: dict[str, bytes] | None = None) -> Path:
    image = build_iso(source, extras or {})
    path.parent.mkdir(exist_ok=True)
    try:
        path.write_bytes(b"".join(image))
    finally:
        image.close()
    return path


@pytest.mark.parametrize("how", ["symlink", "renamed-over"])
def test_a_vendor_iso_swapped_after_layout_fails_the_stream(source: Path, tmp_path: Path, how: str) -> None:
    vendor = make_vendor_iso(source, tmp_path / "kickstart" / "vendor.iso")
    template = make_layout_template(vendor, list(EXTRAS))
    # Another ISO of the very same size and times, elsewhere (or beside it, then moved in).
    other = make_vendor_iso(source, tmp_path / ("outside" if how == "symlink" else "kickstart") / "other.iso")
    assert other.stat().st_size == vendor.stat().st_size
    os.utime(other, ns=(vendor.stat().st_atime_ns, vendor.stat().st_mtime_ns))
    if how == "symlink":
        swap_behind_utime(vendor.parent, vendor.unlink, lambda: os.symlink(other, vendor))
    else:
        swap_behind_utime(vendor.parent, lambda: os.replace(other, vendor))
    stale: list[bool] = []

    sent, failure = stream_until_failure(template.instantiate(EXTRAS, on_stale=lambda: stale.append(True)))

    expected = "(a symlink in its place" if how == "symlink" else "changed after layout"
    assert expected in str(failure)
    assert stale == [True]
    assert len(sent) < template.size


def test_a_vendor_iso_named_through_a_symlink_is_resolved_once(source: Path, tmp_path: Path) -> None:
    """A link given as the source is resolved when the layout starts (as osversions'
    catalog resolves it), and the real file is what is read and checked."""
    vendor = make_vendor_iso(source, tmp_path / "kickstart" / "vendor.iso")
    linked = tmp_path / "kickstart" / "linked.iso"
    os.symlink(vendor.name, linked)
    image = build_iso(linked, EXTRAS)
    try:
        data = b"".join(image)
    finally:
        image.close()
    assert read_rr_file(data, "/ks_scripts/network.cfg") == EXTRAS["ks_scripts/network.cfg"]
    assert describe_boot(linked).startswith("El Torito from the vendor ISO")


# --------------------------------------------------------------------------------------
# What the layout reads of a source: isoportal.json, boot files, the boot info table
# --------------------------------------------------------------------------------------


def test_isoportal_json_that_is_a_symlink_is_refused(source: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret key": "secret value"}')
    (source / "isoportal.json").symlink_to(outside)
    with pytest.raises(BootSettingsError, match=r"^isoportal\.json is not a regular file$"):
        read_settings(str(source))
    with pytest.raises(SourceError) as refused:
        build_iso(source, EXTRAS)
    assert "secret" not in str(refused.value)


def test_a_boot_file_behind_a_symlinked_folder_does_not_boot(source: Path, tmp_path: Path) -> None:
    """describe_boot() probes from directory descriptors too: a folder that is a symlink is
    not walked, so what state.out says and what the ISO does still agree."""
    shutil.move(source / "isolinux", tmp_path / "isolinux")
    os.symlink(tmp_path / "isolinux", source / "isolinux")
    assert describe_boot(source).startswith("not bootable")
    image = build_iso(source, EXTRAS)
    image.close()
    assert image.boot_description.startswith("not bootable")


def test_a_boot_file_swapped_while_laid_out_is_refused(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pycdlib checksums the BIOS boot file by path for the boot info table; the engine
    takes the checksum again from the scanned inode, so a symlink put there for the
    moment of the layout cannot have another file's sum go out."""
    boot = source / "isolinux" / "isolinux.bin"
    # The same head (pycdlib checks the isohybrid signature by path too), other bytes after it.
    head = boot.read_bytes()[:512]
    decoy = outside_file(tmp_path, head + pseudo_random_bytes("decoy", boot.stat().st_size - len(head)))

    def swap_then_assign(top: object) -> None:
        # After the scan and the boot plan, before pycdlib reads anything.
        boot.unlink()
        os.symlink(decoy, boot)
        assign_names(top)  # type: ignore[arg-type]

    monkeypatch.setattr("isos.engine.layout.assign_names", swap_then_assign)
    with pytest.raises(SourceError, match=r"^isolinux/isolinux\.bin changed while the source was laid out$"):
        build_iso(source, EXTRAS)
    assert descriptors_under(source) == []


# --------------------------------------------------------------------------------------
# The generate hook's view
# --------------------------------------------------------------------------------------


def test_the_hook_view_copies_boot_images_only_from_inside_the_source(source: Path, tmp_path: Path) -> None:
    efi = source / "images" / "efiboot.img"
    outside = outside_file(tmp_path, b"outside the source")
    os.symlink(outside, efi)  # leads out: linked, never read by the portal
    inside = source / "EFI" / "BOOT" / "efiboot.img"
    os.symlink("../../isolinux/isolinux.bin", inside)  # stays inside: copied
    view = tmp_path / "view"

    lay_out_private_view(source, view, EXTRAS)

    copied = view / "isolinux" / "isolinux.bin"
    assert stat.S_ISREG(copied.lstat().st_mode)
    assert copied.read_bytes() == (source / "isolinux" / "isolinux.bin").read_bytes()
    assert stat.S_ISREG((view / "EFI" / "BOOT" / "efiboot.img").lstat().st_mode)
    linked = view / "images" / "efiboot.img"
    assert linked.is_symlink() or (view / "images").is_symlink()
    assert os.path.realpath(linked) == str(outside)
    assert (view / "ks_scripts" / "network.cfg").read_bytes() == EXTRAS["ks_scripts/network.cfg"]


# --------------------------------------------------------------------------------------
# Through the API: the real layout cache, its child process, the audit
# --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_download_fails_and_is_audited_failed_then_the_next_one_is_laid_out_anew(
    operations_client: Client, kickstart_location: Path, tmp_path: Path
) -> None:
    from isos.engine.layout_cache import layout_cache

    source = kickstart_location / "centos72"
    settle(source)
    layout_cache.clear()
    misses = layout_cache.misses
    download(operations_client, static_request())  # laid out (in the child), cached
    assert IsoBuild.objects.latest("id").outcome == IsoBuild.Outcome.BUILT
    assert layout_cache.misses == misses + 1

    swap_for_symlink(source / TARGET, outside_file(tmp_path))
    response = post_json(operations_client, "/api/5.0/isos", static_request())
    assert response.status_code == 200
    size = int(response["Content-Length"])
    sent = bytearray()
    with pytest.raises(StreamError):
        for chunk in response.streaming_content:
            sent += chunk
    assert len(sent) < size  # cut short: never a complete-looking file
    assert SECRET[:4096] not in sent
    failed = IsoBuild.objects.latest("id")
    assert failed.outcome == IsoBuild.Outcome.FAILED
    assert f"{TARGET} is not the file laid out" in failed.detail
    assert layout_cache.misses == misses + 1  # that one came from the cached layout

    _, data = download(operations_client, static_request())
    assert IsoBuild.objects.latest("id").outcome == IsoBuild.Outcome.BUILT
    assert layout_cache.misses == misses + 2  # the stale layout was dropped: laid out anew
    iso_path = tmp_path / "after.iso"
    iso_path.write_bytes(data)
    assert read_rr_tree(iso_path)["symlinks"][TARGET] == str(tmp_path / "outside" / "secret.img")
    assert SECRET[:4096] not in data
