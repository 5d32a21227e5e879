"""A Redfish BMC on loopback for the tests: ``sushy-tools``' ``sushy-emulator``.

``emulator`` starts it on a free port with basic authentication (a bcrypt htpasswd file),
optionally over TLS with a self-signed certificate made by ``openssl``, with either its fake
driver or its libvirt driver. ``LibvirtMachine`` is a small virtual machine (TCG, SeaBIOS,
serial console to a file) that the libvirt driver manages: ``libvirtd`` is started when
none answers, and stopped again. Without the tools, the calling test skips (or fails,
under ISOPORTAL_REQUIRE_TOOLS).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.serving import free_port, wait_for_port
from tests.support.tools import require_tool, unavailable

USERNAME = "bmc-admin"
PASSWORD = "Bmc-Secret-7f3a9c"  # the emulator's test account
LIBVIRT_URI = "qemu:///system"


@dataclass(frozen=True)
class Emulator:
    address: str  # what an operator types: scheme, host and port
    log: Path
    tmpdir: Path  # where the emulator's downloads land (its TMPDIR)
    certificate: Path | None


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made by openssl."""
    openssl = require_tool("openssl")
    cert, key = workdir / "bmc.crt", workdir / "bmc.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _require_emulator() -> None:
    try:
        import bcrypt  # noqa: F401
        import sushy_tools  # noqa: F401
    except ImportError:
        unavailable("sushy-tools is not installed (pip install -e '.[dev]')")


@contextmanager
def emulator(
    workdir: Path,
    *,
    tls: bool = False,
    libvirt_config: dict[str, object] | None = None,
    extra_config: dict[str, object] | None = None,
) -> Iterator[Emulator]:
    """``sushy-emulator`` on 127.0.0.1: its fake driver, or libvirt's with ``libvirt_config``;
    ``extra_config`` adds emulator settings (e.g. its virtual media devices)."""
    _require_emulator()
    import bcrypt

    workdir.mkdir(parents=True, exist_ok=True)
    tmpdir = workdir / "emulator-tmp"
    tmpdir.mkdir(exist_ok=True)
    htpasswd = workdir / "htpasswd"
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USERNAME}:{digest}\n")
    config: dict[str, object] = {"SUSHY_EMULATOR_AUTH_FILE": str(htpasswd)}
    if libvirt_config is None:
        config["SUSHY_EMULATOR_FAKE_DRIVER"] = True
    else:
        config.update(libvirt_config)
    config.update(extra_config or {})
    port = free_port()
    command = [sys.executable, "-m", "sushy_tools.emulator.main", "-i", "127.0.0.1", "-p", str(port)]
    certificate = None
    if tls:
        certificate, key = self_signed_certificate(workdir)
        command += ["--ssl-certificate", str(certificate), "--ssl-key", str(key)]
    if libvirt_config is not None:
        command += ["--libvirt-uri", LIBVIRT_URI]
    config_file = workdir / "emulator.conf"
    config_file.write_text("".join(f"{name} = {value!r}\n" for name, value in config.items()))
    command += ["--config", str(config_file)]
    log = workdir / "emulator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
    try:
        wait_for_port(port, process, log)
        scheme = "https" if tls else "http"
        yield Emulator(f"{scheme}://127.0.0.1:{port}", log, tmpdir, certificate)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def fetched_images(emulator: Emulator) -> list[Path]:
    """The images the emulator downloaded when a URL was inserted (in its TMPDIR)."""
    return sorted(path for path in emulator.tmpdir.rglob("*") if path.is_file())


def _libvirt_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["virsh", "-c", LIBVIRT_URI, "version"], capture_output=True, timeout=20
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def libvirtd(workdir: Path) -> Iterator[None]:
    """A libvirtd answering on qemu:///system: the one running, or one started (and stopped)."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("the libvirt Python binding is not installed (pip install libvirt-python)")
    for tool in ("libvirtd", "virtlogd", "virsh"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (apt-get install libvirt-daemon-system)")
    if os.geteuid() != 0:
        unavailable("libvirt's system daemon needs root")
    qemu_conf = Path("/etc/libvirt/qemu.conf")
    if not re.search(r'^user\s*=\s*"root"', qemu_conf.read_text() if qemu_conf.is_file() else "", re.M):
        # Else libvirt probes QEMU again on each call (seconds each) where /dev/kvm is root's only.
        unavailable(
            'libvirt\'s QEMU must run as root: user = "root" in /etc/libvirt/qemu.conf (docs/testing.md)'
        )
    if _libvirt_answers():
        yield
        return
    started: list[subprocess.Popen[bytes]] = []
    with (workdir / "libvirtd.log").open("wb") as log:
        for daemon in ("virtlogd", "libvirtd"):
            started.append(subprocess.Popen([daemon], stdin=subprocess.DEVNULL, stdout=log, stderr=log))
    try:
        deadline = time.monotonic() + 30
        while not _libvirt_answers():
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                raise RuntimeError(
                    f"libvirtd did not start:\n{(workdir / 'libvirtd.log').read_text()[-2000:]}"
                )
            time.sleep(0.25)
        yield
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  {os}
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{serial}'/></serial>
  </devices>
</domain>
"""

# SeaBIOS (its messages on the serial line too), or UEFI: OVMF chosen by libvirt, no Secure Boot.
OS_XML = {
    "bios": "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/><bios useserial='yes'/></os>",
    "uefi": "<os firmware='efi'><type arch='x86_64' machine='pc'>hvm</type>"
    "<firmware><feature enabled='no' name='secure-boot'/></firmware><boot dev='hd'/></os>",
}

POOL_XML = """<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"""


@dataclass(frozen=True)
class LibvirtMachine:
    name: str
    uuid: str
    pool: str
    serial: Path

    def emulator_config(self) -> dict[str, object]:
        """Only this machine is seen by the emulator, its images go to this pool."""
        return {"SUSHY_EMULATOR_ALLOWED_INSTANCES": [self.uuid], "SUSHY_EMULATOR_STORAGE_POOL": self.pool}


@contextmanager
def libvirt_machine(workdir: Path, firmware: str = "bios") -> Iterator[LibvirtMachine]:
    """A powered-off machine (no disk, no network; ``bios`` or ``uefi``) and a storage pool,
    removed afterwards (its UEFI variables too).

    QEMU runs as root for this domain (its DAC label): the test's folders need no relabelling.
    """
    import libvirt

    suffix = uuid.uuid4().hex[:10]
    folder = workdir / "libvirt"
    folder.mkdir(parents=True)
    machine = LibvirtMachine(
        f"isoportal-redfish-{suffix}", str(uuid.uuid4()), f"isoportal-{suffix}", folder / "serial.log"
    )
    connection = libvirt.open(LIBVIRT_URI)
    pool = connection.storagePoolCreateXML(POOL_XML.format(name=machine.pool, path=folder), 0)
    domain = connection.defineXML(
        DOMAIN_XML.format(name=machine.name, uuid=machine.uuid, serial=machine.serial, os=OS_XML[firmware])
    )
    try:
        yield machine
    finally:
        try:
            with contextlib.suppress(libvirt.libvirtError):  # it may power off meanwhile
                domain.destroy()
        finally:
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            for volume in pool.listAllVolumes():
                volume.delete()
            pool.destroy()
            connection.close()


def wait_for_console(path: Path, done: bytes, seconds: float) -> bytes:
    """The serial console's bytes once ``done`` shows (or the time is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = path.read_bytes() if path.exists() else b""
        if done in data:
            time.sleep(0.5)
            return path.read_bytes()
        time.sleep(0.25)
    return path.read_bytes() if path.exists() else b""
