"""A source's ``generate`` hook (Traffic Ops' convention), run safely into a temporary ISO.

The hook runs in a private view of the source with a minimal environment, a time limit
and its own process group; its ISO comes back as a :class:`HookIso`, an
:class:`~isos.engine.stream.IsoStream` like the engine's own (docs/generate-hook.md).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from isos.engine.boot_plan import BIOS_BOOT_FILE, EFI_IMAGES, BootSettingsError, read_settings
from isos.engine.source_files import DIRECTORY_FLAGS, FILE_FLAGS, open_real_path

logger = logging.getLogger(__name__)

HOOK_FILE_NAME = "generate"
# What ks_scripts/state.out says instead of the engine's boot description.
BUILT_BY_HOOK = "ISO made by the source's generate hook"
# The hook's whole PATH: no trace of the server's own environment.
HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The settings of isoportal.json that name boot images (isos.engine.boot_plan).
BOOT_IMAGE_SETTINGS = ("bios_boot_file", "efi_image")
TEMP_PREFIX = "iso-hook-"
STDERR_TAIL_LINES = 20
STDERR_TAIL_BYTES = 8192


class HookError(Exception):
    """The hook could not make an ISO; the message (exit status, its last output lines) is
    for operators (log, audit), never for the client."""


def find_generate_hook(source: Path, location: Path) -> Path | None:
    """The real path of the source's hook, or None when it has no usable one.

    Only an executable regular file named ``generate`` at the top of the source counts;
    a symlink may lead to one, but only inside the kickstart files ``location``.
    """
    candidate = source / HOOK_FILE_NAME
    try:
        os.lstat(candidate)
    except OSError:
        return None  # the usual case: no hook, the portal builds the ISO itself
    try:
        real = candidate.resolve(strict=True)
        info = os.stat(real)
    except (OSError, RuntimeError):  # dangling link or a loop (RuntimeError before 3.13)
        logger.warning("%s cannot be resolved; building without it", candidate)
        return None
    if not real.is_relative_to(location.resolve()):
        logger.warning("%s leads outside %s; building without it", candidate, location)
        return None
    if not stat.S_ISREG(info.st_mode) or not os.access(real, os.X_OK):
        logger.warning("%s is not an executable regular file; building without it", candidate)
        return None
    return real


def hook_environment(
    *, work: Path, output: Path, source: Path, fqdn: str, osversion_dir: str
) -> dict[str, str]:
    """The hook's whole environment: nothing is inherited from the server."""
    return {
        "PATH": HOOK_PATH,
        "LANG": "C.UTF-8",
        # Not the view: a tool's dotfiles or temporary files must not land in the ISO.
        "HOME": str(work / "home"),
        "TMPDIR": str(work / "tmp"),
        "ISO_OUTPUT": str(output),
        "SOURCE_DIR": str(source),
        "FQDN": fqdn,
        "OSVERSION_DIR": osversion_dir,
    }


