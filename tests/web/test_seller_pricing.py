"""The seller's pricing page through the TestClient, on SQLite and PostgreSQL: one input per price labelled by
what it prices, the preview of a price change re-rated from a subscriber's recorded instance-hours (and
proven to write nothing), **Publish change** through the API's service (CHG-01, CHG-02), pricing-model
change requests (PRC-16); a buyer gets 403, another seller's product 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import clock
from agora.auth import Principal
from agora.billing import runs
from agora.billing.rating import period_of
from agora.db import Database
from agora.metering import platform
from agora.models import (
    Base,
    Buyer,
    Job,
    PriceVersion,
    PricingModelRequest,
    Product,
    Role,
    Subscription,
)
from agora.pricing.changes import existing_subscriber_effective_date
from agora.subscriptions import service as subscriptions
from agora.tasks import register_all
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, SELLER

PROXY = "acme-edge-proxy"  # hourly c5.large at 0.05 plus a 49.00 monthly fee
SUBSCRIBER = "444455556666"
HOURS = 10  # a run from 09:00 to 18:30 is 9.5 h, rounded up to 10 billable hours (MTR-06)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def seed_hours(db: Database) -> str:
    """A subscriber to Acme Edge Proxy all last month, who ran one c5.large for 9.5 hours on its 3rd, and
    that month closed. Returns the month ('YYYY-MM')."""
    now = clock.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=1)
    start = datetime(start.year, start.month, 1, tzinfo=UTC)
    with clock.use_clock(clock.ManualClock(start)) as moved:
        assert isinstance(moved, clock.ManualClock)
        with db.unit_of_work() as session:
            buyer = session.scalar(select(Buyer).where(Buyer.account == SUBSCRIBER))
            assert buyer is not None
            subscription, _ = subscriptions.subscribe(
                session, Principal(Role.BUYER, buyer.id, buyer.account), PROXY, accept_eula=True
            )
        moved.set(start + timedelta(days=2, hours=9))
        with db.unit_of_work() as session:
            found = session.get_one(Subscription, subscription.id)
            platform.start_instance(session, found, "i-proxy-1", "c5.large", clock.now(), "us-east-1")
        moved.set(start + timedelta(days=2, hours=18, minutes=30))
        with db.unit_of_work() as session:
            platform.stop_instance(session, "i-proxy-1", clock.now())
    register_all()
    period = period_of(start)
    runs.close(db, period)
    return period


@pytest.fixture
def seller(browser: TestClient) -> TestClient:
    assert sign_in(browser, *SELLER).status_code == 303
    return browser


def page_of(client: TestClient, code: str) -> str:
    answer = client.get(f"/seller/products/{code}/pricing")
    assert answer.status_code == 200, answer.text
    return answer.text


def inputs(html: str) -> dict[str, str]:
    """Each price input's label text → its field name."""
    labels = dict(re.findall(r'<label for="(price-[0-9-]+)">([^<]+)</label>', html))
    names = dict(re.findall(r'<input id="(price-[0-9-]+)" name="([^"]+)"', html))
    return {unescape(labels[i]): names[i] for i in labels}


def preview(client: TestClient, code: str, **prices: str) -> Any:
    html = page_of(client, code)
    fields = inputs(html)
    form = {"csrf_token": csrf_of(client.get(f"/seller/products/{code}/pricing"))}
    form.update({fields[label]: value for label, value in prices.items()})
    return client.post(f"/seller/products/{code}/pricing/preview", data=form)


def snapshot(db: Database) -> dict[str, Any]:
    """Every table's row count, and the product's prices: what a price change (or anything else) would write."""
    with db.reader() as session:
        counts = {
            table.name: session.scalar(select(func.count()).select_from(table)) for table in Base.metadata.sorted_tables
        }
        product = session.scalar(select(Product).where(Product.code == PROXY))
        assert product is not None
        return {**counts, "pricing": product.pricing, "updated_at": product.updated_at}


