"""The isos and osversions apps installed into another, minimal Django project
(tests/reusable_host: none of the portal's settings, pages or middleware) generate an ISO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.sources import make_source_tree

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_apps_generate_an_iso_in_a_minimal_project(tmp_path: Path) -> None:
    kickstart = tmp_path / "kickstart"
    make_source_tree(kickstart / "centos72")
    (kickstart / "osversions.json").write_text(json.dumps({"CentOS 7.2": "centos72"}))
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DJANGO")},
        "REUSABLE_HOST_DB": str(tmp_path / "host.sqlite3"),
        "REUSABLE_HOST_KICKSTART": str(kickstart),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.reusable_host.scenario"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["osversions"] == {"response": {"CentOS 7.2": "centos72"}}
    assert seen["status"] == 200
    assert seen["content_length"] == seen["iso_bytes"] > 100_000
    assert 'HOSTNAME="edge1.cdn.example"' in seen["network_cfg"]
    assert seen["refused"] == [
        400,
        {
            "alerts": [
                {
                    "text": "validating: ipAddress is required if DHCP is no, "
                    "ipNetmask is required if DHCP is no, ipGateway is required if DHCP is no",
                    "level": "error",
                }
            ]
        },
    ]
    assert seen["outcomes"] == ["built", "refused"]
