"""POST isos end to end: real HTTP in, a real ISO out, read back and checked.

The ISO is read back with pycdlib and, where installed, with isoinfo, xorriso and bsdtar
(Debian's packages, which .ci/run installs).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest
from django.test import Client
from passlib.hash import sha512_crypt

from isos.engine import build_iso
from isos.engine import layout_cache as layout_cache_module
from isos.models import IsoBuild
from tests.support.api import EXPECTED_NETWORK_CFG, close_response, download, post_json, static_request
from tests.support.isoread import read_rr_files
from tests.support.sources import tree_digest
from tests.support.tools import require_tool

URL = "/api/5.0/isos"


def source_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.mark.django_db
def test_download_headers_and_contents(
    operations_client: Client, kickstart_location: Path, tmp_path: Path
) -> None:
    source = kickstart_location / "centos72"
    before = tree_digest(source)
    response, data = download(operations_client, static_request())

    assert response["Content-Type"] == "application/download"
    assert response["Content-Disposition"] == 'attachment; filename="test.quest-centos72.iso"'
    assert int(response["Content-Length"]) == len(data)
    assert len(data) % 2048 == 0

    iso_path = tmp_path / "out.iso"
    iso_path.write_bytes(data)
    files = read_rr_files(iso_path)
    for name, content in source_files(source).items():
        if name == "isolinux/isolinux.bin":
            continue  # its boot info table is patched in the ISO (checked below)
        if (
            name.startswith("ks_scripts/")
            and name in files
            and name.rsplit("/", 1)[1]
            in {"network.cfg", "mgmt_network.cfg", "disk.cfg", "password.cfg", "state.out"}
        ):
            continue
        assert files[name] == content, name
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert files["ks_scripts/disk.cfg"] == b'boot_drives="sda"'
    assert files["ks_scripts/mgmt_network.cfg"] == b'IPADDR=""\nNETMASK=""\nGATEWAY=""\nDEVICE=""'
    password_line = files["ks_scripts/password.cfg"].decode()
    assert password_line.startswith("rootpw --iscrypted $6$")
    assert sha512_crypt.verify("twelve", password_line.split()[-1])
    assert b"twelve" not in data
    assert files["ks_scripts/state.out"].endswith(b"\n")

    boot_bin = source / "isolinux" / "isolinux.bin"
    patched = files["isolinux/isolinux.bin"]
    assert patched[:8] == boot_bin.read_bytes()[:8] and patched[64:] == boot_bin.read_bytes()[64:]
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.eltorito_boot_catalog is not None
        entry = iso.eltorito_boot_catalog.initial_entry
        assert entry.sector_count == 4 and entry.boot_indicator == 0x88
    finally:
        iso.close()
    assert tree_digest(source) == before, "the source tree must never be written"


@pytest.mark.django_db
def test_dhcp_bond_and_case_insensitive_keys(operations_client: Client, tmp_path: Path) -> None:
    body = {
        "OSVERSIONDIR": "rocky/8",
        "hostname": "edge-1",
        "DomainName": "cdn.example.net",
        "rootpass": "x",
        "dhcp": True,
        "interfacemtu": "9000",
        "interfaceName": "bond0",
        "ipAddress": "ignored with dhcp",
        "confirmRootPass": "x",
        "stream": "yes",
    }
    response, data = download(operations_client, body)
    assert response["Content-Disposition"] == 'attachment; filename="edge-1.cdn.example.net-rocky_8.iso"'
    iso_path = tmp_path / "out.iso"
    iso_path.write_bytes(data)
    network = read_rr_files(iso_path)["ks_scripts/network.cfg"].decode()
    assert 'BOND_DEVICE="bond0"' in network and 'MTU="9000"' in network
    assert 'IPADDR=""' in network and network.endswith(
        'BONDING_OPTS="miimon=100 mode=4 lacp_rate=fast xmit_hash_policy=layer3+4"\nDHCP="yes"'
    )


@pytest.mark.django_db
def test_stream_equals_pycdlib_write_of_the_same_layout(
    operations_client: Client,
    kickstart_location: Path,
    tmp_path: Path,
    frozen_clock: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HTTP body is byte-identical to pycdlib's own write() of the same files (the clock
    pinned, so that the server's layout and this test's carry the same dates)."""
    # The source never counts as settled, so the server lays it out in this process, under
    # the pinned clock, rather than in a child process with the real one.
    monkeypatch.setattr(layout_cache_module, "SETTLE_NS", 10**30)
    _, data = download(operations_client, static_request())
    iso_path = tmp_path / "out.iso"
    iso_path.write_bytes(data)
    extras = {
        name: content for name, content in read_rr_files(iso_path).items() if name.startswith("ks_scripts/")
    }
    source_ks = {f"ks_scripts/{p.name}" for p in (kickstart_location / "centos72" / "ks_scripts").iterdir()}
    extras = {name: content for name, content in extras.items() if name not in source_ks}
    image = build_iso(kickstart_location / "centos72", extras, volume_id="CDROM")
    reference = io.BytesIO()
    try:
        image.write_reference(reference)
    finally:
        image.close()
    assert reference.getvalue() == data


