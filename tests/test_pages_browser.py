"""Every page at desktop and phone width in a real browser: no sideways scrolling, no console
error, no Content-Security-Policy violation.

Playwright drives Debian's Chromium against the portal under gunicorn, at 1280 px and 390 px:
the portal's pages (with a history holding a long refusal reason), the admin, Swagger UI and
the browsable API. Screenshots go to ``build/screenshots/`` (untracked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.support.api import PASSWORD, static_request
from tests.support.serving import logged_in_session

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
WIDTHS = (1280, 390)
PAGES = {
    "home": "/",
    "generate": "/isos/generate/",
    "history": "/isos/history/",
    "admin": "/admin/",
    "admin-builds": "/admin/isos/isobuild/",
    "admin-osversions": "/admin/osversions/osversion/",
    "admin-users": "/admin/auth/user/",
    "swagger": "/api/docs/",
    "api-osversions": "/api/5.0/osversions",
    "api-isos": "/api/5.0/isos",
}
# Chromium reports a violation as a console error; the DOM event says which directive.
REPORT_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', e => "
    "console.error('Content Security Policy: ' + e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture
def admin_user(make_user: Callable[..., User], kickstart_location: Path) -> User:
    user = make_user("root-admin", "admin", superuser=True)
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def history_with_a_long_reason(admin_user: User, portal_server: str) -> Iterator[str]:
    """A built ISO and a refusal whose reason lists every broken rule (hundreds of characters)."""
    session = logged_in_session(portal_server, admin_user.username)
    broken = static_request(
        hostName="edge_with_underscores", ipAddress="192.0.2.300", ipNetmask="255.0.255.0",
        ipGateway="nope", ip6Address="2001:db8::zz", interfaceMtu=99999, disk="/dev/sda",
        interfaceName="an-interface-name-far-too-long",
    )  # fmt: skip
    refused = session.post(f"{portal_server}/api/5.0/isos", json=broken, timeout=60)
    assert refused.status_code == 400 and len(refused.json()["alerts"][0]["text"]) > 400
    built = session.post(f"{portal_server}/api/5.0/isos", json=static_request(), timeout=60)
    assert built.status_code == 200 and built.content
    yield refused.json()["alerts"][0]["text"]


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def overflow(page: Any) -> tuple[int, int]:
    """The document's width and the window's: the first larger means sideways scrolling."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(widths[0]), int(widths[1])


def test_every_page_fits_phones_and_desktops_without_errors(
    admin_user: User, history_with_a_long_reason: str, portal_server: str, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"{page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.add_init_script(REPORT_VIOLATIONS)

    page.goto(f"{portal_server}/login/")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{portal_server}/login/")
        assert overflow(page)[0] <= width, ("login", width, overflow(page))
        page.screenshot(path=str(SCREENSHOTS / f"login-{width}.png"), full_page=True)
    log_in(page, portal_server, admin_user.username)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in PAGES.items():
            response = page.goto(f"{portal_server}{path}")
            assert response is not None and response.status in (200, 405), (path, response)
            page.wait_for_load_state("networkidle")
            scroll_width, inner_width = overflow(page)
            if scroll_width > inner_width:
                problems.append(f"{path} at {width} px is {scroll_width} px wide")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)

    # The history at phone width: rows are cards, and the long reason is cut short with a way
    # to read it whole.
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"{portal_server}/isos/history/?outcome=refused")
    reason = page.locator("td.detail details").first
    expect(reason.locator("summary")).to_be_visible()
    assert history_with_a_long_reason not in reason.locator("summary").inner_text()
    reason.locator("summary").click()
    expect(reason.locator(".whole")).to_have_text(history_with_a_long_reason)
    assert overflow(page)[0] <= 390
    page.screenshot(path=str(SCREENSHOTS / "history-reason-390.png"), full_page=True)
    # Filter labels on one line at desktop width: every label's top is the same.
    page.set_viewport_size({"width": 1280, "height": 900})
    tops = page.eval_on_selector_all(
        ".filters label", "labels => labels.map(l => l.getBoundingClientRect().top)"
    )
    assert len(set(tops)) == 1, tops

    assert problems == [], "\n".join(problems)
