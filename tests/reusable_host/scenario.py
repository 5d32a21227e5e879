"""Run in its own process with the minimal host's settings: migrate, check, log an
operator in, GET osversions and POST isos, and print what the test checks."""

import io
import json
import os

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.reusable_host.settings"
django.setup()

import pycdlib  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from isos.models import IsoBuild  # noqa: E402

call_command("migrate", verbosity=0)
call_command("check", fail_level="WARNING")
operator = User.objects.create_user("ops", password="ops-password-1")
operator.groups.add(Group.objects.get(name="operations"))
client = Client()
client.force_login(operator)
osversions = client.get("/tools/api/5.0/osversions").json()
body = {
    "osversionDir": "centos72",
    "hostName": "edge1",
    "domainName": "cdn.example",
    "rootPass": "changeme",
    "dhcp": "yes",
    "interfaceMtu": 1500,
}
response = client.post("/tools/api/5.0/isos", json.dumps(body), content_type="application/json")
iso_bytes = b"".join(response.streaming_content)  # type: ignore[attr-defined]
iso = pycdlib.PyCdlib()
iso.open_fp(io.BytesIO(iso_bytes))
network_cfg = io.BytesIO()
iso.get_file_from_iso_fp(network_cfg, rr_path="/ks_scripts/network.cfg")
refused = client.post(
    "/tools/api/5.0/isos", json.dumps({**body, "dhcp": "no"}), content_type="application/json"
)
print(
    json.dumps(
        {
            "osversions": osversions,
            "status": response.status_code,
            "content_length": int(response["Content-Length"]),
            "iso_bytes": len(iso_bytes),
            "network_cfg": network_cfg.getvalue().decode(),
            "refused": [refused.status_code, refused.json()],
            "outcomes": sorted(IsoBuild.objects.values_list("outcome", flat=True)),
        }
    )
)
