"""The OpenAPI description (GET /api/schema/) and its docs page (GET /api/docs/): docs/api.md's routes."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import resolve
from openapi_spec_validator import validate

from isos.serializers import FIELD_ATTRIBUTES, REQUIRED_FIELDS, IsoRequestSerializer
from portal.urls import API_VERSIONS

pytestmark = pytest.mark.django_db

# docs/api.md: each route, its method, and the statuses it answers with.
# Every POST may also be refused for its body's size (413) or type (415).
ROUTES = {
    ("user/login", "post"): {"200", "400", "401", "413", "415", "429"},
    ("user/logout", "post"): {"200", "401", "413", "415"},
    ("osversions", "get"): {"200", "401", "403", "500"},
    ("isos", "post"): {"200", "400", "401", "403", "413", "415", "429", "500", "503"},
    ("isos/validate", "post"): {"200", "400", "401", "403", "413", "415", "500"},
    ("isos/urls/{media_id}", "delete"): {"200", "401", "404"},
    ("isos/urls/{media_id}/mount", "post"): {"200", "400", "401", "403", "404", "413", "415", "502"},
}


def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    result: dict[str, Any] = response.json()
    return result


def test_schema_is_served_as_yaml_and_json_without_a_session(client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    as_yaml = yaml.safe_load(response.content)
    assert as_yaml == schema(client)
    assert as_yaml["openapi"].startswith("3.")


def test_schema_validates_as_openapi_3(client: Client) -> None:
    validate(schema(client))


def test_schema_generation_has_no_warnings() -> None:
    # What .ci/run runs: any warning of drf-spectacular fails.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stderr=StringIO())


def test_every_route_with_its_method_and_statuses(client: Client) -> None:
    paths = schema(client)["paths"]
    assert set(paths) == {f"/api/{{version}}/{route}" for route, _ in ROUTES}
    for (route, method), statuses in ROUTES.items():
        item = paths[f"/api/{{version}}/{route}"]
        assert set(item) - {"parameters"} == {method}, route
        operation = item[method]
        # Every route may answer 404 for a version or format it does not know.
        assert set(operation["responses"]) == statuses | {"404"}, route
        version = next(p for p in operation["parameters"] if p["name"] == "version")
        assert version["in"] == "path" and version["required"] is True
        assert version["schema"]["enum"] == list(API_VERSIONS)
        for status, answer in operation["responses"].items():
            if (route, status) != ("isos", "200"):
                assert answer["content"]["application/json"]["schema"]["$ref"].startswith(
                    "#/components/schemas/"
                ), (route, status)


@pytest.mark.parametrize("version", API_VERSIONS)
@pytest.mark.parametrize("route", sorted({route for route, _ in ROUTES}))
def test_documented_paths_exist_under_every_version(version: str, route: str) -> None:
    kwargs = {"version": version, **({"media_id": "7"} if "{media_id}" in route else {})}
    route = route.replace("{media_id}", "7")
    assert resolve(f"/api/{version}/{route}").kwargs == kwargs
    assert resolve(f"/api/{version}/{route}/").kwargs == kwargs


def test_alert_shape(client: Client) -> None:
    components = schema(client)["components"]["schemas"]
    assert components["Alerts"]["properties"]["alerts"]["items"] == {"$ref": "#/components/schemas/Alert"}
    assert set(components["Alert"]["properties"]) == {"text", "level"}
    login = schema(client)["paths"]["/api/{version}/user/login"]["post"]
    examples = login["responses"]["401"]["content"]["application/json"]["examples"]
    assert [e["value"] for e in examples.values()] == [
        {"alerts": [{"text": "Invalid username or password.", "level": "error"}]}
    ]


def test_login_request_and_no_session_needed(client: Client) -> None:
    document = schema(client)
    login = document["paths"]["/api/{version}/user/login"]["post"]
    assert "security" not in login
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"u", "p"} and set(body["required"]) == {"u", "p"}
    logout = document["paths"]["/api/{version}/user/logout"]["post"]
    assert logout["security"] == [{"sessionCookie": []}]
    assert document["components"]["securitySchemes"]["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "mojolicious",
    }


def test_osversions_response(client: Client) -> None:
    document = schema(client)
    ok = document["paths"]["/api/{version}/osversions"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"]
    shape = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert shape["properties"]["response"]["type"] == "object"
    assert shape["properties"]["response"]["additionalProperties"] == {"type": "string"}


def test_isos_request_lists_all_17_fields_and_stream(client: Client) -> None:
    document = schema(client)
    operation = document["paths"]["/api/{version}/isos"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert len(body["properties"]) == 17 + 1
    assert list(body["properties"]) == [*FIELD_ATTRIBUTES, "stream"]
    assert list(body["properties"])[:17] == list(IsoRequestSerializer().fields)
    assert "a URL for virtual media" in str(body["properties"]["stream"])
    assert body["required"] == REQUIRED_FIELDS
    assert body["properties"]["rootPass"]["writeOnly"] is True
    assert {"type": "boolean"} in body["properties"]["dhcp"]["oneOf"]
    mtu_types = {s["type"] for s in body["properties"]["interfaceMtu"]["oneOf"]}
    assert mtu_types == {"integer", "string"}


def test_isos_answer_is_a_download_with_its_headers(client: Client) -> None:
    operation = schema(client)["paths"]["/api/{version}/isos"]["post"]
    ok = operation["responses"]["200"]
    assert ok["content"]["application/download"] == {"schema": {"type": "string", "format": "binary"}}
    # "stream": "no": the URL's JSON answer.
    url_answer = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert url_answer == "IsoUrl"
    assert set(ok["headers"]) == {"Content-Disposition", "Content-Length"}
    forbidden = operation["responses"]["403"]["content"]["application/json"]["examples"]
    assert [e["value"]["alerts"][0]["text"] for e in forbidden.values()] == [
        "missing required Permissions: ISO:GENERATE, ISO:READ"
    ]


def test_docs_page_renders_with_local_assets_only(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    # The start-up script (a file of its own, for the Content-Security-Policy) loads the description.
    script = client.get("/api/docs/?script=").content.decode()
    assert "swagger-ui" in page and '"/api/schema/"' in script
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE), "an external URL"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert len(assets) >= 3
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        served.close()
