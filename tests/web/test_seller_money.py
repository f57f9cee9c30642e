"""The seller portal's money pages through the TestClient (SQLite, and PostgreSQL when configured): the
dashboard with what needs attention, usage over a range with its CSV (formula-safe) and metering errors
(RFD-02), revenue with refunds as negatives, disbursement statements with the listing fee (BIL-05), and
refunds (RFD-01, RFD-03, RFD-05). A seller only ever sees its own products, buyers and money."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from agora import clock
from agora.billing import payouts
from agora.db import Database
from agora.identities.passwords import set_password
from agora.manifest.loader import load_data
from agora.models import (
    AnnualPurchase,
    Disbursement,
    DisbursementLine,
    FeeRate,
    Invoice,
    InvoiceLine,
    Product,
    Role,
    Seller,
    UsageRecord,
)
from tests.web.activity import ACME, seed_activity
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, SELLER

NORTHWIND = ("sales@northwind.example", "northwind-pass-1")
EVIL_CUSTOMER = "-2-3.A1:A9"  # within the customer identifier's alphabet, and a formula to a spreadsheet


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def json_block(html: str, block_id: str) -> dict:  # type: ignore[type-arg]
    match = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', html, re.S)
    assert match, f"no JSON block {block_id}"
    return json.loads(unescape(match.group(1)))  # type: ignore[no-any-return]


def billed_in(db: Database, period: str, code: str = "acme-analytics") -> str:
    """What the month's invoices billed for the product, as the service wrote them."""
    with db.reader() as session:
        cents = session.scalar(
            select(func.sum(InvoiceLine.amount_cents))
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .join(Product, Product.id == InvoiceLine.product_id)
            .where(Invoice.period == period, Product.code == code, InvoiceLine.amount_cents > 0)
        )
    return f"{(cents or 0) / 100:.2f}"


def with_northwind_sign_in(db: Database) -> None:
    """The demo's second seller gets an e-mail and a password, to sign in as the stranger."""
    with db.unit_of_work() as session:
        northwind = session.scalar(select(Seller).where(Seller.handle == "northwind"))
        assert northwind is not None
        northwind.email = NORTHWIND[0]
        set_password(session, Role.SELLER, northwind.id, NORTHWIND[1], actor="test")


@pytest.fixture
def period(db: Database, offer_id: str) -> str:
    """Usage on the last ten days and last month, last month closed and invoiced, a 2.00 refund of it."""
    return seed_activity(db)


@pytest.fixture
def seller(browser: TestClient, period: str) -> TestClient:
    assert sign_in(browser, *SELLER).status_code == 303
    return browser


# --- dashboard -------------------------------------------------------------------------------------------------


