"""``manage.py generate_iso``: the API's ``POST isos`` for scripts on the portal host.

The same road as the API and the page, with an :class:`~isos.attempt.Attempt` of the
``command`` road; the root password never comes from the command line, and the ISO is
written to ``FILE.part`` then renamed (docs/operations.md). Exit: 0 written, 2 refused, 1 failed.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.views.decorators.debug import sensitive_variables

from isos.attempt import Attempt, Road
from isos.audit import AuditedStream
from isos.generation import (
    GenerationFailed,
    audit_permissions,
    catalog_for_attempt,
    checked_request,
    failures_audited,
    open_iso_stream,
)
from isos.serializers import FIELD_ATTRIBUTES

REFUSED = 2
FAILED = 1
# The request fields given as options: every one but the password (--host-name → hostName).
FIELD_OPTIONS = {name: attribute for name, attribute in FIELD_ATTRIBUTES.items() if name != "rootPass"}


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (``kill``, systemd, a CI's time-out) as SystemExit(143) while the ISO is
    written, so that ``FILE.part`` is removed and the record closed, as after Ctrl-C."""

    def exit_now(signum: int, frame: Any) -> NoReturn:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a signal handler
        return
    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Generate a host's installer ISO with the API's rules, as USER, into FILE ('-' for "
        "stdout). The root password is prompted for, or read with --root-pass-stdin or "
        "--root-pass-env. Exit status: 0 written, 2 refused, 1 failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Whose permissions and OS versions apply.")
        parser.add_argument("--output", "-o", required=True, help="Where to write the ISO; '-' for stdout.")
        for name, attribute in FIELD_OPTIONS.items():
            parser.add_argument(f"--{attribute.replace('_', '-')}", dest=attribute, help=f"The {name} field.")
        password = parser.add_mutually_exclusive_group()
        password.add_argument(
            "--root-pass-stdin", action="store_true", help="Read the root password from stdin's first line."
        )
        password.add_argument(
            "--root-pass-env", metavar="NAME", help="Take the root password from environment variable NAME."
        )

    @sensitive_variables("body")
    def handle(self, *args: Any, **options: Any) -> None:
        attempt = Attempt(road=Road.COMMAND, user=self._active_user(options["user"]))
        output = options["output"]
        if output == "-" and sys.stdout.isatty():
            self._refuse("refusing to write an ISO to a terminal; give --output FILE or redirect stdout")
        given = {name: options[attribute] for name, attribute in FIELD_OPTIONS.items()}
        body: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        body["rootPass"] = self._root_password(options)
        refusal = audit_permissions(attempt)
        if refusal is not None:
            self._refuse(refusal)
        try:
            with failures_audited(attempt):
                catalog = catalog_for_attempt(attempt)
                serializer = checked_request(attempt, body, catalog)
                if not serializer.is_valid():
                    self._refuse(serializer.alert_text)
                stream = open_iso_stream(attempt, serializer.iso_request())
        except GenerationFailed:
            # The reason is in the log and the audit record, as for the API.
            self._fail("the ISO could not be made; the reason is in the log and the audit record")
        try:
            with sigterm_as_exit():
                if output == "-":
                    self._write_to(stream, sys.stdout.buffer)
                else:
                    self._write_file(stream, Path(output))
        finally:
            stream.close()

    def _active_user(self, username: str) -> User:
        """The active user whose permissions, OS versions and name the attempt takes."""
        model = get_user_model()
        user = model.objects.filter(**{model.USERNAME_FIELD: username, "is_active": True}).first()
        if user is None:
            self._refuse(f"no active user named {username!r}")
        return user

    @sensitive_variables("password")
    def _root_password(self, options: dict[str, Any]) -> str:
        if options["root_pass_env"]:
            password = os.environ.get(options["root_pass_env"])
            if password is None:
                self._refuse(f"environment variable {options['root_pass_env']} is not set")
            return password
        if options["root_pass_stdin"]:
            # One line, without its line ending: spaces are part of a password.
            return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        try:
            password = getpass.getpass("Root password: ")
            confirmation = getpass.getpass("Root password (again): ")
        except EOFError:
            self._refuse("no root password given")
        if password != confirmation:
            self._refuse("the two root passwords differ")
        return password

    def _write_file(self, stream: AuditedStream, path: Path) -> None:
        """Into ``path.part``, synced, then renamed: the final name is whole or absent."""
        part = path.with_name(path.name + ".part")
        try:
            # 0600: the ISO holds the root password's hash.
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as error:
            stream.fail(f"cannot create {part}: {error.strerror}")
            self._fail(f"cannot create {part}: {error.strerror}")
        try:
            with os.fdopen(descriptor, "wb") as file:
                self._write_to(stream, file)
                os.fsync(file.fileno())
            os.replace(part, path)
            # The rename itself must survive a crash too.
            directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise

    def _write_to(self, stream: AuditedStream, file: IO[bytes]) -> None:
        """Every chunk into ``file``; a write error fails the record and the command."""
        chunks = iter(stream)
        while True:
            # A source that breaks mid-stream is audited by the stream itself.
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception as error:
                self._fail(f"the ISO broke off while being made: {error}")
            try:
                file.write(chunk)
            except OSError as error:
                stream.fail(f"cannot write the ISO: {error.strerror}")
                self._fail(f"cannot write the ISO: {error.strerror}")
        try:
            file.flush()
        except OSError as error:
            stream.fail(f"cannot write the ISO: {error.strerror}")
            self._fail(f"cannot write the ISO: {error.strerror}")

    def _refuse(self, message: str) -> NoReturn:
        self.stderr.write(message)
        raise SystemExit(REFUSED)

    def _fail(self, message: str) -> NoReturn:
        self.stderr.write(message)
        raise SystemExit(FAILED)
