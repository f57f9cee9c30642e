"""The web UI in a real browser: Debian's Chromium driven by Playwright against a live `agora serve`, with
axe-core checking every page and screenshots of each at 1280 and 360 px (var/screenshots/).

One server and one seeded SQLite market serve the whole module (the page tests in test_signin.py and
test_storefront.py cover PostgreSQL). Deselect with `-m "not browser"`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agora import clock, config, migrate
from agora.db import open_database
from tests.live import live_server
from tests.web.market import BUYER, EVIL_TITLE, SELLER, seed

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (1280, 360)

playwright_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (make browser installs it)", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
        env.setenv("AGORA_VAR_DIR", str(root / "var"))
        config.reset_settings()
        db = open_database(f"sqlite:///{root / 'agora.db'}")
        migrate.upgrade(db)
        offer = seed(db)
        config.reset_settings()
        with live_server(db) as url:
            yield {"url": url, "offer": offer}
        db.dispose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    csp = [e for e in errors if "Content Security Policy" in e]
    assert not csp, f"the page broke its own CSP: {csp}"


AXE = Axe()


def check(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation, at either width; a screenshot of each."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        results: Any = AXE.run(page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{name} at {width} px: " + "; ".join(bad)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} scrolls sideways at {width} px ({scroll} px wide)"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_anonymous_visitor_searches_and_opens_a_product(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    page.goto(url + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Find, try and buy software")
    check(page, "home")
    page.get_by_label("Search").fill("vault")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/search\?q=vault"))
    expect(page.get_by_role("link", name="Acme Vault Server")).to_be_visible()
    check(page, "search")
    page.get_by_role("link", name="Acme Vault Server").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Vault Server")
    expect(page.get_by_role("link", name="Subscribe")).to_have_attribute("href", "/products/acme-vault/subscribe")
    expect(page.get_by_role("heading", name="Software and infrastructure charges")).to_be_visible()
    check(page, "product")


def test_search_facets_pages_and_empty_results(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    page.goto(url + "/search")
    facets = page.get_by_role("complementary", name="Filters")
    facets.get_by_role("link", name=re.compile(r"^Server image")).click()
    expect(page.get_by_role("status")).to_contain_text("of 7 products")
    check(page, "search-filtered")
    page.goto(url + "/search?q=zzzznothing&kind=ami")
    expect(page.get_by_role("heading", name=re.compile("Nothing matches"))).to_be_visible()
    expect(page.get_by_role("link", name="Remove all filters")).to_be_visible()
    check(page, "search-empty")


def test_other_product_pages_pass(site: dict[str, str], page: Page) -> None:
    for code in ("acme-crm", "northwind-forecast", "acme-search-managed", "acme-analytics", "openfield-linux"):
        page.goto(f"{site['url']}/products/{code}")
        expect(page.get_by_role("link", name="Subscribe")).to_be_visible()
        check(page, f"product-{code}")


def test_a_buyer_signs_in_sees_the_offer_banner_and_signs_out(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    page.goto(url + "/login")
    check(page, "login")
    sign_in(page, url, *BUYER)
    expect(page).to_have_url(url + "/account")
    check(page, "account")
    page.goto(url + "/products/acme-vault")
    banner = page.get_by_role("region", name="Private offer")
    expect(banner).to_contain_text("You have a private offer")
    expect(banner.get_by_role("link")).to_have_attribute("href", f"/account/offers/{site['offer']}")
    check(page, "product-with-offer")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto(url + "/account")
    expect(page).to_have_url(re.compile(r"/login\?next=/account$"))


def test_a_wrong_password_is_refused_with_a_message(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], BUYER[0], "wrong-password")
    expect(page.get_by_role("alert")).to_contain_text("The e-mail address or password is not right")
    check(page, "login-refused")


def test_repeated_failures_are_slowed_down(site: dict[str, str], page: Page) -> None:
    start = clock.now()
    with clock.use_clock(clock.ManualClock(start)) as moved:
        assert isinstance(moved, clock.ManualClock)
        for _ in range(5):
            sign_in(page, site["url"], "it-procurement@globex.example", "nope-nope")
        sign_in(page, site["url"], "it-procurement@globex.example", "globex-pass-1")
        expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
        moved.advance(timedelta(seconds=31))
        sign_in(page, site["url"], "it-procurement@globex.example", "globex-pass-1")
        expect(page).to_have_url(site["url"] + "/account")


def test_another_role_gets_403(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], *SELLER)
    expect(page).to_have_url(site["url"] + "/seller")
    check(page, "seller")
    response = page.goto(site["url"] + "/account")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("open this page")
    check(page, "error-403")


def test_a_not_found_page(site: dict[str, str], page: Page) -> None:
    response = page.goto(site["url"] + "/products/no-such-product")
    assert response is not None and response.status == 404
    check(page, "error-404")


def test_a_listing_title_with_a_script_renders_as_text(site: dict[str, str], page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(site["url"] + "/products/evil-tool")
    expect(page.get_by_role("heading", level=1)).to_have_text(EVIL_TITLE)
    page.goto(site["url"] + "/search?q=evil")
    expect(page.get_by_role("link", name=EVIL_TITLE)).to_be_visible()
    assert dialogs == []
    check(page, "product-evil")


def test_a_form_posted_without_its_csrf_token_is_403(site: dict[str, str], page: Page) -> None:
    page.goto(site["url"] + "/login")
    page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    page.get_by_label("Email").fill(BUYER[0])
    page.get_by_label("Password").fill(BUYER[1])
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as posted:
        page.get_by_role("button", name="Sign in").click()
    assert posted.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("open this page")


def test_security_headers_are_present(site: dict[str, str], page: Page) -> None:
    for path in ("/", "/search", "/products/acme-vault", "/login", "/nope"):
        response = page.goto(site["url"] + path)
        assert response is not None
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"]
