"""A real browser on the real server: log in, be told what to fix as you type, download without
retyping a password, read the ISO back, do it again.

Playwright drives Debian's Chromium (``apt-get install chromium``; Playwright's own browser
download is not used) against the portal under gunicorn on loopback. It saves screenshots
of the pages it checks, ``generate.png`` and ``history.png``, in ``build/screenshots/``
(untracked: a test run never rewrites the checkout's files).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User

from isos.models import IsoBuild
from tests.support.api import PASSWORD, static_request
from tests.support.isoread import ks_script
from tests.support.processes import poll
from tests.support.serving import logged_in_session

# serialized_rollback: the flush between transactional tests would drop the migrated groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
ROOT_PASSWORD = "Browser test root pw"
T = TypeVar("T")


def outside_playwright(query: Callable[[], T]) -> T:
    """Run a database query in a thread of its own (Playwright's loop makes this one async)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(query).result()


def download_iso(page: Any, tmp_path: Path, name: str) -> tuple[str, Path]:
    """Submit the form and wait for the browser's download; (suggested file name, saved path)."""
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Generate and download").click()
    download = download_info.value
    assert download.failure() is None
    saved = tmp_path / name
    download.save_as(saved)
    return download.suggested_filename, saved


def open_history_when_settled(page: Any, url: str, expected_built: int) -> None:
    """The audit record closes a moment after the last byte: reload until it has."""

    def settled() -> bool:
        page.goto(url)
        return bool(page.locator(".badge.built").count() >= expected_built)

    poll(settled, wait=15)  # the test's assertions on the page say what is missing


def test_generate_iso_in_a_real_browser(
    operator: User, portal_server: str, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    checks: list[str] = []  # the bodies the page's script sent to POST isos/validate

    def record_check(request: Any) -> None:
        if "/isos/validate" in request.url:
            checks.append(request.post_data or "")

    page.on("request", record_check)

    # Anonymous: the form sends us to the login page, which brings us back.
    page.goto(f"{portal_server}/isos/generate/")
    expect(page).to_have_url(f"{portal_server}/login/?next=/isos/generate/")
    page.get_by_label("User name").fill(operator.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{portal_server}/isos/generate/")
    expect(page.locator(".account .user")).to_contain_text("Olivia Operator")

    # Fill the form with DHCP off; a full name in the host name is split at the first dot.
    page.get_by_label("OS version").select_option(label="CentOS 7.2")
    page.get_by_label("Host name").fill("edge1.cdn.example")
    page.get_by_label("Host name").press("Tab")
    expect(page.get_by_label("Domain name")).to_have_value("cdn.example")
    expect(page.get_by_label("Host name")).to_have_value("edge1")
    dhcp = page.get_by_role("switch", name="Use DHCP")
    expect(dhcp).not_to_be_checked()
    static = page.locator("#static-addresses")
    dhcp.check()
    expect(static).to_be_hidden()
    dhcp.uncheck()
    expect(static).to_be_visible()
    page.get_by_label("IPv4 address").fill("192.0.2.300")  # broken on purpose
    page.get_by_label("IPv4 netmask").fill("255.255.255.0")
    page.get_by_label("IPv4 gateway").fill("192.0.2.1")
    page.get_by_label("IPv6 address").fill("2001:db8::10/64")
    page.get_by_label("IPv6 gateway").fill("2001:db8::1")
    page.get_by_label("Interface name").fill("bond0")
    expect(page.locator("#id_interfaceName-live")).to_contain_text("LACP bond")
    page.get_by_label("Boot disk").fill("sda")
    page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
    page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
    page.get_by_role("button", name="Generate and download").click()

    # Checked before submitting, by the API's own rules (POST isos/validate): the message names
    # the field by its label, is tied to it, and nothing was submitted, so the passwords stay.
    address = page.get_by_label("IPv4 address")
    expect(page.locator("#id_ipAddress-error")).to_have_text("IPv4 address must be a valid IPv4 address")
    expect(address).to_have_attribute("aria-invalid", "true")
    expect(address).to_have_attribute("aria-describedby", "id_ipAddress-error id_ipAddress-hint")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary li")).to_have_count(1)
    expect(page.get_by_label("Root password", exact=True)).to_have_value(ROOT_PASSWORD)
    expect(page.get_by_label("Confirm root password")).to_have_value(ROOT_PASSWORD)
    assert outside_playwright(IsoBuild.objects.count) == 0  # a check is no attempt
    # Checked as typed, and never with a password in the body.
    assert checks and all(ROOT_PASSWORD not in body and "rootPass" not in body for body in checks)
    page.screenshot(path=str(SCREENSHOTS / "generate.png"), full_page=True)

    # Fixed as typed: the message and the summary go; the download starts without retyping a
    # password, and the page says so only once the download's answer arrived.
    address.fill("192.0.2.10")
    expect(page.locator("#id_ipAddress-error")).to_have_count(0)
    expect(page.locator("#error-summary")).to_have_count(0)
    expect(address).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#download-started")).to_be_hidden()
    filename, iso_path = download_iso(page, tmp_path, "first.iso")
    assert filename == "edge1.cdn.example-centos72.iso"
    started = page.locator("#download-started")
    expect(started).to_be_visible()
    expect(started).to_contain_text("edge1.cdn.example-centos72.iso")
    build = outside_playwright(IsoBuild.objects.get)
    expect(page.locator("#download-size")).to_have_text(re.compile(r"^\d+(\.\d)? (KB|MB)$"))
    expect(started.get_by_role("link", name="See it in History")).to_have_attribute(
        "href", f"/isos/history/?fqdn=edge1.cdn.example#build-{build.pk}"
    )
    page.screenshot(path=str(SCREENSHOTS / "download-started.png"))
    network_cfg = ks_script(iso_path).decode()
    assert 'IPADDR="192.0.2.10"' in network_cfg
    assert 'NETMASK="255.255.255.0"' in network_cfg and 'GATEWAY="192.0.2.1"' in network_cfg
    assert 'BOND_DEVICE="bond0"' in network_cfg and 'HOSTNAME="edge1.cdn.example"' in network_cfg
    assert 'IPV6ADDR="2001:db8::10/64"' in network_cfg and network_cfg.endswith('DHCP="no"')
    assert ks_script(iso_path, "disk.cfg") == b'boot_drives="sda"'
    assert build.iso_size == iso_path.stat().st_size

    # A refusal by the server itself (the form posted as without JavaScript): the page comes
    # back with its banner and field errors, which go once a fixed submit starts the download.
    address.fill("192.0.2.300")
    page.evaluate("document.getElementById('generate-form').submit()")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#id_ipAddress-error")).to_have_text("IPv4 address must be a valid IPv4 address")
    expect(page.get_by_label("Root password", exact=True)).to_have_value("")
    assert ROOT_PASSWORD not in page.content()
    page.get_by_label("IPv4 address").fill("192.0.2.10")
    page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
    page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
    download_iso(page, tmp_path, "again.iso")
    expect(page.locator("#download-started")).to_be_visible()
    expect(page.locator("#error-summary, .alert.error, .field-error, .has-error")).to_have_count(0)
    expect(page).not_to_have_title(re.compile("^Error"))

    # History: the builds and the server's refusal; "Generate again" opens the form prefilled.
    open_history_when_settled(page, f"{portal_server}/isos/history/", expected_built=2)
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".badge")).to_have_text("built")
    expect(rows.nth(1).locator(".badge")).to_have_text("refused")
    expect(rows.nth(2).locator(".badge")).to_have_text("built")
    rows.nth(0).get_by_role("link", name="Generate again").click()
    expect(page).to_have_url(f"{portal_server}/isos/generate/?" + page.url.split("?", 1)[1])
    expect(page.get_by_label("OS version")).to_have_value("centos72")
    expect(page.get_by_label("Host name")).to_have_value("edge1")
    expect(page.get_by_label("Domain name")).to_have_value("cdn.example")
    expect(page.get_by_label("IPv4 address")).to_have_value("192.0.2.10")
    expect(page.get_by_label("Interface name")).to_have_value("bond0")
    expect(page.get_by_label("Boot disk")).to_have_value("sda")
    expect(page.get_by_label("Root password", exact=True)).to_have_value("")

    # Again, for another host with DHCP on: the static fields are hidden and not used.
    page.get_by_label("Host name").fill("edge2")
    page.get_by_role("switch", name="Use DHCP").check()
    expect(page.locator("#static-addresses")).to_be_hidden()
    page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
    page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
    filename, iso_path = download_iso(page, tmp_path, "second.iso")
    assert filename == "edge2.cdn.example-centos72.iso"
    network_cfg = ks_script(iso_path).decode()
    assert 'IPADDR=""' in network_cfg and network_cfg.endswith('DHCP="yes"')

    open_history_when_settled(page, f"{portal_server}/isos/history/", expected_built=3)
    expect(page.locator("tbody tr")).to_have_count(4)
    page.screenshot(path=str(SCREENSHOTS / "history.png"), full_page=True)


def test_copy_from_a_previous_host_without_retyping_anything_but_the_password(
    operator: User, portal_server: str, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # An earlier build of edge7, made by a script with the same user.
    session = logged_in_session(portal_server, operator.username)
    earlier = static_request(
        hostName="edge7", domainName="pop1.cdn.example", ipAddress="192.0.2.70", ipNetmask="255.255.255.0",
        ipGateway="192.0.2.1", interfaceName="bond0", disk="nvme0n1", interfaceMtu=9000,
        mgmtIpAddress="10.0.0.7", mgmtIpNetmask="255.255.255.0", mgmtIpGateway="10.0.0.1",
        mgmtInterface="eth1",
    )  # fmt: skip
    assert session.post(f"{portal_server}/api/5.0/isos", json=earlier, timeout=60).status_code == 200

    page = browser_page
    page.goto(f"{portal_server}/login/?next=/isos/generate/")
    page.get_by_label("User name").fill(operator.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{portal_server}/isos/generate/")

    # A host nobody built is said at the box; the keyboard alone copies a known one.
    copy = page.get_by_role("combobox", name="Copy from a previous host")  # a search box with suggestions
    copy.fill("edge6.example")
    copy.press("Enter")
    expect(page.locator("#copy-from-hint")).to_have_text(
        "No earlier build of “edge6.example” that you may see."
    )
    expect(copy).to_have_attribute("aria-invalid", "true")
    copy.fill("EDGE7")  # suggestions as typed
    expect(page.locator("#previous-hosts option")).to_have_count(1)
    expect(page.locator("#previous-hosts option")).to_have_attribute("value", "edge7.pop1.cdn.example")
    copy.fill("edge7.pop1.cdn.example")
    copy.press("Enter")
    expect(page.locator("#copy-from-hint")).to_contain_text("Copied from edge7.pop1.cdn.example (CentOS 7.2")
    host_name = page.get_by_label("Host name")
    expect(host_name).to_be_focused()
    expect(host_name).to_have_value("edge7")
    expect(page.get_by_label("Domain name")).to_have_value("pop1.cdn.example")
    expect(page.get_by_label("OS version")).to_have_value("centos72")
    expect(page.get_by_label("IPv4 address")).to_have_value("192.0.2.70")
    expect(page.get_by_label("Interface MTU")).to_have_value("9000")
    expect(page.get_by_label("Boot disk")).to_have_value("nvme0n1")
    expect(page.locator("#id_mgmtInterface")).to_have_value("eth1")
    expect(page.locator("details.section")).to_have_attribute("open", "")
    expect(page.get_by_label("Root password", exact=True)).to_have_value("")
    page.screenshot(path=str(SCREENSHOTS / "copy-from-previous-host.png"), full_page=True)

    # A new name and the password: the ISO carries everything else from edge7.
    host_name.fill("edge8")
    page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
    page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
    filename, iso_path = download_iso(page, tmp_path, "copied.iso")
    assert filename == "edge8.pop1.cdn.example-centos72.iso"
    network_cfg = ks_script(iso_path).decode()
    assert 'IPADDR="192.0.2.70"' in network_cfg and 'MTU="9000"' in network_cfg
    assert 'HOSTNAME="edge8.pop1.cdn.example"' in network_cfg and 'BOND_DEVICE="bond0"' in network_cfg
    assert ks_script(iso_path, "mgmt_network.cfg").endswith(b'DEVICE="eth1"')
    assert ks_script(iso_path, "disk.cfg") == b'boot_drives="nvme0n1"'


def test_without_javascript_the_page_works_as_before(
    operator: User, portal_server: str, browser_page: Any, tmp_path: Path
) -> None:
    """No script: the server checks on submit, its messages at the fields in the page's words,
    and a valid submit is the download."""
    from playwright.sync_api import expect

    context = browser_page.context.browser.new_context(java_script_enabled=False, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{portal_server}/login/?next=/isos/generate/")
        page.get_by_label("User name").fill(operator.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{portal_server}/isos/generate/")
        page.get_by_label("OS version").select_option(label="CentOS 7.2")
        page.get_by_label("Host name").fill("edge5")
        page.get_by_label("Domain name").fill("cdn.example")
        page.get_by_label("IPv4 address").fill("192.0.2.500")
        page.get_by_label("IPv4 netmask").fill("255.255.255.0")
        page.get_by_label("IPv4 gateway").fill("192.0.2.1")
        page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
        page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
        page.get_by_role("button", name="Generate and download").click()
        expect(page.locator("#id_ipAddress-error")).to_have_text("IPv4 address must be a valid IPv4 address")
        expect(page.locator("#error-summary")).to_contain_text("Please fix 1 problem")
        page.get_by_label("IPv4 address").fill("192.0.2.50")
        page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
        page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
        filename, iso_path = download_iso(page, tmp_path, "no-script.iso")
        assert filename == "edge5.cdn.example-centos72.iso"
        assert 'IPADDR="192.0.2.50"' in ks_script(iso_path).decode()
    finally:
        context.close()


def test_get_a_url_for_virtual_media_then_revoke_it(
    operator: User, portal_server: str, browser_page: Any, tmp_path: Path
) -> None:
    """The button "Get a URL for virtual media": the URL, size, SHA-256, expiry and a copy
    button; the URL serves ranges with no session; the history lists it with its fetches,
    and revokes it."""
    import hashlib

    import requests
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{portal_server}/login/?next=/isos/generate/")
    page.get_by_label("User name").fill(operator.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{portal_server}/isos/generate/")
    page.get_by_label("OS version").select_option(label="CentOS 7.2")
    page.get_by_label("Host name").fill("bmc1.cdn.example")
    page.get_by_role("switch", name="Use DHCP").check()
    page.get_by_label("Boot disk").fill("sda")
    page.get_by_label("Root password", exact=True).fill(ROOT_PASSWORD)
    page.get_by_label("Confirm root password").fill(ROOT_PASSWORD)
    page.get_by_role("button", name="Get a URL for virtual media").click()

    panel = page.locator("#media-url")
    expect(panel).to_be_visible()
    url = page.locator("#media-url-value").input_value()
    assert re.fullmatch(
        rf"{re.escape(portal_server)}/isos/media/[A-Za-z0-9_-]{{43}}/bmc1\.cdn\.example-centos72\.iso", url
    )
    sha256 = page.locator("#media-sha256").inner_text()
    expect(page.locator("#media-expires")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    panel.get_by_role("button", name="Copy").click()
    expect(panel.get_by_role("button", name="Copied")).to_be_visible()
    assert ROOT_PASSWORD not in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "media-url.png"), full_page=True)

    whole = requests.get(url, timeout=60)  # no cookie: what a BMC does
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == sha256
    part = requests.get(url, headers={"Range": "bytes=32768-34815"}, timeout=60)
    assert part.status_code == 206 and part.content == whole.content[32768:34816]
    assert requests.get(f"{url}.sha256", timeout=30).text.startswith(sha256)

    def two_fetches_shown() -> bool:  # each is counted a moment after its last byte
        page.goto(f"{portal_server}/isos/history/")
        return bool(page.locator("#live-urls tbody tr .fetches").first.inner_text() == "2")

    assert poll(two_fetches_shown, wait=10)
    row = page.locator("#live-urls tbody tr").first
    expect(row).to_contain_text("bmc1.cdn.example-centos72.iso")
    page.screenshot(path=str(SCREENSHOTS / "history-live-urls.png"), full_page=True)
    row.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    expect(page.locator("#live-urls")).to_have_count(0)
    assert requests.get(url, timeout=30).status_code == 404
