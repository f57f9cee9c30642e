"""The operator console in a real browser (issue 19's done-when): Chromium driven by Playwright against a
live server with a background worker, axe-core on every operator page and screenshots at 1280 and 360 px.

The operator rejects a submitted listing with a reason (the seller's API shows it), approves the
resubmission and watches it reach `limited`; approves a change request; closes a past month from
`/ops/billing` and sees its invoices; marks one paid and voids another (a credit note appears); finds these
acts in `/ops/audit`; retries a failed job. A seller opening `/ops` gets 403. The data is set up through
the API and services in the fixture."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agora import config, jobs, migrate, tasks
from agora.db import open_database
from tests.live import live_server
from tests.web import test_browser as harness
from tests.web.market import OPERATOR, SELLER, seed
from tests.web.ops_billing_market import seed_past_month
from tests.web.ops_market import ACME, FLAKY, IN_REVIEW, IN_REVIEW_TITLE, seed_console
from tests.web.test_browser import check, sign_in

pytestmark = pytest.mark.browser
chromium, page = harness.chromium, harness.page  # the harness's browser and page fixtures

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ops-site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
        env.setenv("AGORA_VAR_DIR", str(root / "var"))
        config.reset_settings()
        tasks.register_all()
        db = open_database(f"sqlite:///{root / 'agora.db'}")
        migrate.upgrade(db)
        seed(db)
        ids = seed_console(db)
        period = seed_past_month(db)
        with live_server(db) as url:
            thread, stop = jobs.start_background_worker(db, poll_interval=0.2)
            try:
                yield {"url": url, "period": period, "var": str(root / "var"), **ids}
            finally:
                stop.set()
                thread.join(10)
        config.reset_settings()
        db.dispose()


@pytest.fixture(autouse=True)
def _isolated_environment(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's worker publishes the files the fixture uploaded: it must look where they were stored,
    not in each test's own directory (the suite-wide fixture of this name)."""
    monkeypatch.setenv("AGORA_VAR_DIR", site["var"])
    monkeypatch.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
    config.reset_settings()
    yield
    config.reset_settings()


