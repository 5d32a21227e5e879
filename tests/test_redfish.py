"""Redfish (isos.redfish) against a real BMC emulator: ``sushy-tools``' ``sushy-emulator``.

With its libvirt driver (``libvirtd`` and QEMU under TCG), a live portal's ISO URL mounted
through ``POST isos/urls/<id>/mount`` (insert, one-time boot override, power on) boots a
virtual machine, proven on its serial console. With its fake driver (fast): the emulator downloads the
image from the URL when inserting, and the bytes it fetched are the ISO's; each BMC error
is its own kind (bad credentials, unreachable, TLS), and the password is in no log line.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isos.models import IsoMedia
from isos.redfish import BadAddress, Failure, MountResult, Power, bmc_base_url, mount
from tests.support import redfish as bmc
from tests.support.api import EXPECTED_NETWORK_CFG, static_request
from tests.support.bootkit import BOOTKIT_DIRECTORY, NETWORK_CFG_END, read_console
from tests.support.processes import poll
from tests.support.serving import free_port, logged_in_session, serve_portal
from tests.support.sources import settled


@pytest.fixture
def iso_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A URL serving a file (``iso.write_bytes`` it first), and the file."""
    folder = tmp_path / "served"
    folder.mkdir()
    iso = folder / "edge1.cdn.example-bootkit.iso"
    iso.write_bytes(b"not yet written")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{iso.name}", iso
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def steps(result: MountResult) -> list[tuple[str, str]]:
    return [(step.name, step.status) for step in result.steps]


ALL_DONE = [
    ("connect", "done"),
    ("system", "done"),
    ("virtual media", "done"),
    ("eject", "skipped"),
    ("insert", "done"),
    ("boot override", "done"),
    ("power", "done"),
]


def assert_secret_free(result: MountResult, url: str, caplog: pytest.LogCaptureFixture) -> None:
    text = repr(result) + caplog.text
    assert bmc.PASSWORD not in text
    assert url not in caplog.text


def test_the_fake_bmc_fetches_the_iso_from_the_url(
    tmp_path: Path, iso_url: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, iso = iso_url
    iso.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    caplog.set_level(logging.DEBUG)
    with bmc.emulator(tmp_path / "bmc") as emulator:
        result = mount(url, emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True, power="on")
        assert result.ok, result
        assert steps(result) == ALL_DONE
        fetched = [path for path in bmc.fetched_images(emulator) if path.name == iso.name]
        assert len(fetched) == 1 and fetched[0].read_bytes() == iso.read_bytes()
        # Again: what was inserted is ejected first; the power is left as it is.
        again = mount(url, emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True)
        assert again.ok, again
        assert ("eject", "done") in steps(again) and ("power", "skipped") in steps(again)
    assert_secret_free(result, url, caplog)
    assert "***" in caplog.text  # sushy logged the image URL: hidden


def test_bmc_errors_are_told_apart(
    tmp_path: Path, iso_url: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = iso_url
    caplog.set_level(logging.DEBUG)
    with bmc.emulator(tmp_path / "bmc") as emulator:
        wrong = mount(url, emulator.address, bmc.USERNAME, "not-the-password", insecure=True)
        assert wrong.failure is Failure.CREDENTIALS and "refused the username or password" in wrong.message
        assert steps(wrong) == [("connect", "failed")]
        unknown = mount(url, emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True, system_id="nope")
        assert unknown.failure is Failure.BMC_ERROR and "no system 'nope'" in unknown.message
        refused = mount(
            "http://127.0.0.1:1/gone.iso", emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True
        )
        assert refused.failure is Failure.MEDIA_REFUSED, refused
        assert steps(refused)[-1] == ("insert", "failed")
    closed = mount(url, f"http://127.0.0.1:{free_port()}", bmc.USERNAME, bmc.PASSWORD, insecure=True)
    assert closed.failure is Failure.UNREACHABLE and "cannot reach the BMC" in closed.message
    for result in (wrong, unknown, refused, closed):
        assert_secret_free(result, url, caplog)


FLOPPY_ONLY = {"Floppy": {"Name": "Virtual Removable Media", "MediaTypes": ["Floppy", "USBStick"]}}


@pytest.mark.parametrize(
    "config",
    [
        {"SUSHY_EMULATOR_VMEDIA_DEVICES": FLOPPY_ONLY},  # virtual media, but no CD or DVD
        {"SUSHY_EMULATOR_FEATURE_SET": "minimum"},  # no virtual media, no managers at all
    ],
    ids=["floppy only", "minimum"],
)
def test_a_bmc_without_a_virtual_cd(
    tmp_path: Path, iso_url: tuple[str, Path], config: dict[str, object]
) -> None:
    url, _ = iso_url
    with bmc.emulator(tmp_path / "bmc", extra_config=config) as emulator:
        result = mount(url, emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True)
    assert result.failure is Failure.NO_VIRTUAL_MEDIA and "no CD/DVD virtual media" in result.message
    assert steps(result) == [("connect", "done"), ("system", "done"), ("virtual media", "failed")]


def test_tls_is_verified_unless_insecure(tmp_path: Path, iso_url: tuple[str, Path]) -> None:
    url, _ = iso_url
    with bmc.emulator(tmp_path / "bmc", tls=True) as emulator:
        address = emulator.address.removeprefix("https://")  # https is the default
        refused = mount(url, address, bmc.USERNAME, bmc.PASSWORD)
        assert refused.failure is Failure.TLS and "REDFISH_CA_BUNDLE" in refused.message
        trusted = mount(url, address, bmc.USERNAME, bmc.PASSWORD, ca_bundle=str(emulator.certificate))
        assert trusted.ok, trusted
        lab = mount(url, address, bmc.USERNAME, bmc.PASSWORD, insecure=True)
        assert lab.ok, lab
        missing = mount(url, address, bmc.USERNAME, bmc.PASSWORD, ca_bundle=str(tmp_path / "none.pem"))
        assert missing.failure is Failure.TLS and "is not a readable file" in missing.message


@pytest.mark.parametrize(
    ("address", "insecure", "expected"),
    [
        ("bmc1.example", False, "https://bmc1.example"),
        ("10.0.0.5:8443", False, "https://10.0.0.5:8443"),
        ("https://[fd00::5]:443/", False, "https://[fd00::5]:443"),
        ("http://bmc1.example:8000", True, "http://bmc1.example:8000"),
    ],
)
def test_bmc_addresses(address: str, insecure: bool, expected: str) -> None:
    assert bmc_base_url(address, insecure) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://bmc1.example", "sends the password in clear"),
        ("ftp://bmc1.example", "must use https://"),
        ("https://root:pw@bmc1.example", "without user or password"),
        ("https://bmc1.example/redfish/v1", "no path"),
        ("bmc1 example", "no spaces"),
        ("bmc1.example:99999", "not a valid address"),
        ("", "no spaces"),
    ],
)
def test_unusable_bmc_addresses_are_refused_before_anything_is_sent(address: str, message: str) -> None:
    with pytest.raises(BadAddress, match=message):
        mount("http://127.0.0.1:1/x.iso", address, "user", "password")


