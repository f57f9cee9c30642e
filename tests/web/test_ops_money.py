"""The operator console's money pages through the TestClient, on SQLite and PostgreSQL: a month closed from
`/ops/billing` with its progress from the jobs, safe to close again (BIL-03), invoices found by buyer,
seller, period and state, **Mark paid** and **Void** with its credit note, refunds with the rule that
allowed each (RFD-01…03) and payouts per seller and month (BIL-05)."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import jobs, tasks
from agora.billing.rating import period_of
from agora.db import Database
from agora.models import AuditEvent, Invoice
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import OPERATOR
from tests.web.ops_billing_market import seed_past_month


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def period(db: Database, offer_id: str) -> str:
    return seed_past_month(db)


@pytest.fixture
def ops(browser: TestClient, period: str) -> TestClient:
    assert sign_in(browser, *OPERATOR).status_code == 303
    return browser


def post(client: TestClient, url: str, page: str, **fields: str) -> Any:
    return client.post(url, data={"csrf_token": csrf_of(client.get(page)), **fields})


def close(ops: TestClient, period: str) -> Any:
    return post(ops, "/ops/billing/close", "/ops/billing", period=period)


def monthly(db: Database, period: str) -> list[tuple[int, str, int]]:
    with db.reader() as session:
        rows = session.execute(
            select(Invoice.id, Invoice.state, Invoice.total_cents)
            .where(Invoice.period == period, Invoice.kind == "monthly")
            .order_by(Invoice.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def closed(ops: TestClient, db: Database, period: str) -> list[tuple[int, str, int]]:
    assert close(ops, period).status_code == 303
    jobs.Worker(db).run_until_idle()
    return monthly(db, period)


@pytest.mark.rule("BIL-03")
def test_a_month_is_closed_from_the_page_with_progress_from_the_jobs(
    ops: TestClient, db: Database, period: str
) -> None:
    row = text_of(ops.get("/ops/billing").text)
    assert f"{period} Open" in row and "Closing again is safe" in row
    response = close(ops, period)
    assert response.status_code == 303 and response.headers["location"] == f"/ops/billing#period-{period}"
    progress = ops.get(f"/ops/billing/{period}/progress").text
    assert "Closing" in progress and 'hx-trigger="every 1s"' in progress
    worker = jobs.Worker(db)
    seen = set()
    while worker.run_once():
        words = text_of(ops.get(f"/ops/billing/{period}/progress").text)
        seen |= set(re.findall(r"(\d+) of (\d+) buyers invoiced", words))
    assert ("0", "3") in seen and ("3", "3") in seen  # counted from the invoice jobs, before and after
    final = ops.get(f"/ops/billing/{period}/progress").text
    assert "Closed" in final and "hx-trigger" not in final
    assert "2 invoices" in text_of(final)
    [event] = [e for e in audit(db) if e.action == "billing.close"]
    assert (event.actor, event.target_id, event.after) == ("operator:ops", period, {"period": period, "run": "queued"})


@pytest.mark.rule("BIL-03")
def test_closing_again_writes_nothing_twice(ops: TestClient, db: Database, period: str) -> None:
    first = closed(ops, db, period)
    assert len(first) == 2
    again = close(ops, period)
    assert again.status_code == 303
    assert "already asked to close" in unescape(ops.get("/ops/billing").text)
    jobs.Worker(db).run_until_idle()
    assert monthly(db, period) == first


def test_a_month_that_has_not_ended_cannot_be_closed(ops: TestClient, db: Database) -> None:
    from agora import clock

    current = period_of(clock.now())
    assert close(ops, current).status_code == 303
    assert f"{current} has not ended yet" in unescape(ops.get("/ops/billing").text)
    assert close(ops, "2026-13").status_code == 303
    assert "is a month, YYYY-MM" in unescape(ops.get("/ops/billing").text)
    assert ops.get("/ops/billing/nonsense/progress").status_code == 404


def test_invoices_are_found_by_buyer_seller_period_and_state(ops: TestClient, db: Database, period: str) -> None:
    (first, _, _), (second, _, _) = closed(ops, db, period)
    page = ops.get("/ops/invoices", params={"period": period, "kind": "monthly"}).text
    assert f'id="inv-{first}"' in page and f'id="inv-{second}"' in page
    only = ops.get("/ops/invoices", params={"buyer": "444455556666", "period": period}).text
    assert "buyer 444455556666" in only and "buyer 111122223333" not in only
    assert "No invoice matches" in ops.get("/ops/invoices", params={"seller": "openfield", "period": period}).text
    assert f'id="inv-{first}"' in ops.get("/ops/invoices", params={"seller": "acme", "period": period}).text
    assert "No invoice matches" in ops.get("/ops/invoices", params={"state": "paid", "period": period}).text


def test_mark_paid_and_void_with_its_credit_note(ops: TestClient, db: Database, period: str) -> None:
    (paid, _, _), (voided, _, cents) = closed(ops, db, period)
    page = f"/ops/invoices?period={period}"
    assert post(ops, f"/ops/invoices/{paid}/pay", page, back=page).status_code == 303
    assert f"Invoice {paid} is marked paid." in unescape(ops.get(page).text)
    refused = post(ops, f"/ops/invoices/{voided}/void", page, back=page, reason="")
    assert refused.status_code == 303 and monthly(db, period)[1][1] == "finalized"
    assert (
        post(ops, f"/ops/invoices/{voided}/void", page, back=page, reason="Billed to the wrong account").status_code
        == 303
    )
    words = text_of(ops.get(page).text)
    assert f"Invoice {voided} is void; credit note" in words
    assert [state for _, state, _ in monthly(db, period)] == ["paid", "void"]
    with db.reader() as session:
        note = session.scalar(select(Invoice).where(Invoice.corrects_id == voided))
        assert note is not None and note.kind == "credit_note" and note.total_cents == -cents
    notes = ops.get("/ops/invoices", params={"kind": "credit_note"}).text
    assert f"Credit note {note.id}" in notes and "corrects" in notes
    # a paid invoice is refunded, not voided: the service's refusal is shown
    post(ops, f"/ops/invoices/{paid}/void", page, back=page, reason="oops")
    assert "a paid invoice is refunded, not voided" in unescape(ops.get(page).text)
    actions = [(e.action, e.target_id) for e in audit(db) if e.action.startswith("invoice.")]
    assert actions == [("invoice.pay", str(paid)), ("invoice.void", str(voided))]


@pytest.mark.rule("RFD-05")
@pytest.mark.rule("BIL-05")
def test_refunds_show_their_rule_and_payouts_per_seller(ops: TestClient, db: Database, period: str) -> None:
    (_, _, _), (voided, _, _) = closed(ops, db, period)
    page = f"/ops/invoices?period={period}"
    post(ops, f"/ops/invoices/{voided}/void", page, back=page, reason="Billed to the wrong account")
    words = text_of(ops.get("/ops/refunds").text)
    assert "the invoice was voided by the operator" in words
    assert "operator:ops: Billed to the wrong account" in words
    assert f"{period} · Acme Corp (acme)" in words  # the month's payout to the seller
    # RFD-03: Globex's annual purchase of northwind-db started months ago: no window open for it
    assert "northwind-db: 2 ×" not in words


def audit(db: Database) -> list[AuditEvent]:
    with db.reader() as session:
        found = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        session.expunge_all()
        return found


def test_invoice_counts_match_the_period_row(ops: TestClient, db: Database, period: str) -> None:
    invoices = closed(ops, db, period)
    with db.reader() as session:
        total = session.scalar(
            select(func.sum(Invoice.total_cents)).where(Invoice.period == period, Invoice.kind == "monthly")
        )
    row = text_of(ops.get(f"/ops/billing/{period}/progress").text)
    assert f"{len(invoices)} invoices, ${Decimal(total) / 100:,.2f}" in row


@pytest.mark.rule("RFD-03")
def test_an_annual_purchase_inside_its_refund_windows_is_listed_with_their_ends(ops: TestClient, db: Database) -> None:
    from datetime import timedelta

    from agora import clock
    from agora.manifest.loader import load_data
    from tests.web.market import manifest

    bought = clock.now() - timedelta(hours=1)
    data = manifest()
    data["subscriptions"].append(
        {"buyer": "777788889999", "product": "acme-vault", "at": bought.isoformat(), "annual": {"m5.large": 1}}
    )
    with db.unit_of_work() as session:
        load_data(data, session)
    words = text_of(ops.get("/ops/refunds").text)
    assert "acme-vault: 1 × m5.large" in words
    full, prorata = bought + timedelta(hours=48), bought + timedelta(days=14)
    assert f"full refund (support or seller): {full.day} {full:%B %Y} {full:%H:%M} UTC" in words
    assert f"pro-rata refund (seller only): {prorata.day} {prorata:%B %Y} {prorata:%H:%M} UTC" in words
    assert "1 annual purchase still inside a refund window" in text_of(ops.get("/ops").text)
