"""The buyer's side in a real browser, on the harness of test_browser.py (its Chromium, page, axe check and
screenshots): a buyer signs in, subscribes to a trial product, sees the trial's end date, opens a usage
chart, cancels, and downloads an invoice PDF; the contract price follows the quantities (htmx); every page
passes axe-core at 1280 and 360 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from agora import clock, config, migrate
from agora.db import open_database
from agora.manifest.loader import load_data
from tests.live import live_server
from tests.web import test_browser as harness
from tests.web.activity import seed_activity
from tests.web.market import BUYER, OTHER_BUYER, seed
from tests.web.test_browser import check, sign_in

pytestmark = pytest.mark.browser
chromium, page = harness.chromium, harness.page  # the harness's browser and page fixtures

from playwright.sync_api import Page, expect  # noqa: E402

ENTERPRISE = {
    "code": "acme-enterprise",
    "seller": "acme",
    "kind": "saas",
    "title": "Acme Enterprise Hub",
    "short_description": "Single sign-on and audit for large organisations.",
    "category": "business-applications",
    "regions": ["us-east-1"],
    "refund_policy": "Pro-rata refunds on request: billing@acme.example",
    "enterprise_only": True,
    "state": "public",
    "pricing": {
        "usage": {
            "category": "users",
            "dimensions": [{"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.5"}],
        }
    },
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("buyer-site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
        env.setenv("AGORA_VAR_DIR", str(root / "var"))
        config.reset_settings()
        db = open_database(f"sqlite:///{root / 'agora.db'}")
        migrate.upgrade(db)
        offer = seed(db)
        seed_activity(db)
        with db.unit_of_work() as session:
            load_data({"products": [ENTERPRISE]}, session)
        config.reset_settings()
        with live_server(db) as url:
            yield {"url": url, "offer": offer}
        db.dispose()


def test_a_buyer_subscribes_to_a_trial_sees_its_end_cancels_and_downloads_an_invoice(
    site: dict[str, str], page: Page
) -> None:
    url = site["url"]
    sign_in(page, url, *BUYER)
    expect(page).to_have_url(url + "/account")
    page.goto(url + "/products/northwind-ci")
    page.get_by_role("link", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Subscribe to Northwind CI Runner")
    ends = clock.now() + timedelta(days=7)
    expect(page.locator(".trial-note")).to_contain_text(f"{ends.day} {ends:%B %Y}")
    check(page, "subscribe-trial")

    page.get_by_role("button", name="Subscribe").click()  # the EULA is not accepted yet
    expect(page.get_by_role("alert")).to_contain_text("I accept the EULA")
    check(page, "subscribe-refused")
    page.get_by_label("I accept the EULA").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page).to_have_url(re.compile(r"/account/subscriptions/\d+$"))
    expect(page.get_by_role("status")).to_contain_text("Your free trial ends on")
    subscription = page.url

    page.get_by_role("link", name="My account").first.click()
    card = page.get_by_role("listitem").filter(has_text="Northwind CI Runner")
    expect(card).to_contain_text("Free trial ends")
    expect(card).to_contain_text(f"{ends.day} {ends:%B %Y}")
    check(page, "account-trial")

    page.get_by_role("link", name="Acme Analytics").click()
    expect(page.get_by_role("heading", name="Usage per day")).to_be_visible()
    chart = page.locator("#usage-chart")
    expect(chart).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))")
    table = page.get_by_role("region", name="Usage per day")
    expect(table.get_by_role("row")).to_have_count(11)  # a heading row and ten days
    check(page, "subscription-usage")

    page.goto(subscription + "/cancel")  # the same costs, on a page of their own (linked from e-mails, say)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cancel your subscription to Northwind CI Runner")
    check(page, "cancel-confirm")
    page.goto(subscription)
    expect(page.get_by_text("costs nothing for the software")).to_be_visible()
    page.get_by_role("button", name="Cancel subscription").click()  # one click, as DESIGN's control promises
    expect(page.get_by_role("status")).to_contain_text("is cancelled")
    check(page, "subscription-cancelled")

    page.goto(url + "/account/invoices")
    check(page, "invoices")
    link = page.get_by_role("link", name=re.compile(r"^PDF of invoice \d+$")).first
    with page.expect_download() as download:
        link.click()
    path = download.value.path()
    assert path is not None
    with open(path, "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_the_contract_price_follows_the_quantities(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], *BUYER)
    page.goto(site["url"] + "/products/acme-crm/subscribe")
    page.get_by_label("Contract length").select_option(label="1 year")
    page.get_by_label("Named user seats").fill("5")
    price = page.get_by_role("region", name="Contract price")
    expect(price).to_contain_text("$600.00")
    page.get_by_label("Extra sandbox environments").fill("2")
    expect(price).to_contain_text("$1,600.00")
    check(page, "subscribe-contract")


def test_offer_and_refusal_pages(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], *BUYER)
    page.goto(f"{site['url']}/account/offers/{site['offer']}")
    expect(page.get_by_role("button", name="Accept offer")).to_be_visible()
    check(page, "offer")
    page.goto(site["url"] + "/products/acme-enterprise/subscribe")
    expect(page.get_by_role("heading", name="Only enterprise accounts can subscribe")).to_be_visible()
    check(page, "subscribe-enterprise-refused")
    page.goto(site["url"] + "/products/northwind-backup/subscribe")
    expect(page.get_by_label("License reference")).to_be_visible()
    check(page, "subscribe-byol")


def test_another_buyers_pages_are_404(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], *OTHER_BUYER)
    expect(page).to_have_url(site["url"] + "/account")
    check(page, "account-other")
    for path in ("/account/subscriptions/1", f"/account/offers/{site['offer']}"):
        response = page.goto(site["url"] + path)
        assert response is not None and response.status == 404, path
