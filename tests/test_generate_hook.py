"""A source's ``generate`` hook, through POST isos: a private view, a time limit, no leftovers.

Each hook is a small shell script the test writes into a source of the kickstart files
location; the working ones build their ISO from ``.`` with xorriso (or genisoimage) and
leave notes (environment, arguments, process ids) in a folder outside the location.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from isos.models import IsoBuild
from tests.support.api import EXPECTED_NETWORK_CFG, close_response, download, post_json, static_request
from tests.support.isoread import read_rr_files, read_rr_tree
from tests.support.processes import open_descriptor_targets, poll, process_gone
from tests.support.sources import tree_digest
from tests.support.tools import require_tool

URL = "/api/5.0/isos"
ALERT_500 = {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
# -f: the private view is made of symlinks, which the ISO must hold as the files they name.
XORRISO_BUILD = 'xorriso -as mkisofs -f -R -J -V HOOK -o "$1" .'


@pytest.fixture
def hook_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder where the portal makes its per-request temporary directories."""
    folder = tmp_path / "server-tmp"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A folder outside the kickstart files location where hooks leave what they saw."""
    folder = tmp_path / "notes"
    folder.mkdir()
    return folder


@pytest.fixture
def source(kickstart_location: Path) -> Path:
    return kickstart_location / "centos72"


@pytest.fixture
def install_hook(source: Path, notes: Path) -> Callable[..., Path]:
    """Write ``generate`` into the source: a shell script, ``{notes}`` filled in."""

    def install(body: str, mode: int = 0o755) -> Path:
        hook = source / "generate"
        hook.write_text("#!/bin/sh\nset -e\n" + body.replace("{notes}", str(notes)) + "\n")
        hook.chmod(mode)
        return hook

    return install


def files_of(data: bytes, tmp_path: Path, name: str = "out.iso") -> dict[str, bytes]:
    iso_path = tmp_path / name
    iso_path.write_bytes(data)
    return read_rr_files(iso_path)


def open_hook_files() -> list[str]:
    """What this process holds open of the hook's temporary directories."""
    return [target for target in open_descriptor_targets() if "iso-hook-" in target]


@pytest.mark.django_db
def test_hook_builds_the_iso_from_a_private_view(
    operations_client: Client,
    source: Path,
    install_hook: Callable[..., Path],
    notes: Path,
    hook_temp: Path,
    tmp_path: Path,
) -> None:
    require_tool("xorriso")
    install_hook(
        """stat -c %a ks_scripts/password.cfg > "{notes}/password-mode"
pwd -P > "{notes}/cwd"
"""
        + XORRISO_BUILD
    )
    before = tree_digest(source)

    response, data = download(operations_client, static_request())

    assert response["Content-Type"] == "application/download"
    assert response["Content-Disposition"] == 'attachment; filename="test.quest-centos72.iso"'
    assert response["Cache-Control"] == "no-store"
    assert int(response["Content-Length"]) == len(data)
    files = files_of(data, tmp_path)
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert files["ks_scripts/disk.cfg"] == b'boot_drives="sda"'
    assert files["ks_scripts/password.cfg"].startswith(b"rootpw --iscrypted $6$")
    assert files["ks_scripts/state.out"].decode().endswith("generate hook\n")
    # The source's own files, its own ks_scripts files included, as they are.
    for name in ("ks_scripts/ks.cfg", "images/install.img", ".treeinfo", "isolinux/isolinux.bin"):
        assert files[name] == (source / name).read_bytes(), name
    assert (notes / "password-mode").read_text().strip() == "600"
    assert not Path((notes / "cwd").read_text().strip()).is_relative_to(source)

    assert tree_digest(source) == before, "the shared source directory must never be written"
    assert list(hook_temp.iterdir()) == [], "the temporary directory must be gone"
    assert open_hook_files() == []
    build = IsoBuild.objects.get()
    assert build.outcome == "built" and build.bytes_sent == build.iso_size == len(data)
    assert build.detail == "ISO: test.quest, ID: N/A, ACTION: Created ISO, keys: { OS:centos72 }"