def test_every_price_has_its_own_input_labelled_by_what_it_prices(seller: TestClient) -> None:
    html = page_of(seller, "acme-vault")
    assert set(re.findall(r'name="(hourly/[^"]+|annual/[^"]+)"', html)) == {
        "hourly/m5.large",
        "hourly/m5.xlarge",
        "annual/m5.large",
        "annual/m5.xlarge",
    }
    assert "<legend>Hourly price per instance type</legend>" in html
    assert "<legend>Annual price per instance type</legend>" in html
    assert set(inputs(html)) == {"m5.large", "m5.xlarge"}  # each type's input is labelled by the type
    assert 'value="0.10"' in html  # the current price fills its input
    proxy = inputs(page_of(seller, PROXY))
    assert proxy == {"c5.large": "hourly/c5.large", "Monthly fee": "monthly"}
    assert inputs(page_of(seller, "acme-analytics")) == {"users": "usage/users"}
    versions = text_of(page_of(seller, PROXY))
    assert "Price versions" in versions and "1 current" in versions and "launch price" in versions


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_the_preview_re_rates_last_month_at_the_new_prices_and_changes_nothing(
    seller: TestClient, db: Database
) -> None:
    period = seed_hours(db)
    before = snapshot(db)
    answer = preview(seller, PROXY, **{"c5.large": "0.07"})
    assert answer.status_code == 200, answer.text
    assert snapshot(db) == before  # a preview writes nothing: no version, notice, job, audit entry
    text = text_of(answer.text)
    # Billed for the month: 10 h × $0.05 = $0.50, plus the full monthly fee $49.00 → $49.50.
    # At the new prices, the same 10 recorded hours: 10 × $0.07 = $0.70, plus $49.00 → $49.70.
    row = re.search(
        rf"<tr role=\"row\">\s*<th scope=\"row\" role=\"rowheader\">{SUBSCRIBER}</th>.*?</tr>", answer.text, re.S
    )
    assert row, "the subscriber has a row"
    cells = text_of(row.group(0))
    assert "$49.50" in cells and "$49.70" in cells and "+$0.20" in cells
    today = clock.now().date()
    effective = existing_subscriber_effective_date(today)
    assert f"Billed for {datetime.strptime(period, '%Y-%m'):%B %Y}" in text
    assert f"{today.day} {today:%B %Y} (today, if you publish now)" in text
    assert f"pay them from {effective.day} {effective:%B %Y}" in text
    assert f"{effective.day} {effective:%B %Y}" in cells  # when this subscriber is reached (CHG-02)
    assert "The preview changes nothing" in text
    assert 'name="hourly/c5.large" value="0.07"' in answer.text  # Publish change carries the previewed prices
    # A subscriber on a private offer keeps its prices; the demo market's offer is not accepted yet.
    assert "1 subscriber" not in text


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_publish_change_makes_a_new_version_as_the_api_does(seller: TestClient, db: Database) -> None:
    seed_hours(db)
    html = page_of(seller, PROXY)
    form = {"csrf_token": csrf_of(seller.get("/seller/offers")), "hourly/c5.large": "0.07", "monthly": "49"}
    answer = seller.post(f"/seller/products/{PROXY}/pricing", data=form)
    assert answer.status_code == 303, answer.text
    effective = existing_subscriber_effective_date(clock.now().date())
    with db.reader() as session:
        product = session.scalar(select(Product).where(Product.code == PROXY))
        assert product is not None
        rows = session.scalars(select(PriceVersion).where(PriceVersion.product_id == product.id)).all()
        latest = max(rows, key=lambda v: v.number)
        assert latest.number == 2 and latest.pricing["hourly"] == {"c5.large": "0.07"}
        assert latest.existing_from is not None and latest.existing_from.date() == effective
        assert product.pricing == latest.pricing  # new subscriptions pay it at once (CHG-01)
        assert session.scalar(select(Job).where(Job.name == "pricing.notify_subscribers"))
    page = text_of(seller.get(answer.headers["location"]).text)
    assert "Version 2 is published" in page and f"from {effective.day} {effective:%B %Y}" in page
    assert "2 current" in page
    assert html  # the page before the change rendered


