"""ISO URLs for virtual media: ``"stream": "no"``, the URL's HTTP semantics (RFC 9110
ranges, If-Range, 416, HEAD), its life (expiry, revocation, a changed source: 410), and the
same bytes on every read, in-process and from a live gunicorn with 64 readers at once."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.http import http_date

from isos.engine.layout_cache import layout_cache
from isos.engine.stream import READER_WINDOW
from isos.fetch_counts import FetchCounts
from isos.media import files_of, token_hash
from isos.models import IsoBuild, IsoMedia
from portal import gunicorn_conf
from tests.support.api import ISOS_URL, make_iso_url, post_json, static_request
from tests.support.processes import poll
from tests.support.serving import logged_in_session, serve_portal
from tests.support.sources import settled

TOKEN_PATH = re.compile(r"^/isos/media/([A-Za-z0-9_-]{43})/test\.quest-centos72\.iso$")


def path_of(url: str) -> str:
    return urlsplit(url).path


def whole(client: Client, url: str, **headers: Any) -> Any:
    return Client().get(path_of(url), **headers)


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_stream_no_answers_a_url_and_audits_it(
    operations_client: Client, media_source: Path, fetch_counts: FetchCounts
) -> None:
    answer = make_iso_url(operations_client)
    assert set(answer) == {"isoName", "isoURL", "size", "sha256", "expires"}
    assert answer["isoName"] == "test.quest-centos72.iso"
    assert answer["isoURL"].startswith("http://testserver/isos/media/")
    token = TOKEN_PATH.match(path_of(answer["isoURL"])).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answer["expires"])

    record = IsoMedia.objects.get()
    assert record.token_hash == token_hash(token)
    stored = repr(IsoMedia.objects.values().get())
    assert token not in stored and "twelve" not in stored  # neither token nor clear password
    assert files_of(record)["ks_scripts/password.cfg"].startswith(b"rootpw --iscrypted $6$")
    assert timedelta(hours=23, minutes=59) < record.expires_at - record.created_at <= timedelta(hours=24)
    build = IsoBuild.objects.get()
    assert build.outcome == IsoBuild.Outcome.URL_MADE
    assert build.detail.startswith(f"made as a URL: ISO URL {record.pk}, expires ")
    assert build.iso_size == answer["size"] and "twelve" not in repr(build.request_settings)

    # The bytes: a session-less GET; the whole equals the ISO streamed from the same inputs.
    response = whole(operations_client, answer["isoURL"])
    data = body_of(response)
    assert response.status_code == 200 and len(data) == answer["size"] == int(response["Content-Length"])
    assert hashlib.sha256(data).hexdigest() == answer["sha256"]
    with layout_cache.build_iso(media_source, files_of(record)) as image:
        assert b"".join(image) == data
    # Laid out afresh (a new worker, a cache that forgot it): the same bytes, at the pinned time.
    layout_cache.clear()
    assert body_of(whole(operations_client, answer["isoURL"])) == data

    checksum = Client().get(path_of(answer["isoURL"]) + ".sha256")
    assert checksum.status_code == 200
    assert checksum.content.decode() == f"{answer['sha256']}  test.quest-centos72.iso\n"
    fetch_counts.flush()
    record.refresh_from_db()
    assert record.fetch_count == 2 and record.bytes_served == 2 * len(data)
    assert record.last_client == "127.0.0.1" and record.last_fetched_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stream", "status"),
    [("yes", 200), ("", 200), (None, 200), ("No", 400), ("nope", 400), (0, 400), (True, 400)],
)
def test_stream_must_be_yes_or_no(
    operations_client: Client, media_source: Path, stream: Any, status: int
) -> None:
    body = static_request()
    if stream is not None:
        body["STREAM"] = stream  # keys match case-insensitively
    response = post_json(operations_client, ISOS_URL, body)
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "application/download"
        response.close()
    else:
        assert response.json() == {"alerts": [{"level": "error", "text": "stream must be yes or no"}]}
        assert IsoBuild.objects.get().outcome == IsoBuild.Outcome.REFUSED
        assert not IsoMedia.objects.exists()


@pytest.mark.django_db
def test_a_bad_stream_is_listed_with_every_other_broken_rule(
    operations_client: Client, media_source: Path
) -> None:
    response = post_json(operations_client, ISOS_URL, static_request(stream="maybe", hostName=None))
    assert response.status_code == 400
    text = response.json()["alerts"][0]["text"]
    assert "hostName" in text and text.endswith("stream must be yes or no")


@pytest.mark.django_db
def test_every_range_form(operations_client: Client, media_source: Path) -> None:
    answer = make_iso_url(operations_client)
    path, size = path_of(answer["isoURL"]), answer["size"]
    data = body_of(Client().get(path))
    full_headers = Client().get(path)
    etag, last_modified = full_headers["ETag"], full_headers["Last-Modified"]
    assert etag == f'"{answer["sha256"]}"' and full_headers["Accept-Ranges"] == "bytes"

    cases = {
        "bytes=0-0": (0, 0),
        "bytes=100-4195": (100, 4195),
        f"bytes={size - 10}-": (size - 10, size - 1),
        "bytes=-2048": (size - 2048, size - 1),
        f"bytes=-{size * 2}": (0, size - 1),
        f"bytes=5000-{size * 3}": (5000, size - 1),
    }
    for header, (first, last) in cases.items():
        response = Client().get(path, HTTP_RANGE=header)
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(response["Content-Length"]) == last - first + 1
        assert body_of(response) == data[first : last + 1], header
        assert response["ETag"] == etag

    for header in (f"bytes={size}-", f"bytes={size}-{size + 5}", "bytes=-0"):
        response = Client().get(path, HTTP_RANGE=header)
        assert response.status_code == 416, header
        assert response["Content-Range"] == f"bytes */{size}"

    # Several ranges, another unit, a malformed or backwards one: the whole, 200.
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=abc", "bytes=9-3"):
        response = Client().get(path, HTTP_RANGE=header)
        assert response.status_code == 200, header
        assert "Content-Range" not in response
        assert body_of(response) == data

    # If-Range: the ETag or the exact date honour the range; anything else gets the whole.
    for validator, expected in (
        (etag, 206),
        (last_modified, 206),
        ('"other"', 200),
        (f"W/{etag}", 200),
        (http_date(time.time() - 86400 * 400), 200),
    ):
        response = Client().get(path, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=validator)
        assert response.status_code == expected, validator
        assert body_of(response) == (data[:10] if expected == 206 else data)

    # HEAD: the GET's headers, no body (a Range is GET's alone: RFC 9110 14.2).
    head = Client().head(path, HTTP_RANGE="bytes=0-9")
    assert head.status_code == 200 and body_of(head) == b""
    for name in ("Content-Length", "Accept-Ranges", "ETag", "Last-Modified", "Content-Type"):
        assert head[name] == full_headers[name], name
    assert Client().delete(path).status_code == 405


@pytest.mark.django_db
def test_expired_revoked_unknown_and_foreign(
    operations_client: Client, client_for: Any, media_source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = (make_iso_url(operations_client) for _ in range(3))
    record_ids = list(IsoMedia.objects.order_by("id").values_list("id", flat=True))
    size = first["size"]
    # Unknown tokens: a made-up one, one letter off, a bad name, the wrong path: the same 404.
    path = path_of(first["isoURL"])
    token = TOKEN_PATH.match(path).group(1)  # type: ignore[union-attr]
    for wrong in (
        path.replace(token, "A" * 43),
        path.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B")),
        path.replace(".iso", ".img"),
        path.replace(token, token[:20]),
        "/isos/media/",
    ):
        response = Client().get(wrong)
        assert (response.status_code, response.content) == (404, b"Not Found\n"), wrong

    # Expired.
    IsoMedia.objects.filter(pk=record_ids[0]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert (Client().get(path).status_code, Client().get(path).content) == (404, b"Not Found\n")
    assert Client().get(path + ".sha256").status_code == 404

    # Revoked: by another operator, no (404 as for any id); by its owner, yes; twice, no.
    stranger = client_for("operations", username="stranger")
    assert stranger.delete(f"/api/5.0/isos/urls/{record_ids[1]}").status_code == 404
    assert Client().get(path_of(second["isoURL"]), HTTP_RANGE="bytes=0-0").status_code == 206
    response = operations_client.delete(f"/api/4.1/isos/urls/{record_ids[1]}")
    assert response.status_code == 200
    assert response.json() == {"alerts": [{"level": "success", "text": "ISO URL revoked."}]}
    assert Client().get(path_of(second["isoURL"])).status_code == 404
    assert operations_client.delete(f"/api/5.0/isos/urls/{record_ids[1]}").status_code == 404
    assert operations_client.delete(f"/api/5.0/isos/urls/{record_ids[0]}").status_code == 404  # expired
    assert Client().delete(f"/api/5.0/isos/urls/{record_ids[2]}").status_code == 401
    # An admin may revoke anyone's.
    admin = client_for("admin", superuser=True, username="boss")
    assert admin.delete(f"/api/5.0/isos/urls/{record_ids[2]}").status_code == 200
    assert Client().get(path_of(third["isoURL"])).status_code == 404
    assert IsoMedia.objects.get(pk=record_ids[2]).revoked_by == "boss"
    assert size > 0
    # No log line holds a token, not even a 404's (Django's request log would write the path).
    assert caplog.records and token not in caplog.text
    assert "media=- method=GET status=404" in caplog.text


@pytest.mark.django_db
def test_a_changed_source_answers_410_never_other_bytes(
    operations_client: Client, media_source: Path
) -> None:
    answer = make_iso_url(operations_client)
    path = path_of(answer["isoURL"])
    assert Client().get(path, HTTP_RANGE="bytes=0-0").status_code == 206
    (media_source / "extra.txt").write_bytes(b"new file in the source")
    for headers in ({}, {"HTTP_RANGE": "bytes=0-99"}):
        response = Client().get(path, **headers)  # type: ignore[arg-type]
        assert response.status_code == 410
        assert response.content == b"the ISO source changed after this URL was made; generate a new one\n"
    settled(media_source)  # settled again, still another tree
    assert Client().head(path).status_code == 410
    # A new URL from the changed source works.
    fresh = make_iso_url(operations_client)
    assert Client().get(path_of(fresh["isoURL"]), HTTP_RANGE="bytes=0-0").status_code == 206


@pytest.mark.django_db
def test_the_url_honours_iso_media_base_url_and_ttl(
    operations_client: Client, media_source: Path, settings: Any
) -> None:
    settings.ISO_MEDIA_BASE_URL = "https://bmc-facing.example:8443"
    settings.ISO_MEDIA_TTL = 600
    answer = make_iso_url(operations_client)
    assert answer["isoURL"].startswith("https://bmc-facing.example:8443/isos/media/")
    record = IsoMedia.objects.get()
    assert timedelta(seconds=590) < record.expires_at - record.created_at <= timedelta(seconds=600)


# serialized_rollback: the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_64_readers_of_random_ranges_on_a_live_server(
    kickstart_location: Path, make_user: Any, tmp_path: Path
) -> None:
    """Real gunicorn (gevent workers, production settings), real HTTP: every range is the
    same slice of the whole, the log names the record, never the token."""
    settled(kickstart_location / "centos72")
    make_user("op", "operations")
    log = tmp_path / "gunicorn.log"
    with serve_portal(kickstart_location, log) as server:
        session = logged_in_session(server.url, "op")
        made = session.post(f"{server.url}/api/5.0/isos", json=static_request(stream="no"), timeout=60)
        assert made.status_code == 200, made.text
        answer = made.json()["response"]
        url = answer["isoURL"]
        assert url.startswith(server.url + "/isos/media/")
        data = requests.get(url, timeout=60).content  # no session, no cookie
        assert hashlib.sha256(data).hexdigest() == answer["sha256"] and len(data) == answer["size"]
        size = len(data)
        rng = random.Random(13)
        ranges = []
        for _ in range(256):
            first = rng.randrange(size)
            ranges.append((first, min(size - 1, first + rng.choice([0, 511, 2047, 65535, 300_000]))))

        def read(span: tuple[int, int]) -> tuple[int, bytes, str]:
            first, last = span
            response = requests.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=60)
            return response.status_code, response.content, response.headers.get("Content-Range", "")

        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(read, ranges))
        for (first, last), (status, body, content_range) in zip(ranges, results, strict=True):
            assert status == 206 and content_range == f"bytes {first}-{last}/{size}"
            assert body == data[first : last + 1]
        head = requests.head(url, timeout=30)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == size and not head.content
        # Each request is counted when the server closes it, a moment after its last byte.
        assert poll(lambda: IsoMedia.objects.get().fetch_count == 1 + 256 + 1, wait=10)
        record = IsoMedia.objects.get()
        assert record.bytes_served == size + sum(last - first + 1 for first, last in ranges)
    token = TOKEN_PATH.match(path_of(url)).group(1)  # type: ignore[union-attr]
    text = log.read_text()
    assert token not in text
    assert f"media={record.pk} method=GET status=206 range={ranges[0][0]}-{ranges[0][1]}" in text


@pytest.mark.django_db
def test_fetch_counts_are_written_together_exact_and_newest_last(
    operations_client: Client, media_source: Path, fetch_counts: FetchCounts
) -> None:
    """A worker writes a URL's counts once for many requests (one UPDATE per URL), the sums
    exact; a tally written late never takes the last client and time back."""
    first, second = make_iso_url(operations_client), make_iso_url(operations_client)
    first_id, second_id = IsoMedia.objects.order_by("id").values_list("id", flat=True)
    spans = [(0, 0), (1000, 66535), (4096, 4096 + 511)]
    with CaptureQueriesContext(connection) as requests_made:
        for start, end in spans * 3:
            response = Client().get(path_of(first["isoURL"]), HTTP_RANGE=f"bytes={start}-{end}")
            assert response.status_code == 206 and len(body_of(response)) == end - start + 1
        head = Client().head(path_of(first["isoURL"]))
        assert head.status_code == 200 and body_of(head) == b""  # read: counted at close
        assert body_of(Client().get(path_of(second["isoURL"]), HTTP_RANGE="bytes=-10")) != b""
    assert not [query for query in requests_made.captured_queries if "UPDATE" in query["sql"]]
    # Each record is read whole once; after that a request asks only whether its URL lives.
    assert len([query for query in requests_made.captured_queries if '"files"' in query["sql"]]) == 2
    assert IsoMedia.objects.filter(fetch_count=0, bytes_served=0, last_fetched_at=None).count() == 2

    with CaptureQueriesContext(connection) as flushed:
        fetch_counts.flush()
    assert len([query for query in flushed.captured_queries if "UPDATE" in query["sql"]]) == 2
    record = IsoMedia.objects.get(pk=first_id)
    assert record.fetch_count == 3 * len(spans) + 1
    assert record.bytes_served == 3 * sum(end - start + 1 for start, end in spans)
    assert record.last_client == "127.0.0.1" and record.last_fetched_at is not None
    assert IsoMedia.objects.filter(pk=second_id, fetch_count=1, bytes_served=10).exists()
    fetch_counts.flush()  # nothing left: nothing changes
    assert IsoMedia.objects.get(pk=first_id).fetch_count == 3 * len(spans) + 1

    # Another worker's tally, written after this one's, of requests before its last one.
    newest = record.last_fetched_at
    fetch_counts.add(first_id, 7, "192.0.2.7", newest - timedelta(seconds=5))
    fetch_counts.flush()
    record.refresh_from_db()
    assert (record.fetch_count, record.bytes_served) == (
        3 * len(spans) + 2,
        3 * sum(end - start + 1 for start, end in spans) + 7,
    )
    assert record.last_client == "127.0.0.1" and record.last_fetched_at == newest
    fetch_counts.add(first_id, 1, "192.0.2.8", newest + timedelta(seconds=5))
    fetch_counts.flush()
    record.refresh_from_db()
    assert record.last_client == "192.0.2.8" and record.last_fetched_at == newest + timedelta(seconds=5)


# serialized_rollback: the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fetch_counts_are_written_by_a_timer_and_at_worker_exit(
    operations_client: Client, media_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's timer writes the counts about ``every`` seconds after a request, with
    no request after it; gunicorn's worker_exit hook writes what is left at once."""
    counts = FetchCounts(every=0.2)
    monkeypatch.setattr("isos.fetch_counts.fetch_counts", counts)
    path = path_of(make_iso_url(operations_client)["isoURL"])
    for _ in range(5):
        assert body_of(Client().get(path, HTTP_RANGE="bytes=0-99")) != b""
    assert poll(lambda: IsoMedia.objects.get().fetch_count == 5, wait=10)
    assert IsoMedia.objects.get().bytes_served == 500

    counts.every = 3600  # a timer that would never come in time
    assert body_of(Client().get(path, HTTP_RANGE="bytes=0-9")) != b""
    gunicorn_conf.worker_exit(None, None)
    record = IsoMedia.objects.get()
    assert (record.fetch_count, record.bytes_served) == (6, 510)


