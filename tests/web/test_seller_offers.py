"""The seller's private offers through the TestClient, on SQLite and PostgreSQL: the list with status and
acceptance, a new offer for one buyer with its own prices, deadline, a payment schedule that must sum to the
total and its own EULA PDF (OFR-01), **Extend offer** and the freeze after it (OFR-02), the buyer seeing
it (OFR-03); the service's errors next to their fields; a buyer gets 403, another seller's product 404."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import clock
from agora.auth import Principal
from agora.db import Database
from agora.models import Offer, Role, Seller
from agora.offers import service
from agora.pricing.schema import PricingDocument
from tests.catalog.files import pdf
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, SELLER

BUYER_ACCOUNT = "111122223333"


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def seller(browser: TestClient) -> TestClient:
    assert sign_in(browser, *SELLER).status_code == 303
    return browser


def offer_form(client: TestClient, product: str = "acme-vault", **fields: str) -> dict[str, str]:
    page = client.get(f"/seller/offers/new?product={product}")
    assert page.status_code == 200, page.text
    deadline = (clock.now() + timedelta(days=20)).date().isoformat()
    form = {
        "csrf_token": csrf_of(page),
        "product": product,
        "buyer": BUYER_ACCOUNT,
        "duration_days": "730",
        "accept_by": deadline,
        "hourly/m5.large": "0.07",
    }
    form.update(fields)
    return form


def create(client: TestClient, form: dict[str, str], eula: bytes | None = None, name: str = "terms.pdf") -> Any:
    files = (
        {"eula": (name, eula, "application/pdf")}
        if eula is not None
        else {"eula": ("", b"", "application/octet-stream")}
    )
    return client.post("/seller/offers", data=form, files=files)


def offers_count(db: Database) -> int:
    with db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Offer)) or 0)


def test_the_list_shows_each_offer_with_its_status(seller: TestClient, offer_id: str) -> None:
    page = seller.get("/seller/offers")
    assert page.status_code == 200
    text = text_of(page.text)
    assert offer_id in text and "Acme Vault Server" in text and BUYER_ACCOUNT in text
    assert "Extended" in text and "waiting for the buyer" in text
    assert '<option value="acme-vault">Acme Vault Server</option>' in page.text  # a public product of the seller
    assert "northwind" not in page.text  # another seller's products are not offered


@pytest.mark.rule("OFR-01")
@pytest.mark.rule("OFR-02")
@pytest.mark.rule("OFR-03")
def test_a_seller_creates_an_offer_with_a_schedule_and_eula_then_extends_it(seller: TestClient, db: Database) -> None:
    due_1 = (clock.now() + timedelta(days=30)).date().isoformat()
    due_2 = (clock.now() + timedelta(days=395)).date().isoformat()
    form = offer_form(
        seller,
        total="1500.00",
        instalment_at_0=due_1,
        instalment_amount_0="1000.00",
        instalment_at_1=due_2,
        instalment_amount_1="500",
    )
    answer = create(seller, form, pdf())
    assert answer.status_code == 303, answer.text
    with db.reader() as session:
        offer = session.scalars(select(Offer).order_by(Offer.id.desc())).first()
        assert offer is not None
        public_id = offer.public_id
        assert offer.state == "draft" and offer.duration_days == 730 and offer.total_cents == 150000
        assert offer.pricing["hourly"] == {"m5.large": "0.07", "m5.xlarge": "0.20"}  # its own prices
        assert [i["amount"] for i in offer.schedule or []] == ["1000.00", "500"]
        assert offer.eula_digest is not None
        assert offer.accept_by.strftime("%H:%M") == "23:59"
    listing = text_of(seller.get("/seller/offers").text)
    assert f"Offer {public_id} is saved as a draft" in listing and "Draft" in listing
    assert "$1,500.00 in 2 instalments, own EULA" in listing

    csrf = csrf_of(seller.get("/seller/offers"))
    extended = seller.post(f"/seller/offers/{public_id}/extend", data={"csrf_token": csrf})
    assert extended.status_code == 303
    page = text_of(seller.get("/seller/offers").text)
    assert f"Offer {public_id} is extended to buyer {BUYER_ACCOUNT}" in page
    again = seller.post(f"/seller/offers/{public_id}/extend", data={"csrf_token": csrf})
    assert "cannot be extended again; make a new offer [OFR-02]" in text_of(seller.get(again.headers["location"]).text)

    seller.cookies.clear()
    assert sign_in(seller, *BUYER).status_code == 303
    mine = seller.get(f"/account/offers/{public_id}")
    assert mine.status_code == 200
    shown = text_of(mine.text)
    assert "730 days from acceptance" in shown and "$1,500.00" in shown and "the offer's own EULA (PDF)" in shown
    assert seller.get(f"/account/offers/{public_id}/eula").content == pdf()


@pytest.mark.rule("OFR-01")
def test_a_schedule_that_does_not_sum_to_the_total_is_refused_next_to_it(seller: TestClient, db: Database) -> None:
    before = offers_count(db)
    due = (clock.now() + timedelta(days=30)).date().isoformat()
    form = offer_form(seller, total="1500", instalment_at_0=due, instalment_amount_0="1000")
    answer = create(seller, form)
    assert answer.status_code == 422
    assert re.search(r'<p class="field-error" id="schedule-error">instalments sum to 1000', answer.text)
    assert "[OFR-01]" in answer.text
    assert 'value="1500"' in answer.text and 'value="0.07"' in answer.text  # what was typed is kept
    assert offers_count(db) == before


@pytest.mark.rule("OFR-01")
@pytest.mark.rule("LST-03")
def test_the_services_rules_are_shown_next_to_their_fields(seller: TestClient, db: Database) -> None:
    before = offers_count(db)
    too_long = create(seller, offer_form(seller, duration_days="2000"))
    assert too_long.status_code == 422
    assert re.search(r'id="duration_days-error">must be 1 to 1096 days', too_long.text)
    unknown = create(seller, offer_form(seller, buyer="999999999999"))
    assert unknown.status_code == 422 and 'id="buyer-error">no buyer account 999999999999' in unknown.text
    past = create(seller, offer_form(seller, accept_by=(clock.now() - timedelta(days=1)).date().isoformat()))
    assert past.status_code == 422 and 'id="accept_by-error">the acceptance deadline must be in the future' in past.text
    bad_price = create(seller, offer_form(seller, **{"hourly/m5.large": "cheap"}))
    assert bad_price.status_code == 422 and 'aria-invalid="true"' in bad_price.text
    not_pdf = create(seller, offer_form(seller), b"%PDF-1.4 not really a pdf", "terms.pdf")
    assert not_pdf.status_code == 422 and re.search(r'id="file-error">a eula must be PDF', not_pdf.text)
    too_big = create(seller, offer_form(seller), pdf() + b"%" * (11 * 1024 * 1024), "big.pdf")
    assert too_big.status_code == 413 and re.search(r'id="file-error">a eula may be at most 10 MB', too_big.text)
    blank = create(seller, offer_form(seller, buyer="", duration_days="", accept_by=""))
    assert blank.status_code == 422
    assert all(f'id="{name}-error"' in blank.text for name in ("buyer", "duration_days", "accept_by"))
    assert offers_count(db) == before


def test_a_buyer_gets_403_and_another_sellers_product_is_404(browser: TestClient, db: Database) -> None:
    assert browser.get("/seller/offers").status_code == 303  # anonymous: sign in first
    assert sign_in(browser, *BUYER).status_code == 303
    assert browser.get("/seller/offers").status_code == 403
    assert browser.get("/seller/offers/new?product=acme-vault").status_code == 403
    browser.cookies.clear()
    assert sign_in(browser, *SELLER).status_code == 303
    assert browser.get("/seller/offers/new?product=northwind-db").status_code == 404
    form = offer_form(browser)
    form["product"] = "northwind-db"
    assert create(browser, form).status_code == 404
    with db.unit_of_work() as session:  # another seller's offer cannot be extended by this one
        northwind = session.scalar(select(Seller).where(Seller.handle == "northwind"))
        assert northwind is not None
        northwind.data_sharing = True
        session.flush()
        made = service.create(
            session,
            Principal(Role.SELLER, northwind.id, "northwind"),
            {
                "product": "northwind-db",
                "buyer": BUYER_ACCOUNT,
                "pricing": PricingDocument.model_validate({"hourly": {"r6g.large": "0.2"}}),
                "duration_days": 30,
                "accept_by": clock.now() + timedelta(days=3),
            },
        )
        other = made.public_id
    csrf = csrf_of(browser.get("/seller/offers"))
    assert browser.post(f"/seller/offers/{other}/extend", data={"csrf_token": csrf}).status_code == 404
    assert other not in browser.get("/seller/offers").text