def test_the_dashboard_shows_revenue_subscribers_usage_and_what_needs_attention(
    seller: TestClient, db: Database, period: str
) -> None:
    with db.unit_of_work() as session:
        draft = session.scalar(select(Product).where(Product.code == "acme-edge-proxy"))
        assert draft is not None
        draft.state, draft.rejection_reason = "draft", "The logo is blurred"
    draft = {"code": "acme-draft", "seller": "acme", "kind": "saas", "title": "Acme Draft", "state": "draft",
             "short_description": "Not ready", "category": "analytics", "regions": ["us-east-1"]}  # fmt: skip
    with db.unit_of_work() as session:
        load_data({"products": [draft]}, session)
    soon = (clock.now() + timedelta(days=2)).isoformat()
    offer = {"product": "acme-vault", "buyer": "444455556666", "pricing": {"hourly": {"m5.large": "0.08"}},
             "duration_days": 30, "accept_by": soon}  # fmt: skip
    made = seller.post("/api/v1/offers", json=offer, headers=ACME)
    assert made.status_code == 201, made.text
    assert seller.post(f"/api/v1/offers/{made.json()['id']}/extend", headers=ACME).status_code == 200

    page = seller.get("/seller")
    assert page.status_code == 200
    words = text_of(page.text)
    chart = json_block(page.text, "revenue-chart-data")
    this_month = clock.now().strftime("%Y-%m")
    billed = billed_in(db, period)
    assert chart["money"] is True and chart["labels"][-2:] == [period, this_month]
    analytics = next(s for s in chart["series"] if s["label"] == "acme-analytics")
    assert analytics["values"][-2:] == [billed, "-2.00"]  # the refund is a negative in the month it was issued
    assert 'data-chart="revenue-chart-data"' in page.text and "/static/vendor/chart.umd.min.js" in page.text
    assert f"{this_month} $0.00 −$2.00 −$2.00" in words and f"{period} ${billed}" in words
    assert "Acme Analytics 1 Acme CRM 1 All products 2" in words  # active subscribers
    assert "acme-analytics users" in words  # usage of the last 30 days
    assert 'href="/seller/products/acme-edge-proxy"' in page.text and "was rejected: The logo is blurred" in words
    assert 'href="/seller/products/acme-draft"' in page.text
    assert re.search(r"Acme Draft needs \d+ more item\(s\) before review: assets.logo, assets.user_guide", words)
    assert 'href="/seller/offers"' in page.text and made.json()["id"] in words
    assert "<script>" not in page.text  # the data block is JSON, never script


def test_a_buyer_gets_403_and_a_visitor_is_sent_to_sign_in(browser: TestClient) -> None:
    pages = ["/seller", "/seller/usage", "/seller/usage.csv", "/seller/revenue", "/seller/revenue.csv",
             "/seller/disbursements", "/seller/refunds", "/seller/keys", "/seller/webhooks"]  # fmt: skip
    for page in pages:
        assert browser.get(page).headers["location"].startswith("/login?next=")
    sign_in(browser, *BUYER)
    for page in pages:
        assert browser.get(page).status_code == 403, page


# --- usage -------------------------------------------------------------------------------------------------------


def test_usage_over_a_range_by_product_dimension_and_customer_with_its_csv(seller: TestClient, period: str) -> None:
    first = f"{period}-01"
    last = f"{period}-10"
    page = seller.get(f"/seller/usage?start={first}&end={last}&product=acme-analytics")
    assert page.status_code == 200
    chart = json_block(page.text, "usage-by-day-data")
    assert chart["labels"][0] == first and len(chart["labels"]) == 10
    assert [s["label"] for s in chart["series"]] == ["acme-analytics · users"]
    assert sum(chart["series"][0]["values"]) == 40 + 41 + 42
    assert chart["series"][0]["values"][2:5] == [40, 41, 42]
    words = text_of(page.text)
    assert "acme-analytics users cust-bluebird 111122223333 123" in words  # the total by customer

    exported = seller.get(f"/seller/usage.csv?start={first}&end={last}&product=acme-analytics")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["day"], r["quantity"]) for r in rows] == [(f"{period}-03", "40"), (f"{period}-04", "41"),
                                                          (f"{period}-05", "42")]  # fmt: skip
    assert {r["customer_identifier"] for r in rows} == {"cust-bluebird"}

    nothing = seller.get(f"/seller/usage.csv?start={first}&end={last}&product=northwind-db")
    assert nothing.text.strip().count("\n") == 0  # the header only: another seller's product reads empty


def test_a_usage_range_is_checked_and_refused_by_field(seller: TestClient) -> None:
    page = seller.get("/seller/usage?start=2026-13-01")
    assert page.status_code == 422
    assert 'href="#start"' in page.text and "must be a date written YYYY-MM-DD" in page.text
    backwards = seller.get("/seller/usage?start=2026-05-02&end=2026-05-01")
    assert backwards.status_code == 422 and "must be on or before the end date" in backwards.text
    too_long = seller.get("/seller/usage?start=2024-01-01&end=2026-01-01")
    assert too_long.status_code == 422 and "at most 366 days" in too_long.text
    assert seller.get("/seller/usage.csv?end=nope").status_code == 422


