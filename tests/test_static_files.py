"""Static files come from the portal itself (whitenoise), with DEBUG off, and nothing from the net."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client

from portal.settings import BASE_DIR


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/portal/portal.css", "text/css"),
        ("/static/portal/generate.js", "text/javascript"),
        ("/static/admin/css/base.css", "text/css"),
        ("/static/rest_framework/css/bootstrap.min.css", "text/css"),
    ],
)
def test_served_with_debug_off(path: str, content_type: str) -> None:
    assert not settings.DEBUG
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)


@pytest.mark.django_db
def test_pages_need_no_external_network(
    client_for: Callable[..., Client], kickstart_location: object
) -> None:
    client = client_for("operations")
    for url in ["/", "/login/", "/isos/generate/", "/isos/history/"]:
        page = client.get(url).content.decode()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), url
    for path in (BASE_DIR / "portal" / "static" / "portal").iterdir():
        assert not re.search(r"https?://|@import|url\(", path.read_text().replace("http://www.w3.org", "")), (
            path
        )
