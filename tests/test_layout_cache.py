"""The layout cache: byte-identical to a fresh build, invalidated by change, bounded."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from isos.engine import SourceError, StreamError, build_iso, make_layout_template
from isos.engine.layout_cache import LayoutCache, source_fingerprint
from isos.engine.layout_process import make_layout_template_in_child
from isos.engine.template import LayoutTemplate
from tests.support.layouts import assert_same_layout_shape
from tests.support.sources import make_source_tree, settled

EXTRAS = {
    "ks_scripts/network.cfg": b'IPADDR="1.3.3.7"\nDHCP="no"',
    "ks_scripts/password.cfg": b"rootpw --iscrypted $6$salt$hash\n",
    "ks_scripts/disk.cfg": b'boot_drives="sda"',
}


# pycdlib stamps dates: every layout here is made with the clock pinned (conftest).
pytestmark = pytest.mark.usefixtures("frozen_clock")


def test_a_template_made_in_a_child_process_has_the_same_layout(tmp_path: Path) -> None:
    """The worker lays trees out in a child (its own clock: compare all but the dates)."""
    source = make_source_tree(tmp_path / "src")
    here = make_layout_template(source, list(EXTRAS))
    there = make_layout_template_in_child(str(source), list(EXTRAS), volume_id="CDROM")
    assert_same_layout_shape(here, there)
    with pytest.raises(SourceError):
        make_layout_template_in_child(str(tmp_path / "missing"), list(EXTRAS), volume_id="CDROM")


def fresh_bytes(source: Path, extras: dict[str, bytes]) -> bytes:
    with build_iso(source, extras) as image:
        return b"".join(image)


def cached_bytes(cache: LayoutCache, source: Path, extras: dict[str, bytes]) -> bytes:
    with cache.build_iso(source, extras) as image:
        data = b"".join(image)
        assert len(data) == image.size
        return data


@pytest.mark.parametrize(
    "extras",
    [
        EXTRAS,
        {**EXTRAS, "ks_scripts/network.cfg": b"x" * 2048},
        {**EXTRAS, "ks_scripts/network.cfg": b"y"},
        {"ks_scripts/new/state.out": b"one line\n", "ks_scripts/ks.cfg": b"replaces the source's"},
    ],
)
def test_cached_layout_is_byte_identical_to_a_fresh_build(tmp_path: Path, extras: dict[str, bytes]) -> None:
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    cached_bytes(cache, source, {name: b"warm" for name in extras})  # lay out once
    assert (cache.misses, cache.hits) == (1, 0)
    assert cached_bytes(cache, source, extras) == fresh_bytes(source, extras)
    assert (cache.misses, cache.hits) == (1, 1)


def test_every_request_gets_its_own_files(tmp_path: Path) -> None:
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    first = cached_bytes(cache, source, {**EXTRAS, "ks_scripts/network.cfg": b'HOSTNAME="alpha"'})
    second = cached_bytes(cache, source, {**EXTRAS, "ks_scripts/network.cfg": b'HOSTNAME="bravo.long"'})
    assert b'HOSTNAME="alpha"' in first and b"bravo" not in first
    assert b'HOSTNAME="bravo.long"' in second and b"alpha" not in second


def test_requests_that_miss_at_once_share_one_layout(tmp_path: Path) -> None:
    """Many requests missing together (a gevent worker takes them all at once) start one
    layout, not one child process each; all get the same bytes."""
    source = settled(make_source_tree(tmp_path / "src"))
    layouts = []

    def slow_layout(*args: Any, **kwargs: Any) -> LayoutTemplate:
        layouts.append(threading.current_thread().name)
        time.sleep(0.2)  # long enough for every other request to arrive and miss
        return make_layout_template(*args, **kwargs)

    cache = LayoutCache(make_template=slow_layout)
    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(lambda _: cached_bytes(cache, source, EXTRAS), range(8)))
    assert len(layouts) == 1
    assert (cache.misses, cache.hits) == (1, 7)
    assert all(image == images[0] for image in images)


def test_templates_serve_interleaved_streams(tmp_path: Path) -> None:
    """Two images from one template, streamed in turns, stay independent."""
    source = settled(make_source_tree(tmp_path / "src"))
    template = make_layout_template(source, list(EXTRAS))
    one = template.instantiate({**EXTRAS, "ks_scripts/disk.cfg": b'boot_drives="sda"'}, chunk_size=4096)
    two = template.instantiate({**EXTRAS, "ks_scripts/disk.cfg": b'boot_drives="nvme0n1"'}, chunk_size=4096)
    chunks_one, chunks_two = [], []
    for a, b in zip(one, two, strict=True):
        chunks_one.append(a)
        chunks_two.append(b)
    assert b"".join(chunks_one) == fresh_bytes(
        source, {**EXTRAS, "ks_scripts/disk.cfg": b'boot_drives="sda"'}
    )
    assert b"".join(chunks_two) == fresh_bytes(
        source, {**EXTRAS, "ks_scripts/disk.cfg": b'boot_drives="nvme0n1"'}
    )


@pytest.mark.parametrize("change", ["add", "remove", "rename", "symlink", "boot file rewritten"])
def test_changed_source_invalidates_the_layout(tmp_path: Path, change: str) -> None:
    """Changes the directory listing or the boot file shows: seen before any byte."""
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    cached_bytes(cache, source, EXTRAS)
    target = source / "images" / "install.img"
    if change == "add":
        (source / "images" / "new.img").write_bytes(b"new")
    elif change == "remove":
        target.unlink()
    elif change == "rename":
        target.rename(source / "images" / "other.img")
    elif change == "symlink":
        (source / "latest").symlink_to("images")
    else:
        boot = source / "isolinux" / "isolinux.bin"
        data = bytearray(boot.read_bytes())
        data[100] ^= 0xFF  # same size, new content: a new boot info table checksum
        boot.write_bytes(bytes(data))
    assert cached_bytes(cache, source, EXTRAS) == fresh_bytes(source, EXTRAS)  # settling: no cache
    settled(source)
    assert cached_bytes(cache, source, EXTRAS) == fresh_bytes(source, EXTRAS)
    assert (cache.misses, cache.hits) == (2, 0)


def test_file_rewritten_in_place_fails_once_then_is_laid_out_anew(tmp_path: Path) -> None:
    """Same directory listing, new size: the stream refuses it and drops the layout."""
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    cached_bytes(cache, source, EXTRAS)
    (source / "images" / "install.img").write_bytes(b"different size")  # directories untouched
    with pytest.raises(StreamError, match=r"install\.img shrank after layout"):
        cached_bytes(cache, source, EXTRAS)
    assert len(cache) == 0
    assert cached_bytes(cache, source, EXTRAS) == fresh_bytes(source, EXTRAS)


def test_mode_changed_in_place_is_sent_then_laid_out_anew(tmp_path: Path) -> None:
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    cached_bytes(cache, source, EXTRAS)
    (source / "images" / "install.img").chmod(0o600)
    cached_bytes(cache, source, EXTRAS)  # complete, with the old mode; the layout is dropped
    assert len(cache) == 0
    assert cached_bytes(cache, source, EXTRAS) == fresh_bytes(source, EXTRAS)


def test_a_tree_still_settling_is_not_cached(tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    cache = LayoutCache(make_template=make_layout_template)
    assert cached_bytes(cache, source, EXTRAS) == fresh_bytes(source, EXTRAS)
    assert len(cache) == 0 and source_fingerprint(str(source)) is None
    assert source_fingerprint(str(settled(source))) is not None


def test_unchanged_dates_of_ordinary_files_do_not_invalidate(tmp_path: Path) -> None:
    source = settled(make_source_tree(tmp_path / "src"))
    before = source_fingerprint(str(source))
    os.utime(source / "images" / "install.img", ns=(1, 1))
    assert source_fingerprint(str(source)) == before


def test_a_fingerprint_again_lists_no_directory_until_one_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BMC's every range checks the fingerprint: an unchanged tree is lstat'ed, not listed;
    a file added or a directory removed deep inside still changes it."""
    source = settled(make_source_tree(tmp_path / "src"))
    (source / "images" / "deep").mkdir()
    settled(source)
    first = source_fingerprint(str(source))
    listed: list[str] = []
    scandir = os.scandir

    def counted(path: str) -> Any:
        listed.append(str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted)
    assert source_fingerprint(str(source)) == first and listed == []

    (source / "images" / "deep" / "new.img").write_bytes(b"new")
    second = source_fingerprint(str(settled(source)))
    assert second not in (None, first) and str(source) in listed
    listed.clear()
    (source / "images" / "deep" / "new.img").unlink()
    (source / "images" / "deep").rmdir()
    third = source_fingerprint(str(settled(source)))
    assert third not in (None, first, second) and listed
    listed.clear()
    assert source_fingerprint(str(source)) == third and listed == []


