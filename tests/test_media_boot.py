"""QEMU boots an ISO URL (``"stream": "no"``) straight from a live portal, BIOS and UEFI.

QEMU's curl block driver (Debian's ``qemu-block-extra``) mounts the URL as its CD and reads
it by Range requests, as a BMC's virtual media does; the boot kit's kernel then prints the
request's network.cfg (``tests/support/bootkit.py``, ``tests/support/qemu.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from isos.models import IsoMedia
from tests.support.api import static_request
from tests.support.bootkit import BOOTKIT_DIRECTORY
from tests.support.qemu import assert_booted, boot
from tests.support.serving import logged_in_session, serve_portal
from tests.support.tools import unavailable

pytestmark = pytest.mark.boot

CURL_DRIVER = Path("/usr/lib/x86_64-linux-gnu/qemu/block-curl.so")


# serialized_rollback: the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_qemu_boots_the_iso_url_bios_and_uefi(
    bootkit_source: Path, kickstart_location: Path, make_user: Any, tmp_path: Path
) -> None:
    if not CURL_DRIVER.exists():
        unavailable("QEMU's curl block driver is not installed (apt-get install qemu-block-extra)")
    past = time.time_ns() - 10 * 10**9  # a source just copied is laid out only once settled
    for path in [bootkit_source, *bootkit_source.rglob("*")]:
        os.utime(path, ns=(past, past), follow_symlinks=False)
    make_user("op", "operations")
    with serve_portal(kickstart_location, tmp_path / "gunicorn.log") as server:
        session = logged_in_session(server.url, "op")
        made = session.post(
            f"{server.url}/api/5.0/isos",
            json=static_request(osversionDir=BOOTKIT_DIRECTORY, stream="no"),
            timeout=120,
        )
        assert made.status_code == 200, made.text
        url = made.json()["response"]["isoURL"]
        assert url.startswith(f"{server.url}/isos/media/")
        for firmware, grub in (("bios", None), ("uefi", r"\(cd\d+\)/EFI/BOOT")):
            workdir = tmp_path / firmware
            workdir.mkdir()
            result = boot(url, workdir, firmware, "cd")  # type: ignore[arg-type]
            print(f"{firmware} from the URL: {result.seconds:.1f} s")  # shown with -s or -rA
            assert_booted(result, firmware, r"/dev/sr\d", grub)  # type: ignore[arg-type]
        record = IsoMedia.objects.get()
        # QEMU read it in ranges: many requests, each counted.
        assert record.fetch_count > 10
        assert record.bytes_served > 0
    log = (tmp_path / "gunicorn.log").read_text()
    assert "status=206" in log and url.split("/")[-2] not in log
