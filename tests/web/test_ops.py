"""The operator console through the TestClient, on SQLite and PostgreSQL: reviews (LST-05, LST-06, LST-03),
change requests and pricing-model requests (PRC-16), each act going through the API's services and audited
the same way; only operators get in."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import jobs, tasks
from agora.db import Database
from agora.models import AuditEvent, ChangeRequest, Notification, PricingModelRequest, Product
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, OPERATOR, SELLER
from tests.web.ops_market import ACME, IN_REVIEW, IN_REVIEW_TITLE, seed_console

PAGES = [
    "/ops",
    "/ops/reviews",
    f"/ops/reviews/{IN_REVIEW}",
    "/ops/change-requests",
    "/ops/billing",
    "/ops/invoices",
    "/ops/refunds",
    "/ops/audit",
    "/ops/jobs",
    "/ops/outbox",
    "/ops/sellers",
    "/ops/buyers",
]


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def console(db: Database, offer_id: str) -> dict[str, Any]:
    return seed_console(db)


@pytest.fixture
def ops(browser: TestClient, console: dict[str, Any]) -> TestClient:
    assert sign_in(browser, *OPERATOR).status_code == 303
    return browser


def post(client: TestClient, url: str, page: str, **fields: str) -> Any:
    return client.post(url, data={"csrf_token": csrf_of(client.get(page)), **fields})


def audit(db: Database, action: str) -> list[AuditEvent]:
    with db.reader() as session:
        found = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
        session.expunge_all()
        return found


def run_jobs(db: Database) -> int:
    return jobs.Worker(db).run_until_idle()


# --- who gets in ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", [SELLER, BUYER])
def test_sellers_and_buyers_get_403_on_every_operator_page(browser: TestClient, console: Any, who: Any) -> None:
    assert sign_in(browser, *who).status_code == 303
    for url in PAGES:
        assert browser.get(url).status_code == 403, url


def test_anonymous_visitors_are_sent_to_sign_in(browser: TestClient, console: Any) -> None:
    response = browser.get("/ops/jobs")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/ops/jobs"


def test_every_page_renders_for_the_operator(ops: TestClient) -> None:
    for url in PAGES:
        response = ops.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        assert "<h1" in response.text


def test_a_post_without_the_csrf_token_is_refused(ops: TestClient) -> None:
    assert ops.post(f"/ops/reviews/{IN_REVIEW}/approve").status_code == 403


# --- what waits ----------------------------------------------------------------------------------------------


def test_the_overview_links_to_what_waits(ops: TestClient) -> None:
    page = ops.get("/ops").text
    assert f'href="/ops/reviews/{IN_REVIEW}"' in page
    words = text_of(page)
    assert IN_REVIEW_TITLE in words
    assert "1 listing change and 1 pricing-model request" in words
    assert "1 job used up every attempt" in words
    for link in ("/ops/change-requests", "/ops/billing", "/ops/jobs", "/ops/refunds"):
        assert f'href="{link}' in page


# --- reviews -------------------------------------------------------------------------------------------------


@pytest.mark.rule("LST-05")
def test_the_queue_is_oldest_first(ops: TestClient, db: Database) -> None:
    from tests.web.ops_market import submit_listing

    with TestClient(ops.app) as api:  # type: ignore[arg-type]
        submit_listing(api, "acme-later", "Acme Later")
    page = ops.get("/ops/reviews").text
    assert page.index(IN_REVIEW_TITLE) < page.index("Acme Later")


@pytest.mark.rule("LST-03")
def test_the_review_shows_the_listing_its_files_and_pricing_in_words(ops: TestClient) -> None:
    page = ops.get(f"/ops/reviews/{IN_REVIEW}").text
    words = text_of(page)
    for expected in ("Dashboards of what your customers do", "Funnels and cohorts", "It needs no agent.",
                     "support@acme.example, weekdays", "Full refund within 30 days", "Analytics"):  # fmt: skip
        assert expected in words, expected
    assert "Active users" in words  # the usage dimension, in words
    digests = dict(
        re.findall(r'<a href="/ops/reviews/[^/]+/files/([0-9a-f]+)">(?:Open the user guide: )?([^<]+)</a>', page)
    )
    guide = next(d for d, name in digests.items() if name == "insights-guide.pdf")
    response = ops.get(f"/ops/reviews/{IN_REVIEW}/files/{guide}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.content.startswith(b"%PDF")
    assert ops.get(f"/ops/reviews/{IN_REVIEW}/files/{'0' * 64}").status_code == 404


@pytest.mark.rule("LST-05")
def test_reject_needs_a_reason_and_the_seller_sees_it(ops: TestClient, db: Database) -> None:
    page = f"/ops/reviews/{IN_REVIEW}"
    refused = post(ops, f"{page}/reject", page, reason="  ")
    assert refused.status_code == 422
    assert "Write a reason" in refused.text
    done = post(ops, f"{page}/reject", page, reason="The logo is blurry; upload a sharper PNG.")
    assert done.status_code == 303
    with TestClient(ops.app) as api:  # type: ignore[arg-type]
        product = api.get(f"/api/v1/products/{IN_REVIEW}", headers=ACME).json()
    assert product["state"] == "draft"
    assert product["rejection_reason"] == "The logo is blurry; upload a sharper PNG."
    [event] = audit(db, "product.reject")
    assert event.actor == "operator:ops" and event.after == {"state": "draft", "reason": product["rejection_reason"]}
    with db.reader() as session:
        kinds = set(session.scalars(select(Notification.kind)))
    assert "listing_rejected" in kinds
    assert "upload a sharper PNG" in text_of(ops.get(page).text)


@pytest.mark.rule("LST-06")
def test_approve_then_publishing_progress_until_limited(ops: TestClient, db: Database) -> None:
    page = f"/ops/reviews/{IN_REVIEW}"
    assert post(ops, f"{page}/approve", page).status_code == 303
    progress = ops.get(f"{page}/progress").text
    assert "Publishing" in progress and 'hx-trigger="every 2s"' in progress
    [event] = audit(db, "product.approve")
    assert event.actor == "operator:ops"
    run_jobs(db)
    progress = ops.get(f"{page}/progress").text
    assert "Limited" in progress and "hx-trigger" not in progress
    again = post(ops, f"{page}/approve", page)
    assert again.status_code == 303  # a second approval is refused with the service's reason, as a message
    assert "cannot approve product 'acme-insights': it is limited" in unescape(ops.get(page).text)


# --- change requests ---------------------------------------------------------------------------------------------


def test_change_requests_show_before_and_after_and_approve(ops: TestClient, db: Database, console: Any) -> None:
    words = text_of(ops.get("/ops/change-requests").text)
    assert "Hardened secrets manager image with HSM-backed unsealing." in words  # now
    assert "Hardened secrets manager image, now with HSM-backed auto-unseal." in words  # requested
    request_id = console["change_request"]
    url = f"/ops/change-requests/{request_id}/approve"
    assert post(ops, url, "/ops/change-requests").status_code == 303
    with db.reader() as session:
        assert session.get_one(ChangeRequest, request_id).state == "approved"
        product = session.scalar(select(Product).where(Product.code == "acme-vault"))
        assert product is not None and "auto-unseal" in product.listing["short_description"]
    [event] = audit(db, "change_request.approve")
    assert event.actor == "operator:ops" and event.before is not None


def test_rejecting_a_change_request_needs_a_reason(ops: TestClient, db: Database, console: Any) -> None:
    url = f"/ops/change-requests/{console['change_request']}/reject"
    response = post(ops, url, "/ops/change-requests", reason="")
    assert response.status_code == 303
    assert "reason" in unescape(ops.get("/ops/change-requests").text).lower()
    with db.reader() as session:
        assert session.get_one(ChangeRequest, console["change_request"]).state == "pending"


@pytest.mark.rule("PRC-16")
def test_a_pricing_model_request_is_approved_from_the_page(ops: TestClient, db: Database, console: Any) -> None:
    words = text_of(ops.get("/ops/change-requests").text)
    assert "Pricing-model request" in words and "Monthly" in words
    request_id = console["model_request"]
    assert post(ops, f"/ops/pricing-model-requests/{request_id}/approve", "/ops/change-requests").status_code == 303
    with db.reader() as session:
        assert session.get_one(PricingModelRequest, request_id).state == "approved"
    [event] = audit(db, "pricing_model_request.approve")
    assert event.actor == "operator:ops"


@pytest.mark.rule("PRC-16")
def test_a_pricing_model_request_is_rejected_with_a_reason(ops: TestClient, db: Database, console: Any) -> None:
    request_id = console["model_request"]
    url = f"/ops/pricing-model-requests/{request_id}/reject"
    assert post(ops, url, "/ops/change-requests", reason="Keep the monthly fee.").status_code == 303
    with db.reader() as session:
        found = session.get_one(PricingModelRequest, request_id)
        assert (found.state, found.reason) == ("rejected", "Keep the monthly fee.")