def test_the_usage_csv_is_formula_safe(seller: TestClient, db: Database) -> None:
    with db.unit_of_work() as session:
        load_data({"subscriptions": [{"buyer": "777788889999", "product": "acme-analytics",
                                      "at": (clock.now() - timedelta(days=3)).isoformat(),
                                      "customer_identifier": EVIL_CUSTOMER}]}, session)  # fmt: skip
    hour = clock.now().replace(minute=0, second=0, microsecond=0)
    record = {"product_code": "acme-analytics", "customer_identifier": EVIL_CUSTOMER, "dimension": "users",
              "quantity": 5, "timestamp": hour.isoformat()}  # fmt: skip
    assert seller.post("/api/v1/usage", json={"records": [record]}, headers=ACME).json()["accepted"] == 1
    exported = seller.get("/seller/usage.csv?customer=" + EVIL_CUSTOMER)
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[1][3] == "'" + EVIL_CUSTOMER and rows[1][5] == "5"


@pytest.mark.rule("RFD-02")
def test_a_seller_marks_records_as_metering_errors_with_a_reason(seller: TestClient, db: Database, period: str) -> None:
    first, last = f"{period}-01", f"{period}-10"
    page = seller.get(f"/seller/usage?start={first}&end={last}")
    ids = [int(i) for i in re.findall(r'name="record_id" value="(\d+)"', page.text)]
    assert len(ids) == 3
    form = {"csrf_token": csrf_of(page), "start": first, "end": last, "product": "", "dimension": "",
            "customer": "", "record_id": [str(ids[0])], "reason": ""}  # fmt: skip
    refused = seller.post("/seller/usage/errors", data=form)
    assert refused.status_code == 422 and "say what went wrong with the metering" in refused.text
    nothing = seller.post("/seller/usage/errors", data={**form, "record_id": [], "reason": "double counted"})
    assert nothing.status_code == 422 and "tick at least one record" in nothing.text

    done = seller.post("/seller/usage/errors", data={**form, "reason": "A bug double-counted users"})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/seller/usage?start={first}")
    after = seller.get(done.headers["location"])
    assert "1 record(s) confirmed as metering errors; 1 credit note(s) issued to the buyer" in text_of(after.text)
    assert "Metering error" in after.text
    assert sum(json_block(after.text, "usage-by-day-data")["series"][0]["values"]) == 123 - 42  # left out
    with db.reader() as session:
        marked = session.get_one(UsageRecord, ids[0])
        assert marked.error_id is not None
        note = session.scalar(select(Invoice).where(Invoice.source.like(f"credit:metering_error:{marked.error_id}:%")))
        assert note is not None and abs(note.total_cents + 525) <= 1  # 42 users × 0.125, the month re-rated


@pytest.mark.rule("RFD-02")
def test_another_sellers_records_cannot_be_marked(seller: TestClient, db: Database) -> None:
    with db.reader() as session:
        theirs = session.scalar(
            select(UsageRecord.id)
            .join(Product, Product.id == UsageRecord.product_id)
            .where(Product.code != "acme-analytics")
        )
        mine = session.scalar(select(UsageRecord.id).order_by(UsageRecord.id.desc()))
    assert mine is not None
    stranger = (theirs or 0) or mine + 10_000
    form = {"csrf_token": csrf_of(seller.get("/seller/usage")), "record_id": [str(stranger)], "reason": "not mine"}
    refused = seller.post("/seller/usage/errors", data=form)
    assert refused.status_code == 422
    assert f"no usage record {stranger} of your products" in refused.text


# --- revenue and disbursements ------------------------------------------------------------------------------------


