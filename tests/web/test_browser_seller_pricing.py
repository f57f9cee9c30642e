"""The seller's pricing page and private offers in a real browser, on the harness of test_browser.py (its
Chromium, page, axe check and screenshots): the seller changes an hourly price and sees the preview for a
subscriber whose usage is known, with the amounts computed by hand here; publishes it; creates a private
offer with a payment schedule and a PDF EULA and extends it, and the buyer's `/account/offers/{id}` shows it.
A buyer gets 403 on these pages, another seller's product is 404; every page passes axe-core at 1280 and
360 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agora import clock, config, migrate
from agora.db import open_database
from agora.pricing.changes import existing_subscriber_effective_date
from tests.catalog.files import pdf
from tests.live import live_server
from tests.web import test_browser as harness
from tests.web.market import BUYER, SELLER, seed
from tests.web.test_browser import check, sign_in
from tests.web.test_seller_pricing import PROXY, SUBSCRIBER, seed_hours

pytestmark = pytest.mark.browser
chromium, page = harness.chromium, harness.page  # the harness's browser and page fixtures

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("seller-pricing-site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
        env.setenv("AGORA_VAR_DIR", str(root / "var"))
        config.reset_settings()
        db = open_database(f"sqlite:///{root / 'agora.db'}")
        migrate.upgrade(db)
        offer = seed(db)
        period = seed_hours(db)
        (root / "terms.pdf").write_bytes(pdf())
        config.reset_settings()
        with live_server(db) as url:
            yield {
                "url": url,
                "offer": offer,
                "month": datetime.strptime(period, "%Y-%m").strftime("%B %Y"),
                "eula": str(root / "terms.pdf"),
            }
        db.dispose()


def long(day: object) -> str:
    return f"{day.day} {day:%B %Y}"  # type: ignore[attr-defined]


@pytest.mark.rule("CHG-02")
def test_a_seller_changes_an_hourly_price_sees_the_preview_and_publishes_it(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *SELLER)
    page.goto(f"{url}/seller/products/{PROXY}/pricing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pricing of Acme Edge Proxy")
    hourly = page.get_by_role("group", name="Hourly price per instance type")
    expect(hourly.get_by_label("c5.large")).to_have_value("0.05")
    expect(page.get_by_label("Monthly fee")).to_have_value("49")
    check(page, "seller-pricing")

    page.get_by_label("Monthly fee").fill("forty")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_label("Monthly fee")).to_have_attribute("aria-invalid", "true")
    check(page, "seller-pricing-error")

    page.get_by_label("Monthly fee").fill("49")
    hourly.get_by_label("c5.large").fill("0.07")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview by subscriber")
    row = preview.get_by_role("row").filter(has=page.get_by_role("rowheader", name=SUBSCRIBER))
    # The subscriber ran one c5.large from 09:00 to 18:30 on the 3rd of last month: 9.5 h, billed as 10 h
    # (MTR-06), with the month's full fee. Billed: 10 × $0.05 + $49.00 = $49.50. The same 10 hours at the
    # new $0.07: 10 × $0.07 + $49.00 = $49.70, $0.20 more.
    expect(row).to_contain_text("$49.50")
    expect(row).to_contain_text("$49.70")
    expect(row).to_contain_text("+$0.20")
    effective = existing_subscriber_effective_date(clock.now().date())
    expect(row).to_contain_text(long(effective))
    facts = page.get_by_role("region", name="Preview: what the change costs your subscribers")
    expect(facts).to_contain_text(f"{long(clock.now().date())} (today, if you publish now)")
    expect(facts).to_contain_text(f"pay them from {long(effective)}")
    expect(facts).to_contain_text(f"Billed for {site['month']}")
    check(page, "seller-pricing-preview")

    page.get_by_role("button", name="Publish change").click()
    expect(page.get_by_role("status")).to_contain_text("Version 2 is published")
    expect(page.get_by_role("status")).to_contain_text(f"existing subscribers from {long(effective)}")
    versions = page.get_by_role("region", name="Table of price versions")
    expect(versions.get_by_role("row").nth(1)).to_contain_text("2 current")
    expect(hourly.get_by_label("c5.large")).to_have_value("0.07")
    check(page, "seller-pricing-published")


def test_a_seller_creates_and_extends_a_private_offer_the_buyer_then_sees(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *SELLER)
    page.goto(f"{url}/seller/offers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Private offers")
    check(page, "seller-offers")
    page.get_by_label("Product").select_option("acme-vault")
    page.get_by_role("button", name="Make an offer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New private offer for Acme Vault Server")
    check(page, "seller-offers-new")

    page.get_by_label("Buyer account").fill("111122223333")
    page.get_by_label("Duration in days").fill("730")
    page.get_by_label("Accept by").fill((clock.now() + timedelta(days=14)).date().isoformat())
    page.get_by_role("group", name="Hourly price per instance type").get_by_label("m5.large").fill("0.07")
    page.get_by_label("Total").fill("1500")
    page.get_by_label("Instalment 1 due on").fill((clock.now() + timedelta(days=30)).date().isoformat())
    page.get_by_label("Instalment 1 amount").fill("1000")
    page.get_by_label("EULA (PDF)").set_input_files(site["eula"])
    page.get_by_role("button", name="Create offer").click()
    # The instalments add up to $1,000, not the $1,500 total: the service's refusal, next to the schedule.
    expect(page.get_by_role("alert")).to_contain_text("instalments sum to 1000, not the total 1500 [OFR-01]")
    expect(page.locator("#schedule-error")).to_contain_text("instalments sum to 1000, not the total 1500")
    check(page, "seller-offers-new-error")

    page.get_by_label("Instalment 2 due on").fill((clock.now() + timedelta(days=395)).date().isoformat())
    page.get_by_label("Instalment 2 amount").fill("500")
    page.get_by_label("EULA (PDF)").set_input_files(site["eula"])
    page.get_by_role("button", name="Create offer").click()
    flash = page.get_by_role("status")
    expect(flash).to_contain_text("is saved as a draft")
    public_id = re.search(r"offer-[0-9a-f]+", flash.inner_text())
    assert public_id
    offer = public_id.group(0)
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=offer))
    expect(row).to_contain_text("Draft")
    expect(row).to_contain_text("$1,500.00 in 2 instalments, own EULA")
    check(page, "seller-offers-draft")
    row.get_by_role("button", name="Extend offer").click()
    expect(page.get_by_role("status")).to_contain_text(f"Offer {offer} is extended to buyer 111122223333")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=offer))
    expect(row).to_contain_text("Extended")
    expect(row.get_by_role("button", name="Extend offer")).to_have_count(0)
    check(page, "seller-offers-extended")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, url, *BUYER)
    page.goto(f"{url}/account/offers/{offer}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Private offer for Acme Vault Server")
    expect(page.get_by_text("730 days from acceptance")).to_be_visible()
    expect(page.get_by_role("link", name="the offer's own EULA (PDF)")).to_be_visible()
    check(page, "seller-offer-seen-by-buyer")


def test_a_buyer_gets_403_and_another_sellers_product_404(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *BUYER)
    for path in (f"/seller/products/{PROXY}/pricing", "/seller/offers", "/seller/offers/new?product=acme-vault"):
        response = page.goto(url + path)
        assert response is not None and response.status == 403, path
    check(page, "seller-pricing-403")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, url, *SELLER)
    for path in ("/seller/products/northwind-db/pricing", "/seller/offers/new?product=northwind-db"):
        response = page.goto(url + path)
        assert response is not None and response.status == 404, path
    check(page, "seller-pricing-404")


def test_screenshots_of_a_product_without_subscribers_and_with_a_model_request(
    site: dict[str, str], page: Page
) -> None:
    sign_in(page, site["url"], *SELLER)
    page.goto(f"{site['url']}/seller/products/acme-search-managed/pricing")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("region", name="Preview: what the change costs your subscribers")).to_contain_text(
        "These are the current prices"
    )
    check(page, "seller-pricing-tiered-preview")
    page.goto(f"{site['url']}/seller/products/acme-vault/pricing")
    page.get_by_label("New pricing").fill('{"monthly": "99"}')
    page.get_by_role("button", name="Request model change").click()
    expect(page.get_by_role("status")).to_contain_text("is sent")
    expect(page.get_by_role("region", name="Table of pricing-model requests")).to_contain_text(
        "Waiting for the operator"
    )
    check(page, "seller-pricing-model-request")
    assert Path(harness.SCREENSHOTS / "seller-pricing-model-request-360.png").exists()
