"""The seller portal's money and integration pages in a real browser, on the harness of test_browser.py (its
Chromium, page, axe check and screenshots at 1280 and 360 px): a seller signs in, sees the revenue and
usage charts drawn, downloads the usage CSV and reads it, marks a record as a metering error, opens revenue,
disbursements and refunds, creates an SDK key whose secret is shown only once, revokes it, replays a webhook
delivery; a buyer opening /seller gets 403."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agora import config, migrate
from agora.app import create_app
from agora.db import open_database
from tests.live import live_server
from tests.web import test_browser as harness
from tests.web.activity import seed_activity
from tests.web.conftest import HTML, csrf_of
from tests.web.conftest import sign_in as client_sign_in
from tests.web.market import BUYER, SELLER, seed
from tests.web.test_browser import check, sign_in
from tests.web.test_seller_integration import _deliveries

pytestmark = pytest.mark.browser
chromium, page = harness.chromium, harness.page  # the harness's browser and page fixtures

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("seller-money-site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
        env.setenv("AGORA_VAR_DIR", str(root / "var"))
        config.reset_settings()
        db = open_database(f"sqlite:///{root / 'agora.db'}")
        migrate.upgrade(db)
        seed(db)
        period = seed_activity(db)
        _deliveries(db)  # a failed, a delivered and another seller's webhook delivery
        with TestClient(create_app(db), headers=HTML, follow_redirects=False) as buyer:  # an annual purchase
            client_sign_in(buyer, *BUYER)
            form = {"csrf_token": csrf_of(buyer.get("/products/acme-vault/subscribe")), "accept_eula": "yes",
                    "annual-m5.large": "1"}  # fmt: skip
            assert buyer.post("/products/acme-vault/subscribe", data=form).status_code == 303
        config.reset_settings()
        with live_server(db) as url:
            yield {"url": url, "period": period}
        db.dispose()


def drawn(page: Page, canvas_id: str) -> None:
    """Chart.js drew on the canvas (the data block was read and rendered)."""
    page.wait_for_function(f"() => window.Chart && Chart.getChart(document.getElementById('{canvas_id}'))")
    assert page.evaluate(f"document.getElementById('{canvas_id}').width") > 0


def test_a_seller_sees_charts_downloads_usage_and_marks_a_metering_error(site: dict[str, str], page: Page) -> None:
    url, period = site["url"], site["period"]
    sign_in(page, url, *SELLER)
    expect(page).to_have_url(url + "/seller")
    expect(page.get_by_role("heading", name="What needs your attention")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("webhook delivery failed"))).to_have_attribute(
        "href", "/seller/webhooks"
    )
    expect(page.get_by_role("link", name=re.compile("inside a refund window"))).to_have_attribute(
        "href", "/seller/refunds"
    )
    drawn(page, "revenue-chart")
    expect(page.get_by_role("region", name="Revenue per month")).to_contain_text("−$2.00")
    check(page, "seller-dashboard")

    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage")
    drawn(page, "usage-by-day")
    table = page.get_by_role("region", name="Usage per day")
    expect(table.get_by_role("row")).to_have_count(11)  # a heading row and the ten days with usage
    check(page, "seller-usage")

    page.get_by_label("From", exact=True).fill(f"{period}-01")
    page.get_by_label("To", exact=True).fill(f"{period}-10")
    page.get_by_role("button", name="Show usage").click()
    expect(page).to_have_url(re.compile(rf"start={period}-01"))
    drawn(page, "usage-by-day")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    path = download.value.path()
    assert path is not None
    with open(path, encoding="utf-8") as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert [(r["day"], r["product"], r["dimension"], r["customer_identifier"], r["quantity"]) for r in rows] == [
        (f"{period}-03", "acme-analytics", "users", "cust-bluebird", "40"),
        (f"{period}-04", "acme-analytics", "users", "cust-bluebird", "41"),
        (f"{period}-05", "acme-analytics", "users", "cust-bluebird", "42"),
    ]
    assert download.value.suggested_filename == f"usage-{period}-01-to-{period}-10.csv"

    page.get_by_role("button", name="Mark as metering errors").click()  # nothing ticked
    expect(page.get_by_role("alert")).to_contain_text("tick at least one record")
    check(page, "seller-usage-refused")
    page.get_by_role("checkbox", name=re.compile(r"42 users")).check()
    page.get_by_label("Reason", exact=True).fill("A bug double-counted users on the 5th")
    page.get_by_role("button", name="Mark as metering errors").click()
    expect(page.get_by_role("status")).to_contain_text("1 record(s) confirmed as metering errors")
    expect(page.get_by_text("Metering error", exact=True)).to_be_visible()

    page.get_by_role("link", name="Revenue", exact=True).click()
    drawn(page, "revenue-chart")
    expect(page.get_by_role("region", name="Revenue per month and product")).to_contain_text("acme-analytics")
    check(page, "seller-revenue")

    page.get_by_role("link", name="Disbursements", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(rf"^{period}"))).to_be_visible()
    check(page, "seller-disbursements")

    page.get_by_role("link", name="Refunds", exact=True).click()
    expect(page.get_by_role("button", name="Refund in full")).to_be_visible()
    check(page, "seller-refunds")
    page.get_by_label("Buyer account").fill("111122223333")
    page.get_by_label("Buyer e-mail").fill("wrong@bluebird.example")
    page.get_by_label(period, exact=True).check()
    page.get_by_role("region", name="Approve a software refund").get_by_label("Reason").fill("Support outage")
    page.get_by_role("button", name="Approve refund").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match the buyer account's e-mail")
    check(page, "seller-refunds-refused")


def test_a_seller_creates_a_key_sees_its_secret_once_and_revokes_it(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *SELLER)
    page.goto(url + "/seller/keys")
    check(page, "seller-keys")
    page.get_by_role("button", name="Create access key").click()
    secret = page.locator("#new-key-secret")
    expect(secret).to_be_visible()
    value = secret.inner_text()
    key_id = page.locator("#new-key-id").inner_text()
    assert len(value) >= 20
    check(page, "seller-key-created")

    page.goto(url + "/seller/keys")  # a later page load never shows it again
    expect(page.get_by_role("row", name=re.compile(key_id))).to_contain_text("Active")
    assert value not in page.content()
    page.get_by_role("button", name=f"Revoke {key_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Access key {key_id} is revoked")
    expect(page.get_by_role("row", name=re.compile(key_id))).to_contain_text("Revoked")
    assert value not in page.content()


def test_a_seller_replays_a_webhook_delivery_and_rotates_the_secret(site: dict[str, str], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *SELLER)
    page.goto(url + "/seller/webhooks")
    expect(page.get_by_role("region", name="Webhook deliveries")).to_contain_text("Failed")
    check(page, "seller-webhooks")
    page.get_by_role("button", name="Replay").first.click()
    expect(page.get_by_role("status")).to_contain_text("is queued to be sent again")
    page.get_by_role("button", name="Create signing secret").click()
    expect(page.locator("#new-webhook-secret")).to_contain_text("whsec_")
    check(page, "seller-webhook-secret")


def test_a_buyer_opening_the_seller_portal_gets_403(site: dict[str, str], page: Page) -> None:
    sign_in(page, site["url"], *BUYER)
    expect(page).to_have_url(site["url"] + "/account")
    response = page.goto(site["url"] + "/seller")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("can't open this page")