def test_revenue_by_month_and_product_shows_refunds_as_negatives(seller: TestClient, db: Database, period: str) -> None:
    this_month = clock.now().strftime("%Y-%m")
    billed = billed_in(db, period)
    page = seller.get("/seller/revenue")
    assert page.status_code == 200
    words = text_of(page.text)
    assert f"{period} acme-analytics Software ${billed} $0.00 ${billed}" in words
    assert f"{this_month} acme-analytics Software $0.00 −$2.00 −$2.00" in words
    assert "Download CSV" in words and 'href="/seller/revenue.csv"' in page.text
    rows = list(csv.DictReader(io.StringIO(seller.get("/seller/revenue.csv").text)))
    analytics = [r for r in rows if r["product"] == "acme-analytics"]
    assert analytics == [
        {"period": period, "product": "acme-analytics", "category": "software", "billed": billed, "refunds": "0.00",
         "net": billed},
        {"period": this_month, "product": "acme-analytics", "category": "software", "billed": "0.00",
         "refunds": "-2.00", "net": "-2.00"},
    ]  # fmt: skip


@pytest.mark.rule("BIL-05")
def test_disbursements_show_each_statement_with_its_lines_and_listing_fee(
    seller: TestClient, db: Database, period: str
) -> None:
    with db.unit_of_work() as session:
        # The month's close paid out at no fee; made again with a 3 % listing fee configured.
        session.add(FeeRate(kind="*", family="*", percent=Decimal(3)))
        acme = session.scalar(select(Seller.id).where(Seller.handle == "acme"))
        old = session.scalars(select(Disbursement.id).where(Disbursement.seller_id == acme)).all()
        session.execute(delete(DisbursementLine).where(DisbursementLine.disbursement_id.in_(old)))
        session.execute(delete(Disbursement).where(Disbursement.id.in_(old)))
        session.flush()
        payouts.disburse(session, period)
        made = session.scalar(select(Disbursement).where(Disbursement.seller_id == acme, Disbursement.period == period))
        assert made is not None
        statement = payouts.statement(session, made)
    page = seller.get("/seller/disbursements")
    words = text_of(page.text)
    assert f"{period} statement {statement['id']}" in words
    fee = statement["listing_fee"]
    assert Decimal(fee) == (Decimal(statement["gross"]) * Decimal("0.03")).quantize(Decimal("0.01")) != 0
    assert f"Listing fee −${fee}" in words and f"Paid to you ${statement['net']}" in words
    assert f"Billed ${statement['gross']}" in words
    rows = list(csv.DictReader(io.StringIO(seller.get("/seller/disbursements.csv").text)))
    assert rows and all(r["period"] == period and r["product"] == "acme-analytics" for r in rows)
    assert sum(float(r["fee"]) for r in rows) == pytest.approx(float(fee))


# --- refunds -------------------------------------------------------------------------------------------------------


def _refund_form(client: TestClient, period: str, **fields: object) -> dict[str, object]:
    form: dict[str, object] = {"csrf_token": csrf_of(client.get("/seller/refunds")), "buyer_account": "111122223333",
                               "buyer_email": "ops@bluebird.example", "product": "acme-analytics", "periods": [period],
                               "amount": "3.00", "reason": "Dashboards were slow"}  # fmt: skip
    return {**form, **fields}


@pytest.mark.rule("RFD-01")
@pytest.mark.rule("RFD-05")
def test_a_seller_approves_a_software_refund(seller: TestClient, period: str) -> None:
    page = seller.get("/seller/refunds")
    assert f'name="periods" value="{period}"' in page.text
    assert "Dashboards were down for a day" in text_of(page.text)  # the refund made before is listed

    wrong = seller.post("/seller/refunds", data=_refund_form(seller, period, buyer_email="someone@else.example"))
    assert wrong.status_code == 422
    assert 'href="#buyer_email"' in wrong.text and "does not match the buyer account's e-mail" in text_of(wrong.text)
    too_much = seller.post("/seller/refunds", data=_refund_form(seller, period, amount="100.00"))
    assert too_much.status_code == 422 and "[RFD-05]" in too_much.text
    bad = seller.post("/seller/refunds", data=_refund_form(seller, period, amount="1.234"))
    assert bad.status_code == 422 and "at most two decimal places" in bad.text
    stranger = seller.post("/seller/refunds", data=_refund_form(seller, period, buyer_account="777788889999"))
    assert stranger.status_code == 422 and "is not a customer of acme-analytics" in stranger.text

    done = seller.post("/seller/refunds", data=_refund_form(seller, period))
    assert done.status_code == 303
    after = text_of(seller.get("/seller/refunds").text)
    assert "Refund of $3.00 approved" in after and "Dashboards were slow −$3.00" in after
    this_month = clock.now().strftime("%Y-%m")
    assert f"{this_month} acme-analytics Software $0.00 −$5.00 −$5.00" in text_of(seller.get("/seller/revenue").text)