def test_an_unchanged_price_list_publishes_nothing(seller: TestClient, db: Database) -> None:
    before = snapshot(db)
    form = {"csrf_token": csrf_of(seller.get("/seller/offers")), "hourly/c5.large": "0.05", "monthly": "49"}
    answer = seller.post(f"/seller/products/{PROXY}/pricing", data=form)
    assert answer.status_code == 303
    assert "nothing changed" in text_of(seller.get(answer.headers["location"]).text)
    assert snapshot(db) == before


@pytest.mark.rule("PRC-01")
def test_a_wrong_price_is_shown_next_to_its_field_and_nothing_changes(seller: TestClient, db: Database) -> None:
    before = snapshot(db)
    answer = preview(seller, PROXY, **{"c5.large": "0.0.7", "Monthly fee": "-5"})
    assert answer.status_code == 422
    assert re.search(
        r'name="hourly/c5.large"[^>]*value="0.0.7" aria-describedby="[^"]*-error" aria-invalid="true"', answer.text
    )
    errors = re.findall(r'<p class="field-error" id="price-[0-9-]+-error">([^<]+)</p>', answer.text)
    assert len(errors) == 2 and any("negative" in e for e in errors)
    form = {"csrf_token": csrf_of(seller.get("/seller/offers")), "hourly/c5.large": "0.1234567891"}
    answer = seller.post(f"/seller/products/{PROXY}/pricing", data=form)
    assert answer.status_code == 422 and "PRC-01" in answer.text
    assert snapshot(db) == before


@pytest.mark.rule("PRC-16")
def test_a_pricing_model_change_is_a_request_with_its_status(seller: TestClient, db: Database) -> None:
    url = f"/seller/products/{PROXY}/pricing-model-requests"
    csrf = csrf_of(seller.get("/seller/offers"))
    same = seller.post(url, data={"csrf_token": csrf, "pricing": "hourly: {c5.large: '0.06'}\nmonthly: '10'\n"})
    assert same.status_code == 422 and "still hourly_monthly pricing" in text_of(same.text)
    broken = seller.post(url, data={"csrf_token": csrf, "pricing": "monthly: [nope"})
    assert broken.status_code == 422 and "not valid YAML or JSON" in broken.text
    answer = seller.post(url, data={"csrf_token": csrf, "pricing": '{"monthly": "59"}'})
    assert answer.status_code == 303, answer.text
    with db.reader() as session:
        request = session.scalar(select(PricingModelRequest))
        assert request is not None and request.state == "pending" and request.to_family == "monthly"
        product = session.scalar(select(Product).where(Product.code == PROXY))
        assert product is not None and product.pricing_family == "hourly_monthly"  # not applied directly
    page = text_of(seller.get(answer.headers["location"]).text)
    assert "is sent" in page and "Hourly plus monthly fee Monthly" in page and "Waiting for the operator" in page


def test_a_buyer_gets_403_and_another_sellers_product_is_404(browser: TestClient) -> None:
    assert browser.get(f"/seller/products/{PROXY}/pricing").status_code == 303  # anonymous: sign in first
    assert sign_in(browser, *BUYER).status_code == 303
    assert browser.get(f"/seller/products/{PROXY}/pricing").status_code == 403
    csrf = csrf_of(browser.get("/account"))
    assert browser.post(f"/seller/products/{PROXY}/pricing/preview", data={"csrf_token": csrf}).status_code == 403
    browser.cookies.clear()
    assert sign_in(browser, *SELLER).status_code == 303
    assert browser.get("/seller/products/northwind-db/pricing").status_code == 404
    csrf = csrf_of(browser.get("/seller/offers"))
    for path in ("pricing/preview", "pricing", "pricing-model-requests"):
        answer = browser.post(f"/seller/products/northwind-db/{path}", data={"csrf_token": csrf, "pricing": "{}"})
        assert answer.status_code == 404, path
    assert browser.get("/seller/products/no-such-product/pricing").status_code == 404