@pytest.mark.django_db
def test_hook_environment_and_arguments_hold_no_password(
    operations_client: Client,
    kickstart_location: Path,
    source: Path,
    install_hook: Callable[..., Path],
    notes: Path,
    hook_temp: Path,
) -> None:
    require_tool("xorriso")
    # /proc/$$ holds exactly what the hook was started with, before the shell adds its own.
    install_hook(
        """tr '\\0' '\\n' < /proc/$$/environ > "{notes}/environ"
tr '\\0' '\\n' < /proc/$$/cmdline > "{notes}/cmdline"
cat ks_scripts/* > "{notes}/ks_scripts"
pwd -P > "{notes}/cwd"
"""
        + XORRISO_BUILD
    )
    download(operations_client, static_request(rootPass="Hook-Must-Not-See-This"))

    environ = dict(line.split("=", 1) for line in (notes / "environ").read_text().splitlines())
    arguments = (notes / "cmdline").read_text().splitlines()
    cwd = Path((notes / "cwd").read_text().strip())
    expected = {"PATH", "LANG", "HOME", "TMPDIR", "ISO_OUTPUT", "SOURCE_DIR", "FQDN", "OSVERSION_DIR"}
    assert set(environ) == expected
    assert environ["LANG"] == "C.UTF-8"
    assert environ["FQDN"] == "test.quest" and environ["OSVERSION_DIR"] == "centos72"
    assert environ["SOURCE_DIR"] == str(source.resolve())
    # The kernel runs "/bin/sh <hook> <output>": the hook by its absolute path, one argument.
    assert arguments[1:] == [str((source / "generate").resolve()), environ["ISO_OUTPUT"]]
    assert Path(arguments[-1]).parent == cwd.parent, "the output lies beside the view, not in it"
    for private in ("HOME", "TMPDIR"):
        assert Path(environ[private]).parent == cwd.parent, private
    assert cwd.is_relative_to(hook_temp.resolve())
    for seen in ((notes / "environ").read_text(), " ".join(arguments), (notes / "ks_scripts").read_text()):
        assert "Hook-Must-Not-See-This" not in seen
    assert 'HOSTNAME="test.quest"' in (notes / "ks_scripts").read_text()