@pytest.mark.rule("RFD-03")
def test_annual_purchases_inside_a_refund_window_are_listed_and_refunded(
    seller: TestClient, db: Database, manual_clock: clock.ManualClock
) -> None:
    buyer = TestClient(seller.app, headers=dict(seller.headers), follow_redirects=False)
    sign_in(buyer, *BUYER)
    form = {"csrf_token": csrf_of(buyer.get("/products/acme-vault/subscribe")), "accept_eula": "yes",
            "annual-m5.large": "1"}  # fmt: skip
    assert buyer.post("/products/acme-vault/subscribe", data=form).status_code == 303
    with db.reader() as session:
        purchase = session.scalars(select(AnnualPurchase).order_by(AnnualPurchase.id.desc())).first()
        assert purchase is not None
    page = text_of(seller.get("/seller/refunds").text)
    full_until = purchase.starts_at + timedelta(hours=48)
    assert f"Full refund until {full_until.day} {full_until:%B %Y} {full_until:%H:%M} UTC" in page
    assert "Pro-rata refund until" in page
    assert "annual purchase still inside a refund window" in text_of(seller.get("/seller").text)

    manual_clock.advance(timedelta(hours=49))
    page = seller.get("/seller/refunds")
    assert "Refund in full</button>" not in page.text and "Refund pro rata</button>" in page.text
    csrf = csrf_of(page)
    late = seller.post(
        f"/seller/refunds/annual/{purchase.id}", data={"csrf_token": csrf, "mode": "full", "reason": "x"}
    )
    assert late.status_code == 422 and "a full refund is given within 48 hours of purchase [RFD-03]" in late.text
    done = seller.post(f"/seller/refunds/annual/{purchase.id}",
                       data={"csrf_token": csrf, "mode": "prorata", "reason": "Bought the wrong size"})  # fmt: skip
    assert done.status_code == 303
    after = text_of(seller.get("/seller/refunds").text)
    assert "Annual subscription refunded" in after and "Annual, pro rata" in after
    assert "None of your annual subscriptions is inside a refund window" in after


# --- isolation -----------------------------------------------------------------------------------------------------


def test_another_seller_sees_none_of_acmes_buyers_products_or_money(
    browser: TestClient, db: Database, period: str
) -> None:
    with_northwind_sign_in(db)
    with db.unit_of_work() as session:
        payouts.disburse(session, period)
    assert sign_in(browser, *NORTHWIND).status_code == 303
    for page in ["/seller", "/seller/usage", f"/seller/usage?start={period}-01&end={period}-10", "/seller/revenue",
                 "/seller/revenue.csv", "/seller/disbursements", "/seller/disbursements.csv", "/seller/refunds",
                 "/seller/usage.csv", "/seller/webhooks", "/seller/keys"]:  # fmt: skip
        answer = browser.get(page)
        assert answer.status_code == 200, page
        for acmes in (
            "acme-analytics",
            "cust-bluebird",
            "111122223333",
            "Acme Analytics",
            "AKIDACME",
            billed_in(db, period),
        ):
            assert acmes not in answer.text, (page, acmes)
