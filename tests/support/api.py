"""Talking to the API the way Traffic Ops clients do, through Django's test client.

``static_request`` is docs/api.md's example request (static addressing) and ``EXPECTED_NETWORK_CFG``
the network.cfg the portal must write for it (with the test settings' name servers).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

# The password of every user the tests make (conftest's make_user).
PASSWORD = "correct horse battery staple"
ISOS_URL = "/api/5.0/isos"

EXPECTED_NETWORK_CFG = (
    b'IPADDR="1.3.3.7"\nNETMASK="255.255.255.255"\nGATEWAY="8.0.0.8"\nDEVICE="eth0"\nMTU="1500"\n'
    b'NAMESERVER="8.8.8.8,8.8.4.4"\nHOSTNAME="test.quest"\nNETWORKING_IPV6="yes"\n'
    b'IPV6ADDR="1::3:3:7"\nIPV6_DEFAULTGW="8::8"\nDHCP="no"'
)


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class FormClient(Client):
    """Django's test client posting a dict as browsers post the portal's forms: url-encoded.

    (Django's client posts a dict as multipart, which the portal's pages refuse with 415;
    docs/api.md, "Request bodies".) Any other body or content type goes as given.
    """

    def post(  # type: ignore[override]
        self, path: str, data: Any = None, content_type: str = FORM_CONTENT_TYPE, *args: Any, **extra: Any
    ) -> Any:
        if content_type == FORM_CONTENT_TYPE and (data is None or isinstance(data, dict)):
            data = urlencode(data or {}, doseq=True)
        return super().post(path, data, content_type, *args, **extra)


def post_json(client: Client, path: str, body: Any, **extra: Any) -> Any:
    """POST a JSON body the way Traffic Ops clients do (no CSRF token)."""
    return client.post(path, data=json.dumps(body), content_type="application/json", **extra)


def make_iso_url(client: Client, **overrides: Any) -> dict[str, Any]:
    """``POST isos`` with ``"stream": "no"`` for the example request (with overrides): the
    answer's ``response`` (isoName, isoURL, size, sha256, expires), checked a success."""
    response = post_json(client, ISOS_URL, static_request(stream="no", **overrides))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["alerts"] == [{"level": "success", "text": "Generate ISO was successful."}]
    return dict(body["response"])


def static_request(**overrides: Any) -> dict[str, Any]:
    """The docs/api.md example request (static addressing), with overrides (None removes a field)."""
    body: dict[str, Any] = {
        "osversionDir": "centos72",
        "hostName": "test",
        "domainName": "quest",
        "rootPass": "twelve",
        "dhcp": "no",
        "ipAddress": "1.3.3.7",
        "ipNetmask": "255.255.255.255",
        "ipGateway": "8.0.0.8",
        "ip6Address": "1::3:3:7",
        "ip6Gateway": "8::8",
        "interfaceMtu": 1500,
        "interfaceName": "eth0",
        "disk": "sda",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def download(client: Client, body: dict[str, Any]) -> tuple[Any, bytes]:
    """POST ``body`` to the isos endpoint, expect 200, and read the whole streamed ISO."""
    response = post_json(client, ISOS_URL, body)
    assert response.status_code == 200, response.content[:300] if not response.streaming else ""
    return response, b"".join(response.streaming_content)


def close_response(response: Any) -> None:
    """Close a streamed response early, as a WSGI server does when a client goes away.

    The test client wraps the stream in a generator that closes the response with
    request_finished's connection-closing handler detached (closing the response directly
    would close the test's database connection); closing that generator does it its way.
    """
    response._iterator.close()


# manage.py generate_iso's options for a static-addressing host, but --user and the password.
STATIC_COMMAND_OPTIONS = [
    "--osversion-dir=centos72",
    "--host-name=test",
    "--domain-name=quest",
    "--dhcp=no",
    "--ip-address=1.3.3.7",
    "--ip-netmask=255.255.255.255",
    "--ip-gateway=8.0.0.8",
    "--ip6-address=1::3:3:7",
    "--ip6-gateway=8::8",
    "--interface-mtu=1500",
    "--interface-name=eth0",
    "--disk=sda",
]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The isos.requests lines a test captured, parsed back into their key=value pairs
    (each value bare, or a JSON string: docs/operations.md, "Request log")."""
    lines = []
    for record in caplog.records:
        if record.name == "isos.requests":
            pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', record.getMessage())
            lines.append({key: json.loads(value) if value.startswith('"') else value for key, value in pairs})
    return lines
