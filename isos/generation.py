"""From a request's fields to the ISO download: the steps the API, the page and the command share.

Every caller walks the same road (docs/design.md) with its :class:`~isos.attempt.Attempt`:
the permission check, the user's OS versions, the serializer's rules, the kickstart
files, the builder's layout, and the audited stream of the ISO, each step audited the
same way. Whatever raises unexpectedly on the way is audited too (:func:`failures_audited`).
Only how a refusal or a failure is shown differs (a JSON alert, a page, an exit status),
so that part stays with the callers.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import StreamingHttpResponse
from django.views.decorators.debug import sensitive_variables

from isos.attempt import Attempt
from isos.audit import AuditedStream, record_attempt
from isos.connections import close_while_streaming
from isos.engine import IsoStream, SourceError, StreamError, describe_boot
from isos.engine.hook import BUILT_BY_HOOK, HookError, find_generate_hook, run_generate_hook
from isos.engine.layout_cache import layout_cache
from isos.kickstart import IsoRequest, nameservers_from_resolv_conf, render_ks_scripts
from isos.models import PERMISSION_LABELS, IsoBuild
from isos.serializers import IsoRequestSerializer
from isos.stream_limits import (
    OUT_OF_DESCRIPTORS,
    StreamRefused,
    out_of_descriptors,
    take_stream_slot,
    worker_streams,
)
from osversions.catalog import (
    CatalogError,
    kickstart_files_location,
    resolve_source,
    usable_catalog,
)
from portal.trafficops.log_text import log_text, log_traceback, without_secret
from portal.trafficops.permissions import missing_permission_labels, missing_permissions_message

logger = logging.getLogger(__name__)

PLAIN_FILENAME = re.compile(r"[A-Za-z0-9._+@=,-]+")  # fullmatch: the whole name


class GenerationFailed(Exception):
    """Our side cannot make the ISO (catalog or source broken); already logged and audited.

    The message is for operators (log, audit), never for the client.
    """


def iso_filename(iso_request: IsoRequest) -> str:
    """``<fqdn>-<osversionDir>.iso`` with every ``/`` replaced by ``_`` (docs/api.md)."""
    return f"{iso_request.fqdn}-{iso_request.osversion_dir}.iso".replace("/", "_")


def content_disposition(filename: str) -> str:
    """The attachment header; names outside plain ASCII also get an RFC 6266 form."""
    if PLAIN_FILENAME.fullmatch(filename):
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r"[^A-Za-z0-9._+@=,-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def nameservers() -> list[str]:
    """The nameservers for network.cfg: the setting, or the host's resolv.conf."""
    return list(settings.ISO_NAMESERVERS) or nameservers_from_resolv_conf(settings.RESOLV_CONF)


def missing_permissions(user: Any) -> str | None:
    """Why ``user`` may not generate ISOs (Traffic Ops' message), or None when they may."""
    missing = missing_permission_labels(user, PERMISSION_LABELS)
    return missing_permissions_message(missing) if missing else None


def audit_permissions(attempt: Attempt) -> str | None:
    """The permission check of every road: :func:`missing_permissions`, audited as a refusal.

    Once per attempt: the browsable API checks a second time to decide whether to draw
    its form, and that is not a second attempt.
    """
    message = missing_permissions(attempt.user)
    if message is not None and not attempt.refusal_recorded:
        record_attempt(attempt, IsoBuild.Outcome.REFUSED, message)
    return message


def record_failure(attempt: Attempt, reason: str) -> GenerationFailed:
    """Log and audit a failure on our side; the caller raises what this returns."""
    logger.error("ISO generation failed before streaming: %s", log_text(reason))
    record_attempt(attempt, IsoBuild.Outcome.FAILED, reason)
    return GenerationFailed(reason)


def unexpected_failure(attempt: Attempt, error: Exception, secret: str = "") -> GenerationFailed:
    """Log (with the traceback) and audit an error nobody foresaw: a bad setting, a bug.

    ``secret`` (the root password, where a step holds it) is blotted out of the message
    and the traceback, in case the error quotes it. An attempt that already has its
    record (e.g. refused) keeps it.
    """
    reason = without_secret(f"unexpected error: {type(error).__name__}: {error}", secret)
    # Both may quote client text: log_text and log_traceback keep it on one line.
    logger.error("ISO generation failed on our side: %s\n%s", log_text(reason), log_traceback(error, secret))
    if not attempt.recorded:
        record_attempt(attempt, IsoBuild.Outcome.FAILED, reason)
    return GenerationFailed(reason)


@contextmanager
def failures_audited(attempt: Attempt) -> Iterator[None]:
    """Around a caller's road: anything unexpected raised in it becomes GenerationFailed.

    So every attempt is audited, and every caller answers an unexpected error as it
    answers a known failure (a 500 alert, the page's apology, exit status 1), never with
    the reason, which is for the log and the record.
    """
    try:
        yield
    except (GenerationFailed, StreamRefused):
        raise
    except Exception as error:
        raise unexpected_failure(attempt, error) from error


def catalog_for_attempt(attempt: Attempt) -> dict[str, str]:
    """The OS versions this user may use; raises GenerationFailed (audited) when
    osversions.json cannot be used."""
    try:
        return usable_catalog(attempt.user)
    except CatalogError as error:
        raise record_failure(attempt, f"osversions: {error}") from error


def request_serializer(data: Mapping[str, Any], catalog: Mapping[str, str]) -> IsoRequestSerializer:
    """The API's serializer for ``data``, offering this user's OS versions (unvalidated)."""
    return IsoRequestSerializer(data=data, context={"offered_directories": set(catalog.values())})