def lay_out_private_view(source: Path, view: Path, files: Mapping[str, bytes]) -> None:
    """Make ``view``: the source's entries as symlinks, ``files`` and boot images real.

    ``files`` maps POSIX paths relative to the ISO root (``ks_scripts/network.cfg``) to
    their content; they replace source entries of the same path. Every folder above one
    of them is a real directory in the view, holding symlinks to the rest of the
    source's folder, so writing the file never reaches the shared tree.
    """
    own_files = {_relative_path(name) for name in files}
    images: dict[PurePosixPath, int] = {}
    try:
        for name in sorted(boot_images(source)):
            path = PurePosixPath(name)
            if path not in own_files and (descriptor := _open_boot_image(source, name)) is not None:
                images[path] = descriptor
        copies = set(images)
        real_dirs = {parent for path in own_files | copies for parent in path.parents if parent.parts}
        _mirror_folder(source, view, PurePosixPath(), real_dirs, own_files | copies)
        # O_EXCL and O_NOFOLLOW: the view is new, so anything already there is a mistake.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for name, data in files.items():
            # 0600 from the start (password.cfg holds the root password's hash).
            descriptor = os.open(view.joinpath(name), flags, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
        for path, image in images.items():
            descriptor = os.open(view.joinpath(*path.parts), flags, 0o644)
            with os.fdopen(descriptor, "wb") as out, os.fdopen(os.dup(image), "rb") as copied:
                shutil.copyfileobj(copied, out)
    finally:
        for descriptor in images.values():
            os.close(descriptor)


def _open_boot_image(source: Path, name: str) -> int | None:
    """The boot image to copy into the view, open; None when there is none to copy.

    Read by the portal only inside the source: a regular file there, reached through its
    folders or through symlinks that stay inside it, opened by its real path with no
    symlink followed. One that leads out of the source is not copied: the view links to
    it as to any other entry, as the source has it (logged).
    """
    root = os.path.realpath(source)
    real = os.path.realpath(source.joinpath(name))
    if not os.path.lexists(source.joinpath(name)):
        return None
    if not real.startswith(root + os.sep):
        logger.warning("%s leads outside the source; the hook's view links to it, not a copy", name)
        return None
    try:
        descriptor = open_real_path(real, FILE_FLAGS)
    except OSError:
        return None  # gone, unreadable, or a link put on its way since: not copied
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return None
    return descriptor


def boot_images(source: Path) -> set[str]:
    """The boot images the view holds private copies of, where the source has them.

    mkisofs and genisoimage ``-boot-info-table`` rewrite the boot image in place (xorriso
    does not); through a symlink that would patch the shared source, the very file every
    other request boots from. So: the engine's conventional names, and those the
    source's ``isoportal.json`` names. They are small (isolinux.bin about 40 KiB, an EFI
    image a few MiB).
    """
    names = {BIOS_BOOT_FILE, *EFI_IMAGES}
    try:
        settings = read_settings(str(source))
    except BootSettingsError:
        settings = {}  # the hook builds its own way; a broken settings file is not its concern
    names.update(path for key in BOOT_IMAGE_SETTINGS if (path := settings.get(key)) is not None)
    return names


def _relative_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise ValueError(f"not a relative path inside the ISO: {name!r}")
    return path


def _mirror_folder(
    source_folder: Path,
    view_folder: Path,
    relative: PurePosixPath,
    real_dirs: set[PurePosixPath],
    own_files: set[PurePosixPath],
) -> None:
    """One real folder of the view: symlinks to the source's entries, except ours."""
    view_folder.mkdir()
    entries = sorted(os.listdir(source_folder)) if source_folder.is_dir() else []
    for name in entries:
        path = relative / name
        if path in own_files or path in real_dirs:
            continue  # written by the caller, or made real below
        # Absolute targets: the view lives elsewhere, and links must not be re-pointable
        # by anything but the source itself.
        os.symlink(source_folder / name, view_folder / name)
    for folder in sorted(real_dirs):
        if folder.parent == relative:
            _mirror_folder(
                source_folder / folder.name, view_folder / folder.name, folder, real_dirs, own_files
            )


class HookIso:
    """The ISO a hook wrote: exact ``size``, chunks when iterated (once), ``close()``.

    Holds the file open after its directory was removed, so closing it is what frees the
    disk space; ``close()`` is idempotent and also ends an iteration in progress.
    """

    size: int

    def __init__(self, file: BinaryIO, size: int, chunk_size: int) -> None:
        self._file = file
        self.size = size
        self._chunk_size = chunk_size
        self._stream: Generator[bytes, None, None] | None = None
        self._iterated = False

    def __iter__(self) -> Iterator[bytes]:
        if self._file.closed:
            raise RuntimeError("the hook's ISO is closed")
        if self._iterated:
            raise RuntimeError("the hook's ISO can be iterated only once")
        self._iterated = True
        self._stream = self._chunks()
        return self._stream

    def _chunks(self) -> Generator[bytes, None, None]:
        remaining = self.size
        while remaining:
            chunk = self._file.read(min(self._chunk_size, remaining))
            if not chunk:
                # Nobody can write the file any more; still, a short stream must fail,
                # never look complete.
                raise HookError(f"the hook's ISO ended {remaining} bytes short of its size")
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        self._file.close()

    def __enter__(self) -> HookIso:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_generate_hook(
    hook: Path,
    source: Path,
    files: Mapping[str, bytes],
    *,
    timeout: float,
    chunk_size: int,
    fqdn: str,
    osversion_dir: str,
) -> HookIso:
    """Run ``hook`` in a private view of ``source`` holding ``files``; its ISO, open.

    ``fqdn`` and ``osversion_dir`` are passed to the hook's environment; nothing else of
    the request is (the root password only reaches it hashed, in ``password.cfg``).
    Raises HookError (with the exit status and its last output lines) when the hook
    fails, times out, or writes no ISO or an empty one. The temporary directory is gone
    when this returns or raises.
    """
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    work_fd: int | None = None
    try:
        # The hook's output is opened from this descriptor: whatever is done to the path
        # of the temporary directory meanwhile, it is our directory's output.iso.
        work_fd = os.open(work, DIRECTORY_FLAGS)
        view, output, log_path = work / "view", work / "output.iso", work / "hook.log"
        (work / "home").mkdir()
        (work / "tmp").mkdir()
        lay_out_private_view(source, view, files)
        environment = hook_environment(
            work=work, output=output, source=source, fqdn=fqdn, osversion_dir=osversion_dir
        )
        started = time.monotonic()
        failure = _run_to_completion(hook, output, view, environment, log_path, timeout)
        opened = failure or _open_output(work_fd, output.name, chunk_size)
        if isinstance(opened, str):
            raise HookError(f"generate hook {hook} {opened}; {_output_tail(log_path)}")
        logger.info(
            "generate hook %s wrote a %d-byte ISO in %.1f s", hook, opened.size, time.monotonic() - started
        )
        return opened
    except OSError as error:
        raise HookError(f"generate hook {hook} could not be run: {error}") from error
    finally:
        if work_fd is not None:
            os.close(work_fd)
        _remove_tree(work)


def _run_to_completion(
    hook: Path, output: Path, view: Path, environment: Mapping[str, str], log_path: Path, timeout: float
) -> str | None:
    """Run the hook; None when it exited 0 in time, else what went wrong."""
    # A file, not a pipe: nothing to drain while waiting, and a background child that
    # keeps the descriptor open cannot make us wait for an end of file.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(hook), str(output)],
            cwd=view,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own session and process group, so the whole group can be killed.
            start_new_session=True,
        )
    try:
        exited = _wait_without_reaping(process.pid, timeout)
    finally:
        # Whether it finished, timed out or we were interrupted: nothing it started may
        # outlive it. The leader is not reaped yet, so its id still names the group.
        _kill_process_group(process.pid)
        process.wait()
    if not exited:
        return f"timed out after {timeout:g} s (killed with its process group)"
    if process.returncode < 0:
        return f"was killed by {signal.Signals(-process.returncode).name}"
    if process.returncode != 0:
        return f"exited with status {process.returncode}"
    return None


