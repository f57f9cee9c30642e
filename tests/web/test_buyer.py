"""The buyer's pages through the TestClient: subscribing (LST-08, LST-09, PRC-10, SUB-03, PRC-11, SUB-06),
the console, cancelling (SUB-04, RFD-02, RFD-03), invoices with their PDF and CSV, private offers (OFR-03);
another buyer's objects are 404, other roles 403, anonymous visitors are sent to sign in."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from agora import clock
from agora.db import Database
from agora.manifest.loader import load_data
from agora.metering import platform
from agora.models import Invoice, Subscription
from tests.web.activity import seed_activity
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, OTHER_BUYER, SELLER


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def buyer(browser: TestClient) -> TestClient:
    assert sign_in(browser, *BUYER).status_code == 303
    return browser


def subscribe(client: TestClient, code: str, **fields: str) -> Response:
    form = {"csrf_token": csrf_of(client.get(f"/products/{code}/subscribe")), **fields}
    return client.post(f"/products/{code}/subscribe", data=form)


def subscription_of(db: Database, code: str, account: str = "111122223333") -> Subscription:
    with db.reader() as session:
        from agora.models import Buyer, Product

        found = session.scalar(
            select(Subscription)
            .join(Product, Product.id == Subscription.product_id)
            .join(Buyer, Buyer.id == Subscription.buyer_id)
            .where(Product.code == code, Buyer.account == account)
            .order_by(Subscription.id.desc())
        )
        assert found is not None
        session.expunge(found)
        return found


# --- subscribing -----------------------------------------------------------------------------------------------


@pytest.mark.rule("LST-08")
@pytest.mark.rule("SUB-02")
def test_a_trial_product_subscribes_once_the_eula_is_accepted(buyer: TestClient, db: Database) -> None:
    page = buyer.get("/products/acme-vault/subscribe")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "I accept the EULA" in words and ">Subscribe</button>" in page.text
    ends = clock.now() + timedelta(days=14)
    assert f"ends on {ends.day} {ends:%B %Y}" in words
    assert 'href="/legal/standard-contract"' in page.text

    refused = subscribe(buyer, "acme-vault")
    assert refused.status_code == 422
    assert 'href="#accept_eula"' in refused.text
    assert "You must accept the EULA to subscribe." in refused.text

    done = subscribe(buyer, "acme-vault", accept_eula="yes")
    assert done.status_code == 303
    subscription = subscription_of(db, "acme-vault")
    assert done.headers["location"] == f"/account/subscriptions/{subscription.id}"
    assert subscription.eula == "standard:v1" and subscription.trial_ends_at is not None
    account = text_of(buyer.get("/account").text)
    assert "Free trial ends" in account and f"{ends.day} {ends:%B %Y}" in account


@pytest.mark.rule("LST-09")
def test_an_enterprise_only_product_is_refused_in_words(buyer: TestClient, db: Database) -> None:
    product = {
        "code": "acme-enterprise",
        "seller": "acme",
        "kind": "saas",
        "title": "Acme Enterprise Hub",
        "short_description": "For large organisations",
        "category": "business-applications",
        "regions": ["us-east-1"],
        "refund_policy": "None: billing@acme.example",
        "enterprise_only": True,
        "state": "public",
        "pricing": {
            "usage": {
                "category": "users",
                "dimensions": [{"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.5"}],
            }
        },
    }
    with db.unit_of_work() as session:
        load_data({"products": [product]}, session)
    page = text_of(buyer.get("/products/acme-enterprise/subscribe").text)
    assert "Only enterprise accounts can subscribe" in page and "individual account" in page
    refused = subscribe(buyer, "acme-enterprise", accept_eula="yes")
    assert refused.status_code == 403
    assert "enterprise buyers only" in refused.text


@pytest.mark.rule("PRC-10")
def test_a_contract_is_priced_as_chosen_and_bought_with_the_subscription(buyer: TestClient, db: Database) -> None:
    page = buyer.get("/products/acme-crm/subscribe")
    assert 'hx-post="/products/acme-crm/subscribe/price"' in page.text
    token = csrf_of(page)
    partial = buyer.post(
        "/products/acme-crm/subscribe/price",
        data={"csrf_token": token, "duration_months": "12", "qty-seats": "5", "qty-sandboxes": "2"},
    )
    assert partial.status_code == 200 and "<html" not in partial.text
    words = text_of(partial.text)
    assert "$600.00" in words and "$1,000.00" in words and "$1,600.00" in words  # 5 × 120 + 2 × 500

    # without JavaScript, "Calculate price" shows the whole form again with the price
    fallback = buyer.post(
        "/products/acme-crm/subscribe",
        data={"csrf_token": token, "duration_months": "1", "qty-seats": "3", "action": "price"},
    )
    assert fallback.status_code == 200 and "$36.00" in text_of(fallback.text)
    assert not buyer.get("/account").text.count("Acme CRM")

    bad = subscribe(buyer, "acme-crm", accept_eula="yes", duration_months="12", **{"qty-seats": "lots"})
    assert bad.status_code == 422 and 'href="#quantities-seats"' in bad.text

    done = subscribe(buyer, "acme-crm", accept_eula="yes", duration_months="12", **{"qty-seats": "5"})
    assert done.status_code == 200  # SaaS: continue to the seller
    subscription = subscription_of(db, "acme-crm")
    detail = text_of(buyer.get(f"/account/subscriptions/{subscription.id}").text)
    assert "What you are entitled to" in detail and "seats 5" in detail
    with db.reader() as session:
        amounts = session.scalars(select(Invoice.total_cents).where(Invoice.kind == "upfront")).all()
    assert 60000 in amounts


@pytest.mark.rule("SUB-06")
def test_saas_continues_to_the_fulfillment_url_with_the_registration_token(buyer: TestClient) -> None:
    done = subscribe(buyer, "acme-crm", accept_eula="yes", duration_months="1", **{"qty-seats": "1"})
    assert done.status_code == 200
    link = re.search(r'href="(https://crm\.acme\.example/register\?[^"]+)"', done.text)
    assert link and "x-amzn-marketplace-token=" in unescape(link.group(1))
    assert "Set up your account" in done.text


@pytest.mark.rule("SUB-03")
def test_annual_subscriptions_are_bought_per_instance_type(buyer: TestClient, db: Database) -> None:
    done = subscribe(buyer, "acme-vault", accept_eula="yes", **{"annual-m5.xlarge": "2", "auto_renew": "yes"})
    assert done.status_code == 303
    detail = text_of(buyer.get(done.headers["location"]).text)
    assert "m5.xlarge 2 $2,800.00" in detail and "automatic" in detail
    assert "refund it in full" in detail  # RFD-03: inside 48 hours


@pytest.mark.rule("PRC-11")
def test_byol_takes_a_license_reference(buyer: TestClient, db: Database) -> None:
    page = buyer.get("/products/northwind-backup/subscribe")
    assert '<label for="license_reference">License reference</label>' in page.text
    done = subscribe(buyer, "northwind-backup", accept_eula="yes", license_reference="NW-LIC-0042")
    assert done.status_code == 303
    assert subscription_of(db, "northwind-backup").license_reference == "NW-LIC-0042"
    refused = subscribe(buyer, "acme-vault", accept_eula="yes", license_reference="X")
    assert refused.status_code == 422 and 'href="#license_reference"' in refused.text


def test_a_second_subscription_points_to_the_first(buyer: TestClient) -> None:
    page = text_of(buyer.get("/products/acme-analytics/subscribe").text)
    assert "You already subscribe to Acme Analytics" in page


# --- the console -----------------------------------------------------------------------------------------------


def test_the_console_lists_subscriptions_and_offers(buyer: TestClient, offer_id: str) -> None:
    page = buyer.get("/account")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Acme Analytics" in words and "Active" in words
    assert f'href="/account/offers/{offer_id}"' in page.text


def test_an_empty_console_points_to_the_storefront(browser: TestClient, db: Database) -> None:
    newcomer = {"account": "999900001111", "email": "new@empty.example", "password": "empty-buyer-pass-1"}
    with db.unit_of_work() as session:
        load_data({"buyers": [newcomer]}, session)
    assert sign_in(browser, newcomer["email"], newcomer["password"]).status_code == 303
    page = browser.get("/account")
    assert "You have no active subscriptions" in text_of(page.text)
    assert '<a class="button" href="/search">Browse products</a>' in page.text
    assert "No invoices yet" in text_of(browser.get("/account/invoices").text)


def test_usage_per_day_is_a_chart_fed_by_json_and_a_table(buyer: TestClient, db: Database) -> None:
    seed_activity(db)
    subscription = subscription_of(db, "acme-analytics")
    page = buyer.get(f"/account/subscriptions/{subscription.id}")
    assert page.status_code == 200
    assert '<script type="application/json" id="usage-data">' in page.text
    assert '<script src="/static/usage-chart.js" defer></script>' in page.text
    assert "<script>" not in page.text  # no inline script (CSP)
    data = re.search(r'id="usage-data">(.*?)</script>', page.text, re.S)
    assert data and '"dimension": "users"' in data.group(1)
    assert 'aria-label="Usage per day"' in page.text


@pytest.mark.rule("SUB-04")
def test_cancelling_explains_the_monthly_fee_and_asks_to_confirm(buyer: TestClient, db: Database) -> None:
    assert subscribe(buyer, "northwind-monitor", accept_eula="yes").status_code == 303
    subscription = subscription_of(db, "northwind-monitor")
    detail = buyer.get(f"/account/subscriptions/{subscription.id}")
    assert ">Cancel subscription</button>" in detail.text and 'method="post"' in detail.text  # one click cancels
    confirm = buyer.get(f"/account/subscriptions/{subscription.id}/cancel")
    words = text_of(confirm.text)
    assert "Monthly fee $10.00" in words and "1 day at 1/30 of the fee" in words  # 300 / 30, sign-up day
    no_token = buyer.post(f"/account/subscriptions/{subscription.id}/cancel")
    assert no_token.status_code == 403
    done = buyer.post(f"/account/subscriptions/{subscription.id}/cancel", data={"csrf_token": csrf_of(confirm)})
    assert done.status_code == 303
    assert subscription_of(db, "northwind-monitor").ended_at is not None
    ended = text_of(buyer.get(done.headers["location"]).text)
    assert "is cancelled" in ended and "Cancel subscription" not in ended
    assert "Ended subscriptions" in text_of(buyer.get("/account").text)


@pytest.mark.rule("RFD-02")
def test_cancelling_a_trial_costs_nothing_for_the_software(buyer: TestClient, db: Database) -> None:
    assert subscribe(buyer, "northwind-ci", accept_eula="yes").status_code == 303
    subscription = subscription_of(db, "northwind-ci")
    words = text_of(buyer.get(f"/account/subscriptions/{subscription.id}/cancel").text)
    assert "Free trial" in words and "costs nothing for the software" in words


@pytest.mark.rule("RFD-03")
def test_cancelling_with_an_annual_purchase_explains_its_refund_windows(buyer: TestClient, db: Database) -> None:
    subscribe(buyer, "northwind-db", accept_eula="yes", **{"annual-r6g.large": "1"})
    subscription = subscription_of(db, "northwind-db")
    words = text_of(buyer.get(f"/account/subscriptions/{subscription.id}/cancel").text)
    assert "Annual subscription: 1 × r6g.large $1,200.00" in words
    assert "48 hours" in words and "will not renew" in words


# --- invoices --------------------------------------------------------------------------------------------------


def test_invoices_show_lines_credit_notes_and_pdf_and_csv(buyer: TestClient, db: Database) -> None:
    period = seed_activity(db)
    page = buyer.get("/account/invoices")
    words = text_of(page.text)
    assert "Invoice" in words and period in words and "hourly record(s) received" in words
    assert "Credit note" in words and "$2.00 credited" in words and "corrects invoice" in words
    with db.reader() as session:
        mine = session.scalars(select(Invoice.id).where(Invoice.period == period, Invoice.kind == "monthly")).all()
    pdf = buyer.get(f"/account/invoices/{mine[0]}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-type"] == "application/pdf"
    csv = buyer.get(f"/account/invoices/{mine[0]}.csv")
    assert csv.status_code == 200 and csv.text.startswith("invoice,buyer,period")
    assert buyer.get("/account/invoices.csv").text.count("acme-analytics") >= 2


def test_another_buyers_invoice_subscription_and_offer_are_404(
    browser: TestClient, db: Database, offer_id: str
) -> None:
    seed_activity(db)
    theirs = subscription_of(db, "acme-analytics")
    with db.reader() as session:
        invoice = session.scalar(select(Invoice.id).where(Invoice.kind == "monthly"))
    assert sign_in(browser, *OTHER_BUYER).status_code == 303
    for url in (
        f"/account/subscriptions/{theirs.id}",
        f"/account/subscriptions/{theirs.id}/cancel",
        f"/account/invoices/{invoice}.pdf",
        f"/account/invoices/{invoice}.csv",
        f"/account/offers/{offer_id}",
    ):
        assert browser.get(url).status_code == 404, url
    page = browser.get("/account")
    posted = browser.post(f"/account/subscriptions/{theirs.id}/cancel", data={"csrf_token": csrf_of(page)})
    assert posted.status_code == 404


def test_a_seller_gets_403_and_an_anonymous_visitor_signs_in(browser: TestClient, offer_id: str) -> None:
    urls = ("/account", "/account/invoices", "/account/subscriptions/1", "/products/acme-vault/subscribe",
            f"/account/offers/{offer_id}", "/account/invoices/1.pdf")  # fmt: skip
    for url in urls:
        answer = browser.get(url)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), url
    assert sign_in(browser, *SELLER).status_code == 303
    for url in urls:
        assert browser.get(url).status_code == 403, url


def test_a_form_without_its_csrf_token_is_403(buyer: TestClient, offer_id: str) -> None:
    assert buyer.post("/products/acme-vault/subscribe", data={"accept_eula": "yes"}).status_code == 403
    assert buyer.post(f"/account/offers/{offer_id}/accept", data={"accept_eula": "yes"}).status_code == 403
    assert buyer.post("/products/acme-crm/subscribe/price", data={"duration_months": "1"}).status_code == 403


# --- private offers --------------------------------------------------------------------------------------------


@pytest.mark.rule("OFR-03")
def test_the_named_buyer_reads_and_accepts_the_offer(buyer: TestClient, db: Database, offer_id: str) -> None:
    page = buyer.get(f"/account/offers/{offer_id}")
    words = text_of(page.text)
    assert "Private offer for Acme Vault Server" in words and "Accept by" in words and "365 days" in words
    assert "$0.08" in words and ">Accept offer</button>" in page.text
    unticked = buyer.post(f"/account/offers/{offer_id}/accept", data={"csrf_token": csrf_of(page)})
    assert unticked.status_code == 422 and "accept the EULA" in unticked.text
    done = buyer.post(f"/account/offers/{offer_id}/accept", data={"csrf_token": csrf_of(page), "accept_eula": "yes"})
    assert done.status_code == 303
    assert subscription_of(db, "acme-vault").offer_id is not None
    assert "You accepted this offer" in text_of(buyer.get(f"/account/offers/{offer_id}").text)


@pytest.mark.rule("OFR-03")
def test_an_offer_past_its_deadline_cannot_be_accepted(browser: TestClient, offer_id: str) -> None:
    with clock.use_clock(clock.ManualClock(clock.now() + timedelta(days=31))):
        assert sign_in(browser, *BUYER).status_code == 303
        expired = browser.get(f"/account/offers/{offer_id}")
        assert "can no longer be accepted" in text_of(expired.text) and "Accept offer" not in expired.text
        posted = browser.post(
            f"/account/offers/{offer_id}/accept", data={"csrf_token": csrf_of(expired), "accept_eula": "yes"}
        )
    assert posted.status_code == 409 and "ask the seller for a new one" in posted.text


@pytest.mark.rule("MTR-06")
def test_instance_runs_are_listed_and_stop_when_cancelled(buyer: TestClient, db: Database) -> None:
    assert subscribe(buyer, "acme-vault", accept_eula="yes").status_code == 303
    subscription = subscription_of(db, "acme-vault")
    # as POST /api/v1/instances records it; a second later, since runs start on whole seconds and one started
    # in the second of the subscription is refused as before it
    at = clock.now() + timedelta(seconds=1)
    with db.unit_of_work() as session:
        platform.start_instance(
            session, session.get_one(Subscription, subscription.id), "i-0web1", "m5.large", at, "us-east-1"
        )
    page = text_of(buyer.get(f"/account/subscriptions/{subscription.id}").text)
    assert "Instance runs" in page and "i-0web1 m5.large" in page and "running" in page
    confirm = buyer.get(f"/account/subscriptions/{subscription.id}/cancel")
    buyer.post(f"/account/subscriptions/{subscription.id}/cancel", data={"csrf_token": csrf_of(confirm)})
    assert (
        "running" not in text_of(buyer.get(f"/account/subscriptions/{subscription.id}").text).split("Instance runs")[1]
    )