@sensitive_variables("serializer")
def audit_validation(
    attempt: Attempt, serializer: IsoRequestSerializer, page_refusals: Sequence[str] = ()
) -> bool:
    """Whether the request passed the serializer's rules and a page's own (``page_refusals``,
    e.g. the password confirmation); a refusal is audited.

    The attempt keeps what the audit may of the request (no password) from here on.
    """
    attempt.settings = serializer.safe_settings()
    valid = serializer.is_valid()
    if valid and not page_refusals:
        return True
    # One line in the API's form: the serializer's alert, then the page's own rules.
    detail = (
        ", ".join([serializer.alert_text, *page_refusals])
        if not valid
        else "validating: " + ", ".join(page_refusals)
    )
    record_attempt(attempt, IsoBuild.Outcome.REFUSED, detail)
    return False


@sensitive_variables("data", "serializer")
def checked_request(
    attempt: Attempt, data: Mapping[str, Any], catalog: Mapping[str, str], other_refusals: Sequence[str] = ()
) -> IsoRequestSerializer:
    """The serializer, validated against this user's OS versions; a refusal (of its rules
    or ``other_refusals``, e.g. the API's ``stream``) is audited.

    Afterwards ``is_valid()`` answers from its cache and ``errors``/``alert_text`` say why.
    """
    serializer = request_serializer(data, catalog)
    audit_validation(attempt, serializer, other_refusals)
    return serializer


@sensitive_variables("iso_request", "files")
def open_iso_stream(attempt: Attempt, iso_request: IsoRequest) -> AuditedStream:
    """Build the ISO (or have the source's generate hook make it): its stream, audited
    until the last byte (``size`` is exact before the first).

    Everything that can fail is tried here, before the first byte; raises
    GenerationFailed (audited) when the source cannot be used. The caller must close the
    stream, read to the end or not.
    """
    try:
        source = resolve_source(iso_request.osversion_dir)
        # The generate hook is a directory source's; a vendor ISO has none.
        hook = find_generate_hook(source, kickstart_files_location()) if source.is_dir() else None
        image: IsoStream
        if hook is None:
            boot = describe_boot(source)
            files = render_ks_scripts(iso_request, nameservers(), settings.ROOT_PASSWORD_HASH, boot)
            # A cached layout of the source: only this request's ks_scripts files are new.
            image = layout_cache.build_iso(source, files, volume_id=settings.ISO_VOLUME_ID)
        else:
            # Traffic Ops' convention: the source's own generate makes the ISO (docs/api.md).
            boot = BUILT_BY_HOOK
            files = render_ks_scripts(iso_request, nameservers(), settings.ROOT_PASSWORD_HASH, boot)
            image = run_generate_hook(
                hook,
                source,
                files,
                timeout=settings.ISO_HOOK_TIMEOUT,
                chunk_size=settings.ISO_STREAM_CHUNK_KB * 1024,
                fqdn=iso_request.fqdn,
                osversion_dir=iso_request.osversion_dir,
            )
    except Exception as error:
        raise building_failure(attempt, error, iso_request.root_pass) from error

    build = record_attempt(attempt, IsoBuild.Outcome.STREAMING, iso_size=image.size, boot=boot)
    close_while_streaming()
    return AuditedStream(image, build, started=attempt.started)


# What can go wrong making an ISO that is the source's or the catalog's fault: a reason
# for the log and the audit, not a bug.
KNOWN_FAILURES: tuple[type[Exception], ...] = (CatalogError, SourceError, HookError, StreamError)


def building_failure(attempt: Attempt, error: Exception, secret: str) -> Exception:
    """What to raise for ``error`` met while making an ISO (a download's or a URL's), audited:
    StreamRefused (503) when the worker ran out of descriptors, GenerationFailed otherwise,
    with the error's reason when it is a known failure. ``secret`` (the root password,
    which these steps hold) is kept out of an unexpected error's reason."""
    if ran_out_of_descriptors(error):
        return out_of_descriptors(attempt)
    if isinstance(error, KNOWN_FAILURES):
        return record_failure(attempt, str(error))
    # E.g. a bad ROOT_PASSWORD_HASH, or a bug in rendering ks_scripts.
    return unexpected_failure(attempt, error, secret=secret)


def ran_out_of_descriptors(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is EMFILE or ENFILE."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
            return True
        error = error.__cause__ or error.__context__
    return False


def limit_send_time(connection: socket.socket, seconds: int) -> None:
    """A send to ``connection`` that cannot hand over a chunk for ``seconds`` fails, so a
    client that stops reading is cut and audited ``client_went_away`` (docs/operations.md).

    A gevent worker's socket is non-blocking underneath: its own timeout does it. A
    threaded worker's blocks: the kernel's SO_SNDTIMEO does.
    """
    if type(connection).__module__.startswith("gevent"):
        connection.settimeout(seconds)
    else:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))


@sensitive_variables("iso_request")
def iso_download_response(attempt: Attempt, iso_request: IsoRequest) -> StreamingHttpResponse:
    """The ISO's stream as the download (API and page); raises StreamRefused (429/503, audited)
    when the user or this worker streams as many as allowed, and GenerationFailed as
    :func:`open_iso_stream` does."""
    take_stream_slot(attempt)
    # Laying the source out may wait for another request's layout: without a connection.
    close_while_streaming()
    try:
        stream = open_iso_stream(attempt, iso_request)
    except BaseException:
        worker_streams.give_back()
        raise
    stream.when_closed(worker_streams.give_back)
    if attempt.client_socket is not None:
        limit_send_time(attempt.client_socket, settings.ISO_SEND_TIMEOUT)
    response = StreamingHttpResponse(stream, content_type="application/download")
    # The exact size up front is what lets a browser show real download progress.
    response["Content-Length"] = str(stream.size)
    response["Content-Disposition"] = content_disposition(iso_filename(iso_request))
    response["Cache-Control"] = "no-store"
    return response