@pytest.mark.django_db
def test_the_page_makes_a_url_the_history_lists_and_revokes_it(
    operations_client: Client, client_for: Any, media_source: Path, fetch_counts: FetchCounts
) -> None:
    secret = "S3cret root pass!"
    form = {k: str(v) for k, v in static_request(rootPass=secret).items() if k != "dhcp"}
    form.update(confirmRootPass=secret, action="url")
    page = operations_client.post("/isos/generate/", form)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    record = IsoMedia.objects.get()
    url = re.search(r'id="media-url-value" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    matched = TOKEN_PATH.match(path_of(url))
    assert matched is not None and token_hash(matched.group(1)) == record.token_hash
    assert (
        record.sha256 in html and f"({record.size} bytes)" in html and 'data-copy="media-url-value"' in html
    )
    assert secret not in html and IsoBuild.objects.get().outcome == IsoBuild.Outcome.URL_MADE
    fetched = Client().get(path_of(url), HTTP_RANGE="bytes=0-1023")
    assert fetched.status_code == 206 and len(body_of(fetched)) == 1024  # read: counted at close
    fetch_counts.flush()

    history = operations_client.get("/isos/history/").content.decode()
    assert 'id="live-urls"' in history and f'id="url-{record.pk}"' in history
    assert re.search(rf'id="url-{record.pk}".*?class="num fetches"[^>]*>1<', history, re.S)
    assert url not in history  # the token is shown once, when made
    # Someone else may not revoke it; its owner may, from the history.
    stranger = client_for("operations", username="stranger")
    refused = stranger.post(f"/isos/urls/{record.pk}/revoke/", follow=True)
    assert "No such live URL that you may revoke." in refused.content.decode()
    assert IsoMedia.objects.get().revoked_at is None
    answer = operations_client.post(f"/isos/urls/{record.pk}/revoke/", follow=True)
    assert "is revoked" in answer.content.decode()
    assert Client().get(path_of(url)).status_code == 404
    assert f'id="url-{record.pk}"' not in operations_client.get("/isos/history/").content.decode()


@pytest.mark.django_db
def test_the_admin_revokes_urls(operations_client: Client, client_for: Any, media_source: Path) -> None:
    url = make_iso_url(operations_client)["isoURL"]
    record = IsoMedia.objects.get()
    admin = client_for(superuser=True, username="root")
    User.objects.filter(username="root").update(is_staff=True)
    listing = admin.get("/admin/isos/isomedia/")
    assert listing.status_code == 200 and record.iso_name in listing.content.decode()
    change = admin.get(f"/admin/isos/isomedia/{record.pk}/change/").content.decode()
    assert record.token_hash not in change and "rootpw" not in change
    done = admin.post(
        "/admin/isos/isomedia/", {"action": "revoke_urls", "_selected_action": [record.pk]}, follow=True
    )
    assert "1 URL revoked." in done.content.decode()
    assert Client().get(path_of(url)).status_code == 404


def test_a_range_seeks_and_reads_in_small_chunks(tmp_path: Path) -> None:
    """IsoImage.iter_range finds its first piece in the plan: the files before the range are
    never opened (one swapped for another inode does not matter to a later range, and fails
    a range over it); its chunks start at the range's length up to the chunk size, never pass
    it, and drop to 64 KiB for a slow reader."""
    from isos.engine import StreamError, make_layout_template
    from isos.engine.plan import FileData
    from tests.support.sources import make_source_tree, pseudo_random_bytes

    source = make_source_tree(tmp_path / "src", files={"zz/late.bin": pseudo_random_bytes("late", 3 << 20)})
    extras = {"ks_scripts/network.cfg": b'DHCP="yes"'}
    template = make_layout_template(source, list(extras))
    with template.instantiate(extras, chunk_size=512 << 10) as image:
        data = b"".join(image)
    disk_files = sorted(
        (piece for piece in template.plan if isinstance(piece, FileData) and piece.path is not None),
        key=lambda piece: piece.offset,
    )
    first, late = disk_files[0], next(piece for piece in disk_files if piece.rel == "zz/late.bin")
    assert first.offset < late.offset
    # The first file laid out is replaced by another inode of the same size.
    path = source / first.rel
    replacement = path.with_name(path.name + ".new")
    replacement.write_bytes(path.read_bytes())
    os.replace(replacement, path)

    with template.instantiate(extras, chunk_size=512 << 10) as image:
        chunks = list(image.iter_range(late.offset + 1000, late.length - 2000))
        assert b"".join(chunks) == data[late.offset + 1000 : late.offset + late.length - 1000]
        assert len(chunks[0]) == 512 << 10 and max(map(len, chunks)) <= 512 << 10
        assert [len(chunk) for chunk in image.iter_range(late.offset, 100_000)] == [100_000]
        slow = image.iter_range(late.offset, late.length)
        sizes = []
        for chunk in itertools.islice(slow, 3):
            sizes.append(len(chunk))
            time.sleep(READER_WINDOW * 1.2)  # a reader far below SLOW_READER
        slow.close()  # type: ignore[attr-defined]
        assert sizes == [512 << 10, 64 << 10, 64 << 10]
        with pytest.raises(StreamError, match="not the file laid out"):
            b"".join(image.iter_range(first.offset, 10))


@pytest.mark.django_db
def test_a_source_built_by_its_generate_hook_cannot_be_a_url(
    operations_client: Client, media_source: Path
) -> None:
    hook = media_source / "generate"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    response = post_json(operations_client, ISOS_URL, static_request(stream="no"))
    assert response.status_code == 400
    assert response.json()["alerts"][0]["text"].startswith(
        "this OS version's ISO is made by its generate hook"
    )
    assert IsoBuild.objects.get().outcome == IsoBuild.Outcome.REFUSED and not IsoMedia.objects.exists()


@pytest.mark.django_db
def test_scripts_revoke_without_a_csrf_token_other_sites_never(
    operations_client: Client, operator: User, media_source: Path
) -> None:
    make_iso_url(operations_client)
    make_iso_url(operations_client)
    first, second = IsoMedia.objects.order_by("id").values_list("id", flat=True)
    IsoMedia.objects.update(user=operator)
    script = Client(enforce_csrf_checks=True)
    script.force_login(operator)
    forged = script.delete(f"/api/5.0/isos/urls/{first}", HTTP_ORIGIN="https://evil.example")
    assert forged.status_code == 403 and IsoMedia.objects.get(pk=first).revoked_at is None
    assert script.delete(f"/api/5.0/isos/urls/{second}").status_code == 200  # no body, no token
