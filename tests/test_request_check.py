"""POST isos/validate (the dry-run the Generate ISO page checks with as the operator types),
and the one-time cookie by which the page knows its download started.

The dry-run walks the rules of POST isos with the same session, CSRF rule, body limits and
permissions; it builds nothing and audits nothing.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.test.client import MULTIPART_CONTENT

from isos.dry_run import VALID_TEXT
from isos.models import IsoBuild
from tests.support.api import FormClient, close_response, post_json, static_request

pytestmark = pytest.mark.django_db

URL = "/api/5.0/isos/validate"
SECRET = "dry-run secret root pw"


def test_a_valid_request_is_valid_and_nothing_is_built_or_audited(
    operations_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = post_json(operations_client, URL, static_request(rootPass=SECRET))
    assert response.status_code == 200
    assert response.json() == {
        "alerts": [{"text": VALID_TEXT, "level": "success"}],
        "response": {"valid": True, "errors": {}, "fileName": "test.quest-centos72.iso"},
    }
    assert IsoBuild.objects.count() == 0
    assert "isos.requests" not in [record.name for record in caplog.records]
    assert SECRET not in caplog.text


@pytest.mark.parametrize("version", ["3.0", "4.0", "4.1", "5.0"])
def test_refusals_are_post_isos_own_with_each_fields_messages(
    operations_client: Client, version: str
) -> None:
    body = static_request(ipAddress="192.0.2.300", ipGateway="", interfaceMtu=99999, rootPass=None)
    checked = post_json(operations_client, f"/api/{version}/isos/validate", body)
    refused = post_json(operations_client, f"/api/{version}/isos", body)
    assert checked.status_code == refused.status_code == 400
    assert checked.json()["alerts"] == refused.json()["alerts"]
    assert checked.json()["response"] == {
        "valid": False,
        "errors": {
            "rootPass": ["rootPass is required"],
            "ipGateway": ["ipGateway is required if DHCP is no"],
            "ipAddress": ["ipAddress must be a valid IPv4 address"],
            "interfaceMtu": [
                "interfaceMtu must be between 1280 and 9216 (1500 is the norm, 9000 for jumbo frames)"
            ],
        },
    }
    # Only the real POST is an attempt.
    assert IsoBuild.objects.count() == 1


def test_an_os_version_not_offered_is_refused_as_post_isos_refuses_it(row_granted_client: Client) -> None:
    response = post_json(row_granted_client, URL, static_request(osversionDir="centos72"))
    assert response.status_code == 400
    assert response.json()["alerts"][0]["text"] == 'invalid OS version directory: "centos72"'
    assert response.json()["response"]["errors"] == {
        "osversionDir": ['invalid OS version directory: "centos72"']
    }
    assert post_json(row_granted_client, URL, static_request(osversionDir="rocky/8")).status_code == 200


def test_same_permissions_as_post_isos(client_for: Callable[..., Client], kickstart_location: Path) -> None:
    anonymous = post_json(Client(), URL, static_request())
    assert anonymous.status_code == 401
    read_only = post_json(client_for("read-only"), URL, static_request())
    assert read_only.status_code == 403
    assert read_only.json() == {
        "alerts": [{"text": "missing required Permissions: ISO:GENERATE", "level": "error"}]
    }
    assert post_json(client_for(), URL, static_request()).status_code == 403
    assert IsoBuild.objects.count() == 0  # a check is no attempt, refused or not


def test_same_csrf_rule_as_post_isos(make_user: Callable[..., User], kickstart_location: Path) -> None:
    client = FormClient(enforce_csrf_checks=True)
    client.force_login(make_user("careful", "operations"))
    # Scripts (JSON) need no token; a url-encoded form without one is refused; another site never.
    assert post_json(client, URL, static_request()).status_code == 200
    form = client.post(URL, static_request())
    assert form.status_code == 403 and "CSRF" in form.json()["alerts"][0]["text"]
    cross_site = post_json(client, URL, static_request(), HTTP_SEC_FETCH_SITE="cross-site")
    assert cross_site.status_code == 403
    other_origin = post_json(client, URL, static_request(), HTTP_ORIGIN="http://evil.example")
    assert other_origin.status_code == 403


def test_same_body_limits_as_post_isos(operations_client: Client, settings: Any) -> None:
    too_large = post_json(operations_client, URL, static_request(disk="a" * 70 * 1024))
    assert too_large.status_code == 413
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    deep = post_json(operations_client, URL, {**static_request(), "extra": nested})
    assert deep.status_code == 400 and deep.json()["alerts"][0]["text"].startswith("decoding: ")
    not_object = post_json(operations_client, URL, ["osversionDir"])
    assert not_object.json()["alerts"][0]["text"] == "decoding: expected a JSON object, got an array"
    multipart = operations_client.post(URL, {"hostName": "x"}, content_type=MULTIPART_CONTENT)
    assert multipart.status_code == 415


def test_broken_catalog_is_a_500_alert_without_details(
    operations_client: Client, kickstart_location: Path
) -> None:
    (kickstart_location / "osversions.json").write_text("{not json")
    response = post_json(operations_client, URL, static_request())
    assert response.status_code == 500
    assert response.json() == {"alerts": [{"text": "Internal Server Error", "level": "error"}]}
    assert str(kickstart_location) not in response.content.decode()


# --- the download's one-time cookie ----------------------------------------------------------

PAGE = "/isos/generate/"
TOKEN = "Zm9yLXRoZS10ZXN0LXRva2Vu"


def page_form(**overrides: str) -> dict[str, str]:
    data = {k: str(v) for k, v in static_request(rootPass=SECRET).items() if k != "dhcp"}
    return {**data, "confirmRootPass": SECRET, **overrides}


def test_the_download_sets_the_pages_token_cookie_with_the_iso_it_started(operations_client: Client) -> None:
    response = operations_client.post(PAGE, page_form(downloadToken=TOKEN))
    assert response.status_code == 200 and response["Content-Type"] == "application/download"
    cookie = response.cookies["isoDownload"]
    assert cookie["path"] == PAGE and cookie["samesite"] == "Strict" and cookie["max-age"] == 300
    assert not cookie["httponly"]  # the page's script reads it
    padded = cookie.value + "=" * (-len(cookie.value) % 4)
    payload = json.loads(base64.urlsafe_b64decode(padded))
    build = IsoBuild.objects.get()
    assert payload == {
        "token": TOKEN,
        "name": "test.quest-centos72.iso",
        "size": int(response["Content-Length"]),
        "build": build.pk,
        "fqdn": "test.quest",
    }
    assert build.iso_size == payload["size"] and "downloadToken" not in build.request_settings
    assert SECRET not in cookie.value
    close_response(response)


@pytest.mark.parametrize("token", ["", "short", "has spaces in it and more", "x" * 65, "a;b=c" * 4])
def test_no_cookie_without_a_well_formed_token(operations_client: Client, token: str) -> None:
    response = operations_client.post(PAGE, page_form(downloadToken=token))
    assert response.status_code == 200
    assert "isoDownload" not in response.cookies
    close_response(response)


def test_no_cookie_for_a_refusal(operations_client: Client) -> None:
    response = operations_client.post(PAGE, page_form(ipAddress="bad", downloadToken=TOKEN))
    assert response.status_code == 400
    assert "isoDownload" not in response.cookies
