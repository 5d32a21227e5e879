"""ISO URLs for virtual media: a token whose bytes are made on demand, the same for life.

A BMC mounts the URL and reads it by Range requests, with no session. The record
(:class:`~isos.models.IsoMedia`) keeps what the bytes depend on, never the token (only its
SHA-256) nor the clear password (docs/design.md, "Byte-identical for life"; docs/api.md,
"ISO URLs for virtual media").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import F, QuerySet
from django.utils import timezone

from isos.history import sees_every_build
from isos.models import IsoMedia

# 32 random bytes: 256 bits, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
TOKEN_LENGTH = 43
URL_PREFIX = "media/"  # the URL's path: /media/<token>/<iso name>


def new_token() -> str:
    """A fresh token for one URL (given out once, stored only as :func:`token_hash`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _live(records: QuerySet[IsoMedia]) -> QuerySet[IsoMedia]:
    return records.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def live_media_for_token(token: str) -> IsoMedia | None:
    """The live record (not expired, not revoked) of ``token``, or None, whatever the reason.

    The lookup is by the token's hash (an index); the stored hash is then compared again
    in constant time, so no timing tells how much of a guess was right.
    """
    if len(token) != TOKEN_LENGTH:
        return None
    wanted = token_hash(token)
    record = _live(IsoMedia.objects.filter(token_hash=wanted)).first()
    if record is None or not hmac.compare_digest(record.token_hash, wanted):
        return None
    return record


def token_from_url(url: str) -> str | None:
    """The token of an isoURL (any host: the path's ``media/<token>/<name>``), or None."""
    from urllib.parse import urlsplit

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
    """Revoke a URL: 404 from then on. False if it already was (or has expired)."""
    changed = IsoMedia.objects.filter(pk=record.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by[:150]
    )
    return bool(changed)


def count_fetch(record: IsoMedia, bytes_served: int, client: str | None) -> None:
    """One request served from this URL: its counts, last client and time (one row per URL)."""
    IsoMedia.objects.filter(pk=record.pk).update(
        fetch_count=F("fetch_count") + 1,
        bytes_served=F("bytes_served") + bytes_served,
        last_client=client,
        last_fetched_at=timezone.now(),
    )