@pytest.mark.boot
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
# serialized_rollback: the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_libvirt_machine_boots_from_the_portals_url(
    transactional_db: Any,
    make_user: Any,
    bootkit_source: Path,
    kickstart_location: Path,
    tmp_path: Path,
    firmware: str,
) -> None:
    """All through the portal: an ISO URL (stream no), then POST isos/urls/<id>/mount with
    power on; the emulator's libvirt machine (TCG) boots it from the CD, the override in the
    boot mode the machine reports (none for SeaBIOS, UEFI for OVMF)."""
    settled(bootkit_source)
    make_user("op", "operations")
    with (
        serve_portal(kickstart_location, tmp_path / "gunicorn.log") as server,
        bmc.libvirtd(tmp_path),
        bmc.libvirt_machine(tmp_path, firmware) as machine,
        bmc.emulator(tmp_path / "bmc", libvirt_config=machine.emulator_config()) as emulator,
    ):
        session = logged_in_session(server.url, "op")
        request = static_request(osversionDir=BOOTKIT_DIRECTORY, stream="no")
        made = session.post(f"{server.url}/api/5.0/isos", json=request, timeout=120)
        assert made.status_code == 200, made.text
        answer = made.json()["response"]
        media_id = IsoMedia.objects.get().pk
        body = {"isoURL": answer["isoURL"], "bmc": emulator.address, "username": bmc.USERNAME}
        body.update(password=bmc.PASSWORD, insecure=True, power="on")
        mounted = session.post(f"{server.url}/api/5.0/isos/urls/{media_id}/mount", json=body, timeout=300)
        assert mounted.status_code == 200, (mounted.text, emulator.log.read_text()[-3000:])
        fetched = [path for path in bmc.fetched_images(emulator) if path.name == answer["isoName"]]
        assert [hashlib.sha256(path.read_bytes()).hexdigest() for path in fetched] == [answer["sha256"]]
        console = bmc.wait_for_console(machine.serial, NETWORK_CFG_END.encode(), 180)
    report = read_console(console)
    assert report is not None, console[-3000:].decode("utf-8", "replace")
    assert report.network_cfg == EXPECTED_NETWORK_CFG
    assert report.firmware == firmware
    assert report.medium.startswith("/dev/sr")
    override = next(step for step in mounted.json()["response"]["steps"] if step["step"] == "boot override")
    assert override["detail"].endswith("(UEFI)" if firmware == "uefi" else "(boot mode as set)")


def test_power_on_then_reset(tmp_path: Path, iso_url: tuple[str, Path]) -> None:
    """``on`` powers an off system on and leaves an on one alone; ``reset`` restarts an on
    one. (The emulator, like a real BMC, applies a power action some seconds later.)"""
    url, iso = iso_url
    iso.write_bytes(bytes(range(256)) * 64)

    def power_step(power: Power) -> tuple[str, str]:
        result = mount(url, emulator.address, bmc.USERNAME, bmc.PASSWORD, insecure=True, power=power)
        assert result.ok, result
        [step] = [step for step in result.steps if step.name == "power"]
        return step.status, step.detail

    with bmc.emulator(tmp_path / "bmc") as emulator:
        assert power_step("on") == ("done", "powered on")
        assert poll(lambda: power_step("none")[1].startswith("power left On:"), wait=30)
        assert power_step("on") == ("skipped", "already on: the override applies at the next boot")
        assert power_step("reset") == ("done", "reset (ForceRestart)")
