"""From a request's fields to the ISO download: the steps the API and the web form share.

Both callers walk the same road (DESIGN.md): the user's OS versions, the serializer's
rules, the kickstart files, the builder's layout, and a ``StreamingHttpResponse`` with
the exact Content-Length, each step audited the same way. Only how a refusal or a
failure is shown differs (a JSON alert, or a page), so that part stays with the callers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.debug import sensitive_variables

from isos.audit import STARTED_ATTRIBUTE, AuditedStream, mark_attempt_started, record_attempt
from isos.engine import IsoStream, SourceError, describe_boot
from isos.engine.hook import BUILT_BY_HOOK, HookError, find_generate_hook, run_generate_hook
from isos.engine.layout_cache import layout_cache
from isos.kickstart import IsoRequest, nameservers_from_resolv_conf, render_ks_scripts
from isos.models import IsoBuild
from isos.serializers import IsoRequestSerializer
from osversions.catalog import (
    CatalogError,
    kickstart_files_location,
    resolve_source,
    usable_catalog,
)

logger = logging.getLogger(__name__)

PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9._+@=,-]+$")


class GenerationFailed(Exception):
    """Our side cannot make the ISO (catalog or source broken); already logged and audited.

    The message is for operators (log, audit), never for the client.
    """


def iso_filename(iso_request: IsoRequest) -> str:
    """``<fqdn>-<osversionDir>.iso`` with every ``/`` replaced by ``_`` (API.md)."""
    return f"{iso_request.fqdn}-{iso_request.osversion_dir}.iso".replace("/", "_")


def content_disposition(filename: str) -> str:
    """The attachment header; names outside plain ASCII also get an RFC 6266 form."""
    if PLAIN_FILENAME.match(filename):
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r"[^A-Za-z0-9._+@=,-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def nameservers() -> list[str]:
    """The nameservers for network.cfg: the setting, or the host's resolv.conf."""
    return list(settings.ISO_NAMESERVERS) or nameservers_from_resolv_conf(settings.RESOLV_CONF)


def record_failure(request: HttpRequest, reason: str, safe_settings: Mapping[str, Any]) -> GenerationFailed:
    """Log and audit a failure on our side; the caller raises what this returns."""
    logger.error("ISO generation failed before streaming: %s", reason)
    record_attempt(request, IsoBuild.Outcome.FAILED, reason, safe_settings)
    return GenerationFailed(reason)


def catalog_for_attempt(request: HttpRequest) -> dict[str, str]:
    """The OS versions this user may use, for a generation attempt.

    Raises GenerationFailed (audited) when osversions.json cannot be used. Every
    caller starts its attempt here, so this is where its duration starts too.
    """
    mark_attempt_started(request)
    try:
        return usable_catalog(request.user)
    except CatalogError as error:
        raise record_failure(request, f"osversions: {error}", {}) from error


@sensitive_variables("data", "serializer")
def checked_request(
    request: HttpRequest,
    data: Mapping[str, Any],
    catalog: Mapping[str, str],
    form_refusals: Mapping[str, list[str]] | None = None,
) -> IsoRequestSerializer:
    """The serializer, validated against this user's OS versions; a refusal is audited.

    ``form_refusals`` are a page's own rules (field → messages, e.g. the password
    confirmation), audited in the same record. Afterwards ``is_valid()`` answers from
    its cache and ``errors``/``alert_text`` say why.
    """
    serializer = IsoRequestSerializer(data=data, context={"offered_directories": set(catalog.values())})
    valid = serializer.is_valid()
    extra = [message for messages in (form_refusals or {}).values() for message in messages]
    if not valid or extra:
        # One line in the API's form: the serializer's alert, then the page's own rules.
        detail = (
            ", ".join([serializer.alert_text, *extra]) if not valid else "validating: " + ", ".join(extra)
        )
        record_attempt(request, IsoBuild.Outcome.REFUSED, detail, serializer.safe_settings())
    return serializer


@sensitive_variables("iso_request", "files")
def open_iso_stream(
    request: HttpRequest, iso_request: IsoRequest, safe_settings: Mapping[str, Any]
) -> AuditedStream:
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
            files = render_ks_scripts(
                iso_request, nameservers(), settings.ROOT_PASSWORD_HASH, describe_boot(source)
            )
            # A cached layout of the source: only this request's ks_scripts files are new.
            image = layout_cache.build_iso(source, files, volume_id=settings.ISO_VOLUME_ID)
        else:
            # Traffic Ops' convention: the source's own generate makes the ISO (API.md).
            files = render_ks_scripts(iso_request, nameservers(), settings.ROOT_PASSWORD_HASH, BUILT_BY_HOOK)
            image = run_generate_hook(
                hook,
                source,
                files,
                timeout=settings.ISO_HOOK_TIMEOUT,
                chunk_size=settings.ISO_STREAM_CHUNK_KB * 1024,
                fqdn=iso_request.fqdn,
                osversion_dir=iso_request.osversion_dir,
            )
    except (CatalogError, SourceError, HookError) as error:
        raise record_failure(request, str(error), safe_settings) from error

    build = record_attempt(request, IsoBuild.Outcome.STREAMING, settings=safe_settings, iso_size=image.size)
    return AuditedStream(image, build, started=getattr(request, STARTED_ATTRIBUTE, None))


@sensitive_variables("iso_request")
def iso_download_response(
    request: HttpRequest, iso_request: IsoRequest, safe_settings: Mapping[str, Any]
) -> StreamingHttpResponse:
    """The ISO's stream as the download (API and form); raises GenerationFailed as
    :func:`open_iso_stream` does."""
    stream = open_iso_stream(request, iso_request, safe_settings)
    response = StreamingHttpResponse(stream, content_type="application/download")
    # The exact size up front is what lets a browser show real download progress.
    response["Content-Length"] = str(stream.size)
    response["Content-Disposition"] = content_disposition(iso_filename(iso_request))
    response["Cache-Control"] = "no-store"
    return response