@pytest.mark.django_db
@pytest.mark.parametrize("tool", ["isoinfo", "xorriso", "bsdtar"])
def test_debian_tools_read_the_iso(operations_client: Client, tmp_path: Path, tool: str) -> None:
    require_tool(tool)
    _, data = download(operations_client, static_request())
    iso_path = tmp_path / "out.iso"
    iso_path.write_bytes(data)
    if tool == "isoinfo":
        text = subprocess.run(
            ["isoinfo", "-R", "-i", str(iso_path), "-x", "/ks_scripts/network.cfg"],
            capture_output=True,
            check=True,
        ).stdout
        assert text == EXPECTED_NETWORK_CFG
        listing = subprocess.run(
            ["isoinfo", "-d", "-i", str(iso_path)], capture_output=True, text=True, check=True
        ).stdout
        assert "El Torito" in listing and "Rock Ridge" in listing and "Joliet" in listing
    elif tool == "xorriso":
        out = tmp_path / "network.cfg"
        subprocess.run(
            [
                "xorriso",
                "-osirrox",
                "on",
                "-indev",
                str(iso_path),
                "-extract",
                "/ks_scripts/network.cfg",
                str(out),
            ],
            capture_output=True,
            check=True,
        )
        assert out.read_bytes() == EXPECTED_NETWORK_CFG
        report = subprocess.run(
            ["xorriso", "-indev", str(iso_path), "-report_el_torito", "plain"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "El Torito boot img" in report and "BIOS" in report
    else:
        text = subprocess.run(
            ["bsdtar", "-xOf", str(iso_path), "ks_scripts/network.cfg"], capture_output=True, check=True
        ).stdout
        assert text == EXPECTED_NETWORK_CFG


@pytest.mark.django_db
def test_built_iso_is_audited(operations_client: Client) -> None:
    _, data = download(operations_client, static_request(rootPass="audit-me-not"))
    build = IsoBuild.objects.get()
    assert build.outcome == "built"
    assert build.bytes_sent == build.iso_size == len(data)
    assert build.fqdn == "test.quest" and build.osversion_dir == "centos72"
    assert build.detail == "ISO: test.quest, ID: N/A, ACTION: Created ISO, keys: { OS:centos72 }"
    assert build.finished_at is not None and build.username == "operations"
    assert "rootPass" not in build.request_settings
    assert "audit-me-not" not in repr(build.__dict__)


@pytest.mark.django_db
def test_first_byte_leaves_before_the_sources_are_read(
    operations_client: Client, kickstart_location: Path
) -> None:
    """Take the first chunk, then shrink a source file: the stream must fail, not pad.

    That the failure comes *after* the first chunk proves the data is read lazily; that
    it fails proves a download that cannot finish never looks complete.
    """
    response = post_json(operations_client, URL, static_request())
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert first
    (kickstart_location / "centos72" / "images" / "install.img").write_bytes(b"short")
    received = len(first)
    with pytest.raises(Exception, match=r"install\.img"):
        for chunk in chunks:
            received += len(chunk)
    assert received < int(response["Content-Length"])
    close_response(response)
    build = IsoBuild.objects.get()
    assert build.outcome == "failed" and "install.img" in build.detail


@pytest.mark.django_db
def test_client_that_goes_away_is_recorded(operations_client: Client) -> None:
    response = post_json(operations_client, URL, static_request())
    next(iter(response.streaming_content))
    close_response(response)
    build = IsoBuild.objects.get()
    assert build.outcome == "client_went_away" and 0 < build.bytes_sent < build.iso_size


@pytest.mark.django_db
def test_missing_source_directory_is_a_500_alert(operations_client: Client, kickstart_location: Path) -> None:
    shutil.rmtree(kickstart_location / "centos72")
    response = post_json(operations_client, URL, static_request())
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
    build = IsoBuild.objects.get()
    assert build.outcome == "failed" and "does not exist" in build.detail


@pytest.mark.django_db
@pytest.mark.parametrize(
    "accept", ["application/download", "application/x-iso9660-image", "application/octet-stream", "*/*"]
)
def test_clients_asking_for_an_iso_get_one_and_alerts_as_json(operations_client: Client, accept: str) -> None:
    response = post_json(operations_client, URL, static_request(), HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"] == "application/download"
    close_response(response)
    refused = post_json(operations_client, URL, {}, HTTP_ACCEPT=accept)
    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["alerts"][0]["text"].startswith("validating: ")