def test_cache_stays_within_its_bounds(tmp_path: Path) -> None:
    sources = [settled(make_source_tree(tmp_path / f"src{n}")) for n in range(5)]
    cache = LayoutCache(max_entries=3, make_template=make_layout_template)
    for source in sources:
        cached_bytes(cache, source, EXTRAS)
        assert len(cache) <= 3
    assert cache.misses == 5
    cached_bytes(cache, sources[-1], EXTRAS)  # still cached: a hit
    cached_bytes(cache, sources[0], EXTRAS)  # evicted long ago: a miss
    assert (cache.hits, cache.misses) == (1, 6)

    one = cache.footprint // len(cache)
    cache.configure(max_entries=10, max_bytes=one * 2)
    assert cache.footprint <= one * 2
    tiny = LayoutCache(
        max_bytes=1, make_template=make_layout_template
    )  # a template over the bound is never kept
    assert cached_bytes(tiny, sources[0], EXTRAS) == cached_bytes(cache, sources[0], EXTRAS)
    assert len(tiny) == 0 and tiny.footprint == 0


def test_extra_files_that_do_not_fit_a_template_fall_back_to_a_full_build(tmp_path: Path) -> None:
    source = settled(make_source_tree(tmp_path / "src"))
    cache = LayoutCache(make_template=make_layout_template)
    big = {**EXTRAS, "ks_scripts/network.cfg": b"z" * 5000}
    assert cached_bytes(cache, source, big) == fresh_bytes(source, big)
    assert (cache.hits, cache.misses, len(cache)) == (0, 0, 0)
