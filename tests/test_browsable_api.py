"""DRF's browsable API in a browser: GET osversions, and POST isos through its HTML form.

A browser sends ``Accept: text/html`` and posts the form url-encoded (the API never reads
multipart) with Django's CSRF token; a valid form must answer with the ISO as a download,
not a page of text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client

from isos.models import IsoBuild
from tests.support.api import static_request

URL = "/api/5.0/isos"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SECRET = "browsable secret"
FORM = "application/x-www-form-urlencoded"


def post_form(client: Client, fields: dict[str, Any]) -> Any:
    """What a browser sends for the form: its fields, url-encoded."""
    return client.post(URL, urlencode(fields), content_type=FORM)


@pytest.fixture
def browser(make_user: Callable[..., User], kickstart_location: Path) -> Client:
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT=HTML)
    client.force_login(make_user("op", "operations"))
    return client


def form_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


@pytest.mark.django_db
def test_osversions_in_the_browser(browser: Client) -> None:
    response = browser.get("/api/5.0/osversions")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "CentOS 7.2" in page and "rocky/8" in page
    assert "ISO portal API" in page and 'action="/logout/"' in page


@pytest.mark.django_db
def test_isos_shows_its_html_form_without_the_raw_data_tab(browser: Client) -> None:
    response = browser.get(URL)
    assert response.status_code == 200  # a page for its form, not a 405 block
    page = response.content.decode()
    assert "form-page" in page.split("<body", 1)[1].split(">", 1)[0]  # no request/response block
    assert "<h1>Generate ISO</h1>" in page and "Generate Iso" not in page
    assert "Fill in the form and post it: the answer is the host&#x27;s installer ISO" in page
    for name in ["osversionDir", "hostName", "domainName", "rootPass", "dhcp", "interfaceMtu"]:
        assert f'name="{name}"' in page, name
    assert f'enctype="{FORM}"' in page and "multipart/form-data" not in page
    # The raw data form posts through XMLHttpRequest, which cannot hand over a download.
    assert 'name="_content"' not in page
    assert 'class="html-form-only form-page"' in page and "portal/browsable_api.css" in page
    assert IsoBuild.objects.count() == 0


@pytest.mark.django_db
def test_isos_form_offers_this_users_versions_yes_or_no_and_mtu_1500(row_granted_client: Client) -> None:
    page = row_granted_client.get(URL, HTTP_ACCEPT=HTML).content.decode()
    select = page.split('<select class="form-control" name="osversionDir">')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]*)"', select)
    assert options == ["", "rocky/8"]  # only the row granted; no "--------"
    assert "Rocky Linux 8" in select and "centos72" not in select
    dhcp = page.split('<select class="form-control" name="dhcp">')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]*)"', dhcp) == ["no", "yes"]
    assert re.search(r'name="interfaceMtu"[^>]*value="1500"', page) or re.search(
        r'value="1500"[^>]*name="interfaceMtu"', page
    )


@pytest.mark.django_db
def test_a_refused_form_keeps_its_selects_and_messages(browser: Client) -> None:
    token = form_token(browser.get(URL).content.decode())
    body = static_request(rootPass=SECRET, osversionDir="centos99", dhcp="yes")
    response = post_form(browser, {**body, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = response.content.decode()
    select = page.split('name="osversionDir">')[1].split("</div>")[0]
    assert "invalid OS version directory: &quot;centos99&quot;" in select
    dhcp = page.split('<select class="form-control" name="dhcp">')[1].split("</select>")[0]
    assert re.search(r'<option value="yes"\s+selected', dhcp)


@pytest.mark.django_db
def test_get_isos_is_still_405_for_json_clients(browser: Client) -> None:
    response = browser.get(URL, HTTP_ACCEPT="application/json")
    assert response.status_code == 405
    assert response.json()["alerts"][0]["text"].startswith('Method "GET" not allowed')
    assert "GET" not in response["Allow"]


@pytest.mark.django_db
def test_titles_and_descriptions_read_as_text(browser: Client) -> None:
    page = browser.get("/api/5.0/osversions").content.decode()
    assert "<h1>OS versions</h1>" in page and "Os Versions" not in page
    assert "The ISO sources you may generate from: display name to directory." in page
    assert "``" not in page and "&lt;display name&gt;" not in page


@pytest.mark.django_db
def test_html_form_post_downloads_the_iso(browser: Client) -> None:
    token = form_token(browser.get(URL).content.decode())
    response = post_form(browser, {**static_request(rootPass=SECRET), "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/download"
    assert response["Content-Disposition"] == 'attachment; filename="test.quest-centos72.iso"'
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data) > 0
    assert IsoBuild.objects.get().outcome == "built"


@pytest.mark.django_db
def test_html_form_errors_show_at_their_fields(browser: Client) -> None:
    token = form_token(browser.get(URL).content.decode())
    body = static_request(rootPass=SECRET, hostName="bad_host", interfaceMtu="70000")
    response = post_form(browser, {**body, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    host_group = page[page.index('name="hostName"') - 600 : page.index('name="hostName"') + 600]
    assert "hostName must be a valid host name" in host_group
    mtu_group = page[page.index('name="interfaceMtu"') - 600 : page.index('name="interfaceMtu"') + 600]
    assert "interfaceMtu must be between 1280 and 9216" in mtu_group
    assert 'value="bad_host"' in page  # kept
    assert SECRET not in page  # never drawn again


@pytest.mark.django_db
def test_the_form_needs_its_csrf_token(browser: Client) -> None:
    response = post_form(browser, static_request())
    assert response.status_code == 403
    assert "CSRF Failed" in response.content.decode()


@pytest.mark.django_db
def test_json_clients_see_no_change(browser: Client) -> None:
    """The serializer riding on a 400 for the browsable API leaves the JSON alert as it was."""
    response = browser.post(
        URL,
        static_request(hostName="bad_host"),
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "alerts": [
            {
                "text": "validating: hostName must be a valid host name (letters, digits and inner hyphens)",
                "level": "error",
            }
        ]
    }


@pytest.mark.django_db
def test_anonymous_browser_gets_a_login_link(kickstart_location: Path) -> None:
    response = Client(HTTP_ACCEPT=HTML).get("/api/5.0/osversions")
    assert response.status_code == 401
    assert 'href="/login/?next=/api/5.0/osversions"' in response.content.decode()


@pytest.mark.django_db
def test_read_only_browsing_isos_is_audited_once(
    make_user: Callable[..., User], kickstart_location: Path
) -> None:
    """The browsable API checks permissions again to draw its form: still one refusal on record."""
    client = Client(HTTP_ACCEPT=HTML)
    client.force_login(make_user("reader", "read-only"))
    response = post_form(client, static_request())
    assert response.status_code == 403
    assert IsoBuild.objects.filter(outcome="refused").count() == 1


def test_favicon_ico_answers(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/portal/favicon.svg"
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)