# Threads use connections of their own: the data must be committed. serialized_rollback:
# the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_requests_each_get_their_own_files(
    client_for: Callable[..., Client],
    source: Path,
    install_hook: Callable[..., Path],
    notes: Path,
    hook_temp: Path,
    tmp_path: Path,
) -> None:
    """Both hooks wait until the other has started: they run at the same time, for sure."""
    require_tool("xorriso")
    install_hook(
        """touch "{notes}/started-$FQDN"
tries=0
until [ "$(ls "{notes}" | grep -c '^started-')" -ge 2 ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { echo "the other request never started" >&2; exit 1; }
    sleep 0.1
done
"""
        + XORRISO_BUILD
    )
    before = tree_digest(source)
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    clients = {host: client_for("operations", username=f"user-{host}") for host in ("alpha", "bravo")}

    def fetch(host: str) -> None:
        try:
            _, results[host] = download(clients[host], static_request(hostName=host))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch, args=(host,)) for host in ("alpha", "bravo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for host in ("alpha", "bravo"):
        network = files_of(results[host], tmp_path, f"{host}.iso")["ks_scripts/network.cfg"]
        assert f'HOSTNAME="{host}.quest"'.encode() in network
    assert tree_digest(source) == before
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('echo "disk on fire: /dev/sdz" >&2\nexit 3', "exited with status 3"),
        ('echo "disk on fire: nothing written"', "wrote no ISO"),
        ('echo "disk on fire: empty" >&2\n: > "$1"', "wrote an empty ISO"),
        ('echo "disk on fire: segfault" >&2\nkill -SEGV $$', "killed by SIGSEGV"),
        ('echo "disk on fire: a link" >&2\nln -s /etc/passwd "$1"', "not a regular file"),
    ],
    ids=["exit-status", "no-output", "empty-output", "signal", "symlink-output"],
)
def test_failing_hook_is_a_500_alert_with_details_in_log_and_audit(
    operations_client: Client,
    install_hook: Callable[..., Path],
    hook_temp: Path,
    caplog: pytest.LogCaptureFixture,
    body: str,
    reason: str,
) -> None:
    install_hook(body)
    response = post_json(operations_client, URL, static_request())

    assert response.status_code == 500
    assert response.json() == ALERT_500
    assert b"disk on fire" not in response.content
    assert reason in caplog.text and "disk on fire" in caplog.text
    build = IsoBuild.objects.get()
    assert build.outcome == "failed"
    assert reason in build.detail and "disk on fire" in build.detail
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
def test_hanging_hook_is_killed_with_its_children_after_the_time_limit(
    operations_client: Client,
    install_hook: Callable[..., Path],
    notes: Path,
    hook_temp: Path,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.ISO_HOOK_TIMEOUT = 1.5
    install_hook(
        """echo $$ > "{notes}/hook.pid"
sleep 1000 &
echo $! > "{notes}/background.pid"
echo "waiting for a mirror that never answers" >&2
sh -c 'echo $$ > "{notes}/foreground.pid"; exec sleep 1000'
"""
    )
    started = time.monotonic()
    response = post_json(operations_client, URL, static_request())
    elapsed = time.monotonic() - started

    assert response.status_code == 500 and response.json() == ALERT_500
    assert 1.5 <= elapsed < 15
    for name in ("hook.pid", "background.pid", "foreground.pid"):
        pid = int((notes / name).read_text())
        assert poll(partial(process_gone, pid), wait=5.0), f"{name}: process {pid} outlived the hook"
    build = IsoBuild.objects.get()
    assert "timed out after 1.5 s" in build.detail
    assert "never answers" in build.detail and "never answers" in caplog.text
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
def test_what_a_successful_hook_leaves_running_is_killed(
    operations_client: Client, install_hook: Callable[..., Path], notes: Path, hook_temp: Path
) -> None:
    require_tool("xorriso")
    install_hook(
        """sleep 1000 > /dev/null 2>&1 &
echo $! > "{notes}/background.pid"
"""
        + XORRISO_BUILD
    )
    download(operations_client, static_request())
    assert poll(partial(process_gone, int((notes / "background.pid").read_text())), wait=5.0)
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
def test_client_that_goes_away_leaves_no_file_or_handle(
    operations_client: Client, install_hook: Callable[..., Path], hook_temp: Path, settings: Any
) -> None:
    require_tool("xorriso")
    settings.ISO_STREAM_CHUNK_KB = 16  # many chunks, so the client can leave in the middle
    install_hook(XORRISO_BUILD)
    response = post_json(operations_client, URL, static_request())
    assert response.status_code == 200
    next(iter(response.streaming_content))
    # The directory is gone already; only the open file keeps the ISO's data...
    assert list(hook_temp.iterdir()) == []
    assert len(open_hook_files()) == 1
    close_response(response)
    # ... until the server closes the response.
    assert open_hook_files() == []
    build = IsoBuild.objects.get()
    assert build.outcome == "client_went_away" and 0 < build.bytes_sent < build.iso_size


@pytest.mark.django_db
def test_boot_info_table_patching_never_reaches_the_shared_source(
    operations_client: Client,
    source: Path,
    install_hook: Callable[..., Path],
    hook_temp: Path,
    tmp_path: Path,
) -> None:
    """genisoimage patches the boot image in place (Traffic Ops' own command does it):
    the view holds a private copy, so the shared isolinux.bin stays as it was."""
    require_tool("genisoimage")
    install_hook(
        'genisoimage -quiet -f -R -J -o "$1" -b isolinux/isolinux.bin -c isolinux/boot.cat '
        "-no-emul-boot -boot-load-size 4 -boot-info-table .\n"
        # Writes into the view's real folders stay in the view.
        "echo scratch > isolinux/scratch; echo scratch > ks_scripts/scratch"
    )
    before = tree_digest(source)
    _, data = download(operations_client, static_request())
    assert tree_digest(source) == before
    files = files_of(data, tmp_path)
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    assert files["isolinux/isolinux.bin"] != (source / "isolinux/isolinux.bin").read_bytes(), "patched copy"
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
def test_a_boot_file_named_in_isoportal_json_is_a_private_copy_too(
    operations_client: Client, source: Path, install_hook: Callable[..., Path], hook_temp: Path
) -> None:
    require_tool("genisoimage")
    (source / "boot" / "x86").mkdir(parents=True)
    shutil.move(source / "isolinux" / "isolinux.bin", source / "boot" / "x86" / "isolinux.bin")
    (source / "isoportal.json").write_text(json.dumps({"bios_boot_file": "boot/x86/isolinux.bin"}))
    install_hook(
        'genisoimage -quiet -f -R -J -o "$1" -b boot/x86/isolinux.bin -c boot/x86/boot.cat '
        "-no-emul-boot -boot-load-size 4 -boot-info-table ."
    )
    before = tree_digest(source)
    download(operations_client, static_request())
    assert tree_digest(source) == before
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["not-executable", "directory", "symlink-outside", "dangling-symlink"])
def test_a_generate_that_is_no_executable_file_inside_the_location_is_ignored(
    operations_client: Client, source: Path, notes: Path, hook_temp: Path, tmp_path: Path, kind: str
) -> None:
    script = f'#!/bin/sh\ntouch "{notes}/ran"\nexit 1\n'
    hook = source / "generate"
    if kind == "not-executable":
        hook.write_text(script)
        hook.chmod(0o644)
    elif kind == "directory":
        hook.mkdir()
    elif kind == "symlink-outside":
        outside = tmp_path / "outside-generate"
        outside.write_text(script)
        outside.chmod(0o755)
        hook.symlink_to(outside)
    else:
        hook.symlink_to(source / "no-such-file")

    _, data = download(operations_client, static_request())

    assert not (notes / "ran").exists()
    files = files_of(data, tmp_path)
    assert "generate hook" not in files["ks_scripts/state.out"].decode()
    assert files["ks_scripts/network.cfg"] == EXPECTED_NETWORK_CFG
    if kind == "not-executable":
        assert files["generate"] == script.encode()  # an ordinary file of the source
    assert IsoBuild.objects.get().outcome == "built"
    assert list(hook_temp.iterdir()) == []


@pytest.mark.django_db
def test_a_symlink_to_a_hook_inside_the_location_counts(
    operations_client: Client,
    kickstart_location: Path,
    source: Path,
    notes: Path,
    hook_temp: Path,
    tmp_path: Path,
) -> None:
    """Operators may share one hook between sources: a link that stays in the location."""
    require_tool("xorriso")
    shared = kickstart_location / "hooks" / "generate"
    shared.parent.mkdir()
    shared.write_text(f"#!/bin/sh\nset -e\n{XORRISO_BUILD}\n")
    shared.chmod(0o755)
    (source / "generate").symlink_to("../hooks/generate")
    _, data = download(operations_client, static_request())
    files = files_of(data, tmp_path)
    assert files["ks_scripts/state.out"].decode().endswith("generate hook\n")
    assert read_rr_tree(tmp_path / "out.iso")["symlinks"] == {}, "the view's links are followed"
