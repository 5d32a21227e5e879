"""``manage.py demo`` tells the truth: "Portal ready" only once its port is bound, a busy port
said so with another to try, and a sample that cannot boot claims no boot entry.

The serving tests run the command as a person does, in a process of its own on a data
directory of its own; the sample's ISO is made through the API and read back.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.test import Client

from isos.engine import describe_boot
from portal.management.commands import demo
from tests.support.api import post_json
from tests.support.isoread import eltorito_entries, read_rr_file
from tests.support.serving import free_port

MANAGE = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py")]


def demo_env(tmp_path: Path) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DATABASE_URL"}}
    return {
        **base,
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "KICKSTART_FILES_LOCATION": str(tmp_path / "ks"),
    }


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


def test_a_busy_port_is_said_with_another_to_try(tmp_path: Path, listener: int) -> None:
    result = subprocess.run(
        [*MANAGE, "demo", "--addrport", f"127.0.0.1:{listener}"],
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"Port {listener} on 127.0.0.1 is busy" in result.stderr
    assert f"Try: manage.py demo --addrport 127.0.0.1:{listener + 1}" in result.stderr
    assert "Portal ready" not in result.stdout and "Traceback" not in result.stderr


def test_portal_ready_is_printed_once_the_port_answers(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*MANAGE, "demo", "--addrport", f"127.0.0.1:{port}"],
        env={**demo_env(tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Portal ready" in line:
                break
        assert any(f"Portal ready: http://127.0.0.1:{port}/" in line for line in lines), lines
        # The very moment it says so, the port answers (it was bound before the line).
        response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert response.status_code == 200
        login = requests.get(f"http://127.0.0.1:{port}/login/", timeout=30)
        assert login.status_code == 200 and "ISO portal" in login.text
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.django_db
def test_without_debian_isolinux_the_sample_claims_no_boot(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    location = tmp_path / "ks"
    settings.KICKSTART_FILES_LOCATION = location
    settings.ISO_NAMESERVERS = ["192.0.2.53"]
    monkeypatch.setattr(demo, "DEBIAN_ISOLINUX", tmp_path / "no-isolinux.bin")
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    printed = out.getvalue()
    assert demo.NOT_BOOTABLE_HINT in printed
    assert "Portal ready" not in printed and "Portal set up (not serving: --no-serve)" in printed
    source = location / demo.DEMO_SOURCE
    assert not (source / "isolinux" / "isolinux.bin").exists()
    assert describe_boot(source).startswith("not bootable")

    # The sample's ISO, through the API: no El Torito entry, and state.out says so.
    client.post(
        "/api/5.0/user/login", {"u": demo.DEMO_USER, "p": demo.DEMO_PASSWORD}, content_type="application/json"
    )
    body = {
        "osversionDir": "demo",
        "hostName": "edge1",
        "domainName": "cdn.example",
        "rootPass": "changeme",
        "dhcp": "yes",
        "interfaceMtu": 1500,
    }
    response = post_json(client, "/api/5.0/isos", body)
    assert response.status_code == 200
    iso = tmp_path / "sample.iso"
    iso.write_bytes(b"".join(response.streaming_content))
    assert eltorito_entries(iso) == []
    state = read_rr_file(iso, "/ks_scripts/state.out").decode()
    assert "not bootable" in state and "El Torito" not in state


@pytest.mark.django_db
def test_an_older_demos_placeholder_is_dropped_and_debian_isolinux_taken_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "demo"
    (source / "isolinux").mkdir(parents=True)
    (source / "isolinux" / "isolinux.bin").write_bytes(b"\0" * 2048)
    monkeypatch.setattr(demo, "DEBIAN_ISOLINUX", tmp_path / "absent")
    assert demo.sample_boot_file(source) is False
    assert not (source / "isolinux" / "isolinux.bin").exists()
    fake_isolinux = tmp_path / "isolinux.bin"
    fake_isolinux.write_bytes(b"\xfa" + b"\x01" * 2047)
    monkeypatch.setattr(demo, "DEBIAN_ISOLINUX", fake_isolinux)
    assert demo.sample_boot_file(source) is True
    assert (source / "isolinux" / "isolinux.bin").read_bytes() == fake_isolinux.read_bytes()
    assert describe_boot(source).startswith("BIOS El Torito: isolinux/isolinux.bin")
