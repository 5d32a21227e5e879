"""ISO URLs for virtual media: a token whose bytes are made on demand, the same for life.

A BMC mounts the URL and reads it by Range requests, with no session. The record
(:class:`~isos.models.IsoMedia`) keeps what the bytes depend on, never the token (only its
SHA-256) nor the clear password (docs/design.md, "Byte-identical for life"; docs/api.md,
"ISO URLs for virtual media").
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from rest_framework.response import Response

from isos.attempt import Attempt
from isos.audit import record_attempt
from isos.connections import close_while_streaming
from isos.engine import describe_boot
from isos.engine.hook import find_generate_hook
from isos.engine.layout_cache import Pin, layout_cache, source_fingerprint
from isos.engine.stream import IsoImage
from isos.generation import (
    building_failure,
    iso_filename,
    nameservers,
)
from isos.history import sees_every_build
from isos.kickstart import IsoRequest, render_ks_scripts
from isos.models import IsoBuild, IsoMedia
from isos.serializers import is_blank
from isos.stream_limits import StreamRefused, take_stream_slot, worker_streams
from osversions.catalog import kickstart_files_location, resolve_source
from portal.trafficops.alerts import alerts_body

logger = logging.getLogger(__name__)

HOOK_REFUSAL = "this OS version's ISO is made by its generate hook: it can be downloaded, not served as a URL"

# 32 random bytes: 256 bits, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
TOKEN_LENGTH = 43
URL_PREFIX = "media/"  # the URL's path: /media/<token>/<iso name>


def new_token() -> str:
    """A fresh token for one URL (given out once, stored only as :func:`token_hash`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def live_at(now: datetime) -> Q:
    """The URLs live at ``now``: neither revoked nor expired (the retention command prunes
    the others)."""
    return Q(revoked_at__isnull=True, expires_at__gt=now)


def _live(records: QuerySet[IsoMedia]) -> QuerySet[IsoMedia]:
    return records.filter(live_at(timezone.now()))


# A BMC asks for a URL thousands of times, a range at a time. What serving needs of the
# record never changes once it is made, so each worker keeps the records it served last (by
# the token's hash) and asks the database each time only whether the URL still lives: one
# indexed SELECT of two columns, its SQL written once (the ORM's compiling cost more than
# the query).
RECORDS_KEPT = 64
_records_kept: OrderedDict[str, IsoMedia] = OrderedDict()
_records_lock = threading.Lock()


@functools.cache
def _live_id_sql(vendor: str) -> str:
    """The SELECT of a live record's id and hash by its hash (names quoted for ``vendor``)."""
    quote = connection.ops.quote_name
    column = {field.name: quote(str(field.column)) for field in IsoMedia._meta.concrete_fields}
    # live_at()'s rule, written out. Only the model's own names are formatted in; the values
    # are parameters.
    return (
        f"SELECT {column['id']}, {column['token_hash']} FROM {quote(IsoMedia._meta.db_table)}"  # noqa: S608
        f" WHERE {column['token_hash']} = %s AND {column['revoked_at']} IS NULL"
        f" AND {column['expires_at']} > %s"
    )


def live_media_for_token(token: str) -> IsoMedia | None:
    """The live record (not expired, not revoked) of ``token``, or None, whatever the reason.

    The lookup is by the token's hash (an index); the stored hash is then compared again
    in constant time, so no timing tells how much of a guess was right. The record may be
    the worker's kept copy: its counts and dates are as first read.
    """
    if len(token) != TOKEN_LENGTH:
        return None
    wanted = token_hash(token)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_live_id_sql(connection.vendor), [wanted, now])
        row = cursor.fetchone()
    if row is None or not hmac.compare_digest(row[1], wanted):
        with _records_lock:
            _records_kept.pop(wanted, None)  # expired or revoked: its files are kept no more
        return None
    with _records_lock:
        record = _records_kept.get(wanted)
        if record is not None:
            _records_kept.move_to_end(wanted)
    if record is None or record.pk != row[0]:
        record = IsoMedia.objects.filter(pk=row[0]).first()
        if record is None:
            return None
        with _records_lock:
            _records_kept[wanted] = record
            while len(_records_kept) > RECORDS_KEPT:
                _records_kept.popitem(last=False)
    return record


