"""``POST isos/urls/<id>/mount`` and the page's "Mount on a BMC", against a real emulator.

On a live portal (gunicorn) the emulator (sushy-emulator, fake driver) fetches the portal's
own ISO URL when inserting: the bytes it got are the URL's whole ISO. Refusals are clear
alerts (never a 500), only its owner or an admin may mount a URL, and the BMC's password
and the URL's token are in no response, audit record or server log line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.forms.models import model_to_dict
from django.test import Client

from isos.models import IsoMedia, RedfishMount
from tests.support import redfish as bmc
from tests.support.api import make_iso_url, post_json, static_request
from tests.support.serving import free_port, logged_in_session, serve_portal
from tests.support.sources import settled


def mount_path(media_id: int) -> str:
    return f"/api/5.0/isos/urls/{media_id}/mount"


def made_url(client: Client) -> tuple[IsoMedia, str]:
    url = make_iso_url(client)["isoURL"]
    return IsoMedia.objects.latest("id"), url


def audits_text() -> str:
    return json.dumps([model_to_dict(row) for row in RedfishMount.objects.all()], default=str)


# serialized_rollback: the flush between transactional tests would drop the migrated groups.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_mount_over_the_api_of_a_live_portal(
    transactional_db: Any, kickstart_location: Path, make_user: Any, tmp_path: Path
) -> None:
    settled(kickstart_location / "centos72")
    make_user("op", "operations")
    log = tmp_path / "gunicorn.log"
    with serve_portal(kickstart_location, log) as server, bmc.emulator(tmp_path / "bmc") as emulator:
        session = logged_in_session(server.url, "op")
        made = session.post(f"{server.url}/api/5.0/isos", json=static_request(stream="no"), timeout=60)
        assert made.status_code == 200, made.text
        answer = made.json()["response"]
        record = IsoMedia.objects.get()
        body = {
            "isoURL": answer["isoURL"],
            "bmc": emulator.address,
            "username": bmc.USERNAME,
            "password": bmc.PASSWORD,
            "insecure": True,
            "power": "on",
        }
        mounted = session.post(server.url + mount_path(record.pk), json=body, timeout=120)
        assert mounted.status_code == 200, mounted.text
        result = mounted.json()
        assert result["alerts"][0]["level"] == "success"
        assert result["response"]["mounted"] is True and result["response"]["failure"] is None
        assert [step["step"] for step in result["response"]["steps"]] == [
            "connect",
            "system",
            "virtual media",
            "eject",
            "insert",
            "boot override",
            "power",
        ]
        # The emulator fetched the portal's URL: the whole ISO, as a plain GET of it gives.
        fetched = [path for path in bmc.fetched_images(emulator) if path.name == answer["isoName"]]
        assert len(fetched) == 1
        data = fetched[0].read_bytes()
        assert len(data) == answer["size"] and hashlib.sha256(data).hexdigest() == answer["sha256"]
        assert data == requests.get(answer["isoURL"], timeout=60).content

        wrong = session.post(
            server.url + mount_path(record.pk), json={**body, "password": "nope"}, timeout=60
        )
        assert wrong.status_code == 502, wrong.text
        assert wrong.json()["response"]["failure"] == "bad credentials"
        assert "refused the username or password" in wrong.json()["alerts"][0]["text"]
        responses = mounted.text + wrong.text
    audits = list(RedfishMount.objects.order_by("id"))
    assert [(a.outcome, a.failure, a.username, a.media_id) for a in audits] == [
        ("mounted", "", "op", record.pk),
        ("failed", "bad credentials", "op", record.pk),
    ]
    assert audits[0].bmc == emulator.address and audits[0].bmc_username == bmc.USERNAME
    assert [step["status"] for step in audits[0].steps][-1] == "done"
    token = urlsplit(answer["isoURL"]).path.split("/")[-2]
    server_log = log.read_text()
    assert f"Redfish mount {audits[0].pk} by op: ISO URL {record.pk} on" in server_log
    for secret in (bmc.PASSWORD, token):
        assert secret not in server_log and secret not in audits_text() and secret not in responses


@pytest.mark.django_db
def test_mount_refusals_are_clear_alerts(
    operations_client: Client, client_for: Any, media_source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record, url = made_url(operations_client)
    good = {"isoURL": url, "bmc": "127.0.0.1:1", "username": "root", "password": "Pw-9q!x", "insecure": True}

    def post(client: Client, media_id: int, body: Any) -> Any:
        return post_json(client, mount_path(media_id), body)

    assert post(Client(), record.pk, good).status_code == 401
    unknown = post(operations_client, record.pk + 1000, good)
    assert unknown.status_code == 404 and unknown.json()["alerts"][0]["text"] == "no such ISO URL"
    stranger = post(client_for("operations", username="stranger"), record.pk, good)
    assert stranger.status_code == 404 and stranger.json() == unknown.json()

    empty = post(operations_client, record.pk, {"insecure": "yes", "power": "off"})
    assert empty.status_code == 400
    assert [alert["text"] for alert in empty.json()["alerts"]] == [
        "isoURL is required",
        "bmc is required",
        "username is required",
        "password is required",
        "insecure must be true or false",
        "power must be one of none, on, reset",
    ]
    foreign = post(
        operations_client, record.pk, {**good, "isoURL": url.replace(url.split("/")[-2], "A" * 43)}
    )
    assert foreign.status_code == 400 and foreign.json()["alerts"][0]["text"] == (
        "isoURL is not the URL made for this id"
    )
    clear = post(operations_client, record.pk, {**good, "bmc": "http://127.0.0.1:1", "insecure": False})
    assert clear.status_code == 400 and "sends the password in clear" in clear.json()["alerts"][0]["text"]
    assert post(operations_client, record.pk, [good]).status_code == 400  # not a JSON object

    # The BMC does not answer: 502, said plainly, audited; an admin may mount anyone's URL.
    admin = client_for("admin", username="boss")
    unreachable = post(admin, record.pk, {**good, "bmc": f"http://127.0.0.1:{free_port()}"})
    assert unreachable.status_code == 502, unreachable.content
    answer = unreachable.json()
    assert answer["response"]["failure"] == "unreachable"
    assert answer["response"]["steps"] == [
        {"step": "connect", "status": "failed", "detail": answer["alerts"][0]["text"]}
    ]
    audits = list(RedfishMount.objects.order_by("id"))
    assert [(a.username, a.outcome, a.failure) for a in audits] == [
        ("operations", "refused", ""),
        ("boss", "failed", "unreachable"),
    ]
    superuser = client_for(superuser=True, username="root-admin")
    User.objects.filter(username="root-admin").update(is_staff=True)
    listing = superuser.get("/admin/isos/redfishmount/")
    assert listing.status_code == 200 and "unreachable" in listing.content.decode()
    text = audits_text() + caplog.text + unreachable.content.decode() + listing.content.decode()
    assert good["password"] not in text and url.split("/")[-2] not in text


@pytest.mark.django_db
def test_the_page_offers_the_mount_form_and_shows_each_step(
    operations_client: Client, media_source: Path
) -> None:
    secret = "S3cret root pass!"
    form = {k: str(v) for k, v in static_request(rootPass=secret).items() if k != "dhcp"}
    form.update(confirmRootPass=secret, action="url")
    page = operations_client.post("/isos/generate/", form).content.decode()
    record = IsoMedia.objects.get()
    action = re.search(r'<form method="post" action="([^"]+)" class="mount-form"', page)
    assert action is not None and action.group(1) == f"/isos/urls/{record.pk}/mount/"
    url = re.search(r'name="isoURL" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    bmc_password = "Bmc-Pw-31!"
    fields = {"isoURL": url, "bmc": f"127.0.0.1:{free_port()}", "username": "root", "password": bmc_password}
    fields.update(insecure="on", power="reset")
    answer = operations_client.post(action.group(1), fields)
    assert answer.status_code == 502
    html = answer.content.decode()
    assert (
        'id="mount-steps"' in html and "cannot reach the BMC" in html and "connect</strong>: failed" in html
    )
    assert bmc_password not in html and url not in html
    refused = operations_client.post(action.group(1), {**fields, "insecure": "", "password": ""})
    assert refused.status_code == 400 and "password is required" in refused.content.decode()
    # From the history: a link to the form on its own page, where the URL is pasted.
    history = operations_client.get("/isos/history/").content.decode()
    assert f'href="{action.group(1)}"' in history
    alone = operations_client.get(action.group(1)).content.decode()
    assert 'name="isoURL" required' in alone and 'name="password"' in alone and url not in alone
    assert operations_client.put(action.group(1)).status_code == 405