def _wait_without_reaping(pid: int, timeout: float) -> bool:
    """True when the process exited within ``timeout``; it stays a zombie until reaped.

    A pidfd (Linux 5.3+) becomes readable when the process exits, without reaping it.
    """
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        # (poll() resumes after a signal with the time left, PEP 475.)
        return bool(poller.poll(max(0, round(timeout * 1000))))
    finally:
        os.close(pidfd)


def _kill_process_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already empty
        os.killpg(pgid, signal.SIGKILL)


def _open_output(work_fd: int, name: str, chunk_size: int) -> HookIso | str:
    """The hook's ISO (``name`` in the temporary directory open as ``work_fd``) opened for
    the stream, or why it cannot be sent."""
    try:
        # O_NOFOLLOW: a symlink is not an ISO the hook wrote; O_NONBLOCK: a FIFO must not
        # block the request (it has no writer left).
        descriptor = os.open(name, FILE_FLAGS, dir_fd=work_fd)
    except FileNotFoundError:
        return "wrote no ISO to its output path"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "left a symlink at its output path, not a regular file"
        return f"left an output that cannot be opened ({error.strerror})"
    file = os.fdopen(descriptor, "rb", buffering=0)
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        file.close()
        return "left an output that is not a regular file"
    if info.st_size == 0:
        file.close()
        return "wrote an empty ISO"
    return HookIso(file, info.st_size, chunk_size)


def _output_tail(log_path: Path) -> str:
    """The hook's last output lines (stderr and stdout), for the log and the audit."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - STDERR_TAIL_BYTES))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"its output cannot be read: {error.strerror}"
    lines = text.strip().splitlines()[-STDERR_TAIL_LINES:]
    if not lines:
        return "it printed nothing"
    return "its last output lines:\n" + "\n".join(lines)


def _remove_tree(work: Path) -> None:
    """Remove the temporary directory, even where the hook took away permissions."""
    try:
        shutil.rmtree(work)
        return
    except OSError:
        pass
    try:
        _grant_access(work)
        shutil.rmtree(work)
    except (OSError, RecursionError) as error:
        logger.error("cannot remove the generate hook's temporary directory %s: %s", work, error)


def _grant_access(folder: str | Path) -> None:
    """Make every real folder under ``folder`` ours again (0700); symlinks are not followed,
    so the shared source is never touched."""
    os.chmod(folder, 0o700)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _grant_access(entry.path)