def token_from_url(url: str) -> str | None:
    """The token of an isoURL (any host: the path's ``media/<token>/<name>``), or None."""
    parts = urlsplit(url).path.split("/")
    for index, part in enumerate(parts[:-2]):
        if part + "/" == URL_PREFIX and len(parts[index + 1]) == TOKEN_LENGTH:
            return parts[index + 1]
    return None


def visible_media(user: User | AnonymousUser) -> QuerySet[IsoMedia]:
    """The URLs' records this user may see or act on: their own; an admin's, everyone's."""
    records = IsoMedia.objects.order_by("-created_at", "-id")
    if sees_every_build(user):
        return records
    if not isinstance(user, User):
        return records.none()
    return records.filter(user=user)


def live_media(media_id: Any, user: User | AnonymousUser) -> IsoMedia | None:
    """The live record ``media_id`` if ``user`` owns it or is an admin; else None (an
    unknown, foreign, expired or revoked id alike: no hint which)."""
    try:
        key = int(media_id)
    except (TypeError, ValueError):
        return None
    return _live(visible_media(user)).filter(pk=key).first()


def live_media_of(user: User | AnonymousUser) -> QuerySet[IsoMedia]:
    """The live URLs this user may see, newest first (the history's list)."""
    return _live(visible_media(user))


def revoke(record: IsoMedia, by: str) -> bool:
    """Revoke a URL: 404 from then on. False if it already was (or has expired).

    Its stored ks_scripts files (the root password's crypt hash among them) are emptied at
    once: only its bytes needed them. The record keeps what the audit wants (names, size,
    sha256, counts, dates, who revoked) and the source's pin, which holds no secret.
    """
    changed = IsoMedia.objects.filter(pk=record.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by[:150], files={}
    )
    return bool(changed)


# --------------------------------------------------------------------------------------
# Making a URL
# --------------------------------------------------------------------------------------


class MediaRefused(Exception):
    """A request that cannot be made a URL (audited as refused): a 400 alert's text."""


@dataclass(frozen=True)
class MadeUrl:
    """A URL just made: the only time its token is known."""

    record: IsoMedia
    url: str

    @property
    def expires(self) -> datetime:
        return self.record.expires_at


def base_url(request: HttpRequest | None) -> str:
    """``ISO_MEDIA_BASE_URL``, or the request's own scheme and host."""
    configured = str(settings.ISO_MEDIA_BASE_URL).rstrip("/")
    if configured or request is None:
        return configured
    return f"{request.scheme}://{request.get_host()}"


def media_path(token: str, iso_name: str) -> str:
    return reverse("isos:media", kwargs={"token": token, "name": iso_name})


def pin_of(record: IsoMedia) -> Pin:
    return Pin(
        record.source_path,
        record.source_fingerprint,
        record.volume_id,
        record.layout_time,
        record.layout_digest,
    )


def files_of(record: IsoMedia) -> dict[str, bytes]:
    return {name: base64.b64decode(data) for name, data in record.files.items()}


def _pinned_iso(source: str, files: dict[str, bytes]) -> tuple[IsoImage, Pin]:
    """The image and its pin; waits (at most about a second) for a source just changed."""
    settle_until = time.monotonic() + 1.5
    while source_fingerprint(os.path.realpath(source)) is None and time.monotonic() < settle_until:
        time.sleep(0.1)
    return layout_cache.pinned_iso(source, files, volume_id=settings.ISO_VOLUME_ID)


def _sha256(image: IsoImage) -> str:
    """The image's SHA-256, streamed once (other greenlets run between chunks)."""
    digest = hashlib.sha256()
    for chunk in image:
        digest.update(chunk)
        time.sleep(0)
    return digest.hexdigest()


