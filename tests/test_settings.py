"""The settings refuse mistakes: a bad environment value stops start-up naming the variable,
importing them writes no file, and the system checks catch what a host project sets itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import Error
from django.test import override_settings

import portal.settings
from isos.checks import RULES, check_iso_settings
from isos.passwords import HASH_SCHEMES, hash_root_password
from portal.checks import check_secret_key

SETTINGS_SOURCE = Path(portal.settings.__file__).read_text()
# Each kind of reader, a value it must refuse.
BAD_VALUES = {
    "env_bool": ["ture", "2", "enabled"],
    "env_int": ["8.5", "eight", "-1"],
    "env_float": ["soon", "nan", "-3"],
    "env_choice": ["sha256", "verbose"],
    "env_matching": ["VOLUME/ID", "A" * 17],
}


def variables_read_by(reader: str) -> list[str]:
    """Every variable the settings read with ``reader``, found in the settings' source."""
    return re.findall(rf'\b{reader}\(\s*"([A-Z_]+)"', SETTINGS_SOURCE)


CASES = [
    (name, value)
    for reader, values in BAD_VALUES.items()
    for name in variables_read_by(reader)
    for value in values
    # A choice is checked against its own words; every choice variable gets both.
]


def import_settings(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        env={**base, "PYTHONPATH": str(Path(portal.settings.BASE_DIR)), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_kind_of_variable_is_covered() -> None:
    assert len(variables_read_by("env_bool")) >= 6
    assert len(variables_read_by("env_int")) >= 7
    assert {"ROOT_PASSWORD_HASH", "LOG_LEVEL"} <= set(variables_read_by("env_choice"))
    assert variables_read_by("env_matching") == ["ISO_VOLUME_ID", "ISO_MEDIA_BASE_URL"]
    # Nothing read around the strict readers.
    assert "os.environ" not in SETTINGS_SOURCE


@pytest.mark.parametrize(("name", "value"), CASES)
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, value: str, tmp_path: Path) -> None:
    result = import_settings({name: value, "PORTAL_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    assert result.returncode != 0
    assert f"environment variable {name}={value!r}: must be" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("SESSION_COOKIE_SECURE", "Yes"), ("SESSION_COOKIE_SECURE", "off"), ("LOGIN_FAILURE_LIMIT", "3")],
)
def test_good_values_are_taken(name: str, value: str, tmp_path: Path) -> None:
    assert import_settings({name: value}, tmp_path).returncode == 0


def test_the_command_line_says_the_mistake_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(Path(portal.settings.BASE_DIR) / "manage.py"), "check"],
        env={**os.environ, "SESSION_COOKIE_SECURE": "ture"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "manage.py: environment variable SESSION_COOKIE_SECURE='ture': "
        "must be one of 1, true, yes, on, 0, false, no, off"
    ]


def test_importing_the_settings_writes_no_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = import_settings(
        {"PORTAL_DATA_DIR": str(data_dir), "XDG_DATA_HOME": str(tmp_path / "xdg")}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_without_a_secret_key_the_check_says_what_to_do(tmp_path: Path) -> None:
    base = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, str(Path(portal.settings.BASE_DIR) / "manage.py"), "check"],
        env={**base, "PORTAL_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "(portal.E001) SECRET_KEY is not set" in result.stderr
    assert "manage.py demo" in result.stderr


def test_the_demo_keeps_a_laptop_key_in_the_data_directory(tmp_path: Path) -> None:
    base = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DATABASE_URL"}}
    env = {**base, "PORTAL_DATA_DIR": str(tmp_path / "data")}
    manage = [sys.executable, str(Path(portal.settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "demo", "--no-serve"], env=env, check=True, capture_output=True, timeout=120)
    key_file = tmp_path / "data" / ".secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) >= 50
    # Later commands read it: the check is clean.
    result = subprocess.run([*manage, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_secret_key_is_quiet_with_a_key() -> None:
    assert check_secret_key() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROOT_PASSWORD_HASH", "sha256"),
        ("ISO_VOLUME_ID", "no/slashes"),
        ("ISO_VOLUME_ID", ""),
        ("ISO_LAYOUT_CACHE_ENTRIES", -1),
        ("ISO_LAYOUT_CACHE_MB", "64"),
        ("ISO_STREAM_CHUNK_KB", 1),
        ("ISO_STREAM_CHUNK_KB", True),
        ("ISO_HOOK_TIMEOUT", 0),
        ("ISO_MAX_STREAMS_PER_USER", -1),
        ("ISO_MAX_STREAMS", 0),
        ("ISO_NAMESERVERS", "192.0.2.53"),
    ],
)
def test_the_app_checks_settings_a_host_project_sets(name: str, value: object, tmp_path: Path) -> None:
    with override_settings(KICKSTART_FILES_LOCATION=tmp_path, **{name: value}):
        problems = check_iso_settings()
    assert [(type(p), p.msg) for p in problems] == [(Error, f"{name} = {value!r}")]
    assert problems[0].id.startswith("isos.E")


def test_the_app_checks_a_missing_setting(tmp_path: Path) -> None:
    from django.conf import settings

    with override_settings(KICKSTART_FILES_LOCATION=tmp_path):
        del settings.ISO_VOLUME_ID
        problems = check_iso_settings()
    assert [p.msg for p in problems] == ["ISO_VOLUME_ID is not set"]


def test_the_app_settings_as_the_portal_sets_them_pass() -> None:
    assert [p for p in check_iso_settings() if p.id.startswith("isos.E")] == []


def test_an_unreadable_kickstart_location_is_a_warning(tmp_path: Path) -> None:
    with override_settings(KICKSTART_FILES_LOCATION=tmp_path / "not-mounted"):
        assert [p.id for p in check_iso_settings()] == ["isos.W001"]
    assert set(RULES) >= {"ROOT_PASSWORD_HASH", "ISO_VOLUME_ID", "KICKSTART_FILES_LOCATION"}


@pytest.mark.parametrize(("scheme", "prefix", "salt_length"), [("sha512", "$6$", 16), ("md5", "$1$", 8)])
def test_root_password_salts_come_from_the_library(scheme: str, prefix: str, salt_length: int) -> None:
    hashes = {hash_root_password("secret", scheme) for _ in range(20)}
    assert len(hashes) == 20  # a new salt every time
    for crypted in hashes:
        assert crypted.startswith(prefix)
        assert "rounds=" not in crypted
        assert len(crypted.split("$")[2]) == salt_length
    assert scheme in HASH_SCHEMES