def test_an_operator_runs_the_marketplace_from_the_console(site: dict[str, Any], page: Page) -> None:
    url = site["url"]
    sign_in(page, url, *OPERATOR)
    expect(page).to_have_url(url + "/ops")
    expect(page.get_by_role("heading", level=1)).to_have_text("Marketplace operations")
    expect(page.get_by_role("link", name=IN_REVIEW_TITLE)).to_be_visible()
    check(page, "ops-overview")

    # LST-05: reject with a reason the seller sees
    page.get_by_role("link", name="Reviews", exact=True).click()
    check(page, "ops-reviews")
    page.get_by_role("link", name=IN_REVIEW_TITLE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(IN_REVIEW_TITLE)
    expect(page.get_by_role("link", name="Open the user guide: insights-guide.pdf")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^Pricing"))).to_be_visible()
    check(page, "ops-review")
    page.get_by_role("button", name="Reject").click()  # without a reason: refused, nothing changes
    expect(page.get_by_role("alert")).to_contain_text("Write a reason")
    reason = "The screenshots show another product; upload Insights' own dashboards."
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status").first).to_contain_text("returned to its seller")
    api = httpx.Client(base_url=url, headers=ACME)
    product = api.get(f"/api/v1/products/{IN_REVIEW}").json()
    assert (product["state"], product["rejection_reason"]) == ("draft", reason)

    # the seller resubmits; the operator approves and watches it publish (LST-06)
    assert api.post(f"/api/v1/products/{IN_REVIEW}/submit").status_code == 200
    page.goto(url + "/ops/reviews")
    page.get_by_role("link", name=IN_REVIEW_TITLE).click()
    page.get_by_role("button", name="Approve").click()
    progress = page.locator("#progress")
    expect(progress).to_contain_text("Limited (only the seller sees it)", timeout=15_000)
    check(page, "ops-review-published")
    assert api.get(f"/api/v1/products/{IN_REVIEW}").json()["state"] == "limited"

    # a change request, field by field
    page.get_by_role("link", name="Change requests").click()
    change = page.get_by_role("article", name=re.compile(f"Change request {site['change_request']}"))
    expect(change.get_by_role("cell", name=re.compile("now with HSM-backed auto-unseal"))).to_be_visible()
    check(page, "ops-change-requests")
    change.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Change request {site['change_request']} is approved")
    assert "auto-unseal" in api.get("/api/v1/products/acme-vault").json()["short_description"]

    # close last month from the billing page, with its progress (BIL-03)
    period = site["period"]
    page.get_by_role("link", name="Billing", exact=True).click()
    row = page.locator(f"#period-{period}")
    expect(row).to_contain_text("Open")
    check(page, "ops-billing")
    row.get_by_role("button", name=f"Close {period}").click()
    row = page.locator(f"#period-{period}")
    expect(row).to_contain_text("Closed", timeout=30_000)
    expect(row).to_contain_text("3 of 3 buyers invoiced")
    check(page, "ops-billing-closed")
    row.get_by_role("link", name=re.compile("2 invoices")).click()
    expect(page).to_have_url(re.compile(rf"/ops/invoices\?period={period}"))
    invoices = page.get_by_role("article", name=re.compile(r"^Invoice \d+"))
    expect(invoices).to_have_count(2)
    check(page, "ops-invoices")
    first, second = (invoices.nth(i).get_attribute("aria-labelledby") for i in range(2))
    assert first and second
    paid, voided = first.removeprefix("inv-"), second.removeprefix("inv-")
    page.get_by_role("button", name=f"Mark paid: invoice {paid}").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Invoice {paid} is marked paid.")
    page.get_by_label("Reason for voiding").fill("Billed to the wrong account")
    page.get_by_role("button", name=f"Void invoice {voided}").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Invoice {voided} is void; credit note")
    page.goto(url + "/ops/invoices?kind=credit_note")
    note = page.get_by_role("article", name=re.compile(r"^Credit note"))
    expect(note.first).to_contain_text(f"corrects invoice {voided}")
    check(page, "ops-credit-notes")
    page.get_by_role("link", name="Refunds").click()
    expect(page.get_by_role("region", name="Refunds issued")).to_contain_text("voided by the operator")
    check(page, "ops-refunds")

    # the acts are in the audit log
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Actor").fill("operator:ops")
    page.get_by_role("button", name="Filter").click()
    for action in ("product.reject", "product.approve", "change_request.approve", "billing.close", "invoice.pay",
                   "invoice.void"):  # fmt: skip
        expect(page.get_by_role("heading", name=re.compile(rf"^{re.escape(action)} on"))).to_be_visible()
    check(page, "ops-audit")

    # a failed job is retried
    page.get_by_role("link", name="Jobs").click()
    failed = page.get_by_role("article", name=re.compile(f"Job {site['job']}:"))
    expect(failed).to_contain_text("503 Service Unavailable")
    check(page, "ops-jobs")
    failed.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Job {site['job']} ({FLAKY}) is queued again.")
    expect(page.get_by_role("heading", name="No failed jobs")).to_be_visible(timeout=10_000)
    page.reload()
    expect(page.get_by_role("region", name="Recent jobs")).to_contain_text(FLAKY)

    for name, link in (("ops-outbox", "/ops/outbox"), ("ops-sellers", "/ops/sellers"), ("ops-buyers", "/ops/buyers")):
        page.goto(url + link)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        check(page, name)


def test_a_seller_opening_ops_gets_403(site: dict[str, Any], page: Page) -> None:
    sign_in(page, site["url"], *SELLER)
    expect(page).to_have_url(site["url"] + "/seller")
    response = page.goto(site["url"] + "/ops")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("open this page")