@sensitive_variables("iso_request", "files")
def make_url(attempt: Attempt, iso_request: IsoRequest, iso_name: str, base: str) -> MadeUrl:
    """Make a URL for this request's ISO: lay it out (pinned), hash it once, keep the record
    and audit it ``url_made``. Raises StreamRefused (429/503, audited) as a download would,
    MediaRefused for a source whose ISO a hook makes, GenerationFailed (audited) when the
    source cannot be used."""
    take_stream_slot(attempt)  # hashing reads the whole ISO once, as a download would
    close_while_streaming()
    try:
        try:
            source = resolve_source(iso_request.osversion_dir)
            if source.is_dir() and find_generate_hook(source, kickstart_files_location()) is not None:
                record_attempt(attempt, IsoBuild.Outcome.REFUSED, HOOK_REFUSAL)
                raise MediaRefused(HOOK_REFUSAL)
            boot = describe_boot(source)
            files = render_ks_scripts(iso_request, nameservers(), settings.ROOT_PASSWORD_HASH, boot)
            image, pin = _pinned_iso(str(source), files)
            try:
                sha256 = _sha256(image)
                size = image.size
            finally:
                image.close()
        except (MediaRefused, StreamRefused):
            raise
        except Exception as error:
            raise building_failure(attempt, error, iso_request.root_pass) from error
    finally:
        worker_streams.give_back()
    token = new_token()
    expires = timezone.now() + timedelta(seconds=settings.ISO_MEDIA_TTL)
    with transaction.atomic():
        build = record_attempt(attempt, IsoBuild.Outcome.URL_MADE, "made as a URL", iso_size=size, boot=boot)
        record = IsoMedia.objects.create(
            token_hash=token_hash(token),
            user=build.user,
            username=build.username,
            build=build,
            expires_at=expires,
            iso_name=iso_name,
            fqdn=build.fqdn,
            osversion_dir=build.osversion_dir,
            source_path=pin.source,
            source_fingerprint=pin.fingerprint,
            volume_id=pin.volume_id,
            layout_time=pin.layout_time,
            layout_digest=pin.digest,
            files={name: base64.b64encode(data).decode("ascii") for name, data in files.items()},
            size=size,
            sha256=sha256,
        )
        detail = f"made as a URL: ISO URL {record.pk}, expires {expires.isoformat(timespec='seconds')}"
        IsoBuild.objects.filter(pk=build.pk).update(detail=detail)
        build.detail = detail
    logger.info("ISO URL %s made for build %s, expires %s", record.pk, build.pk, expires.isoformat())
    return MadeUrl(record, base + media_path(token, iso_name))


STREAM_RULE = "stream must be yes or no"
SUCCESS_TEXT = "Generate ISO was successful."


def stream_choice(body: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether a ``POST isos`` body asks for a URL (``"stream": "no"``), and its refusal if
    ``stream`` is neither yes nor no. The key matches case-insensitively, the last
    duplicate wins, blank or absent means yes (docs/api.md)."""
    value: Any = None
    for key, item in body.items():
        if str(key).lower() == "stream":
            value = item
    if is_blank(value):
        return False, []
    if isinstance(value, str) and value.strip() in ("yes", "no"):
        return value.strip() == "no", []
    return False, [STREAM_RULE]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@sensitive_variables("iso_request")
def media_url_response(attempt: Attempt, iso_request: IsoRequest, base: str) -> Response:
    """The API's answer to ``"stream": "no"``: the URL and what a BMC's operator checks."""
    made = make_url(attempt, iso_request, iso_filename(iso_request), base)
    record = made.record
    body = {
        **alerts_body(SUCCESS_TEXT, level="success"),
        "response": {
            "isoName": record.iso_name,
            "isoURL": made.url,
            "size": record.size,
            "sha256": record.sha256,
            "expires": rfc3339(record.expires_at),
        },
    }
    return Response(body, status=200)
