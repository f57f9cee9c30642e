"""Private offers: one buyer, own terms (OFR-01), frozen once extended (OFR-02), seen and accepted only by
that buyer before the deadline (OFR-03), only from sellers enrolled in data sharing (SEL-03)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock
from agora.db import Database
from agora.manifest.loader import load_data
from agora.models import Notification, Subscription
from agora.pricing import service as pricing
from tests.catalog.files import pdf as pdf_bytes

ACME = {"Authorization": "Bearer acme-seller-token-1"}
NOSHARE = {"Authorization": "Bearer noshare-seller-tok"}
BUYER = {"Authorization": "Bearer buyer-token-0001"}
OTHER_BUYER = {"Authorization": "Bearer buyer-token-0002"}
OPS = {"Authorization": "Bearer ops-operator-token"}
PUBLIC_PRICING = {"hourly": {"m5.large": "0.10"}}
OFFER_PRICING = {"hourly": {"m5.large": "0.07"}}


@pytest.fixture
def market(db: Database) -> Database:
    product = {
        "kind": "ami",
        "short_description": "Vault",
        "category": "security",
        "regions": ["us-east-1"],
        "refund_policy": "48 h: billing@acme.example",
        "state": "public",
        "pricing": PUBLIC_PRICING,
    }
    data = {
        "operators": [{"id": "ops", "api_tokens": ["ops-operator-token"]}],
        "sellers": [
            {
                "id": "acme",
                "name": "Acme",
                "tax_form": "W-9",
                "data_sharing": True,
                "api_tokens": ["acme-seller-token-1"],
            },
            {"id": "noshare", "name": "No Share", "tax_form": "W-9", "api_tokens": ["noshare-seller-tok"]},
        ],
        "buyers": [
            {"account": "111122223333", "email": "a@buyer.example", "api_tokens": ["buyer-token-0001"]},
            {"account": "444455556666", "email": "b@buyer.example", "api_tokens": ["buyer-token-0002"]},
        ],
        "products": [
            {"code": "acme-vault", "seller": "acme", "title": "Acme Vault", **product},
            {"code": "noshare-db", "seller": "noshare", "title": "No Share DB", **product},
        ],
    }
    with db.unit_of_work() as session:
        load_data(data, session)
    return db


def _offer(**overrides: Any) -> dict[str, Any]:
    body = {
        "product": "acme-vault",
        "buyer": "111122223333",
        "pricing": OFFER_PRICING,
        "duration_days": 730,
        "accept_by": (clock.now() + timedelta(days=14)).isoformat(),
    }
    return body | overrides


def _create(client: TestClient, **overrides: Any) -> str:
    response = client.post("/api/v1/offers", json=_offer(**overrides), headers=ACME)
    assert response.status_code == 201, response.text
    offer_id: str = response.json()["id"]
    return offer_id


@pytest.mark.rule("OFR-01")
@pytest.mark.rule("OFR-03")
def test_an_extended_offer_is_accepted_by_its_buyer_on_its_own_terms(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    """OFR-01: own prices, a duration once accepted, a deadline, a custom EULA PDF. OFR-03: the buyer gets a
    link, sees a banner on the product page, and accepting starts a subscription on the offer's prices."""
    offer_id = _create(client)
    eula = client.post(f"/api/v1/offers/{offer_id}/eula", files={"file": ("terms.pdf", pdf_bytes())}, headers=ACME)
    assert eula.status_code == 200 and eula.json()["eula"]["kind"] == "custom"
    assert client.get(f"/api/v1/offers/{offer_id}", headers=BUYER).status_code == 404, "a draft is the seller's"
    extended = client.post(f"/api/v1/offers/{offer_id}/extend", headers=ACME)
    assert extended.json()["state"] == "extended"
    with market.reader() as session:
        (note,) = session.scalars(select(Notification).where(Notification.kind == "offer_extended"))
    assert note.to == "a@buyer.example" and f"/api/v1/offers/{offer_id}" in note.body

    page = client.get("/api/v1/catalog/acme-vault", headers=BUYER).json()
    assert [b["offer"] for b in page["private_offers"]] == [offer_id]
    assert client.get("/api/v1/catalog/acme-vault", headers=OTHER_BUYER).json()["private_offers"] == []
    assert client.get("/api/v1/catalog/acme-vault").json()["private_offers"] == []
    served = client.get(f"/api/v1/offers/{offer_id}/eula", headers=BUYER).headers
    assert served["content-type"] == "application/pdf"
    assert served["content-security-policy"] == "default-src 'none'; sandbox"
    assert served["x-content-type-options"] == "nosniff"
    assert served["content-disposition"].startswith("attachment; ")

    manual_clock.advance(timedelta(days=1))
    refused = client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": False}, headers=BUYER)
    assert refused.status_code == 422
    accepted = client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": True}, headers=BUYER)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["state"] == "accepted"
    assert body["ends_at"] == (manual_clock.now() + timedelta(days=730)).isoformat()
    with market.reader() as session:
        subscription = session.get_one(Subscription, body["subscription_id"])
        assert subscription.eula and subscription.eula.startswith("custom:")
        assert pricing.price_for(session, subscription, clock.now()).pricing == OFFER_PRICING
    again = client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": True}, headers=BUYER)
    assert again.status_code == 409


@pytest.mark.rule("OFR-03")
def test_only_the_named_buyer_sees_or_accepts_and_not_after_the_deadline(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    offer_id = _create(client)
    client.post(f"/api/v1/offers/{offer_id}/extend", headers=ACME)
    assert client.get(f"/api/v1/offers/{offer_id}", headers=OTHER_BUYER).status_code == 404
    assert (
        client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": True}, headers=OTHER_BUYER).status_code
        == 404
    )
    assert client.get(f"/api/v1/offers/{offer_id}", headers=NOSHARE).status_code == 404
    assert client.get(f"/api/v1/offers/{offer_id}", headers=OPS).status_code == 200
    assert client.get("/api/v1/offers", headers=OTHER_BUYER).json() == []
    manual_clock.advance(timedelta(days=14))
    late = client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": True}, headers=BUYER)
    assert late.status_code == 409 and "OFR-03" in late.json()["detail"]
    assert client.get("/api/v1/catalog/acme-vault", headers=BUYER).json()["private_offers"] == []


@pytest.mark.rule("OFR-02")
def test_an_extended_offer_cannot_be_edited_or_cancelled(client: TestClient, market: Database) -> None:
    """OFR-02: once extended, changing terms means a new offer; a draft can still be cancelled."""
    draft = _create(client)
    assert client.post(f"/api/v1/offers/{draft}/cancel", headers=ACME).json()["state"] == "cancelled"
    offer_id = _create(client)
    client.post(f"/api/v1/offers/{offer_id}/extend", headers=ACME)
    for response in (
        client.post(f"/api/v1/offers/{offer_id}/cancel", headers=ACME),
        client.post(f"/api/v1/offers/{offer_id}/eula", files={"file": ("t.pdf", pdf_bytes())}, headers=ACME),
        client.post(f"/api/v1/offers/{offer_id}/extend", headers=ACME),
    ):
        assert response.status_code == 409, response.text
        assert "OFR-02" in response.json()["detail"]


@pytest.mark.rule("OFR-01")
def test_offer_terms_are_checked(client: TestClient, market: Database) -> None:
    """OFR-01: up to 3 years; a flexible schedule's instalments sum to the total; prices follow the rules."""
    four_years = client.post("/api/v1/offers", json=_offer(duration_days=4 * 365), headers=ACME)
    assert four_years.status_code == 422 and four_years.json()["detail"].startswith("duration_days")
    base = clock.now()
    schedule = [
        {"at": (base + timedelta(days=1)).isoformat(), "amount": "500.00"},
        {"at": (base + timedelta(days=366)).isoformat(), "amount": "400.00"},
    ]
    off = client.post("/api/v1/offers", json=_offer(total="1000.00", schedule=schedule), headers=ACME)
    assert off.status_code == 422 and "sum to 900.00" in off.json()["detail"]
    assert client.post("/api/v1/offers", json=_offer(schedule=schedule), headers=ACME).status_code == 422
    good = client.post("/api/v1/offers", json=_offer(total="900.00", schedule=schedule), headers=ACME)
    assert good.status_code == 201 and good.json()["total"] == "900.00"
    bad_price = client.post(
        "/api/v1/offers", json=_offer(pricing={"hourly": {"m5.large": "0.1"}, "free_trial_days": 40}), headers=ACME
    )
    assert bad_price.status_code == 422 and "PRC-06" in bad_price.json()["detail"]
    past = client.post("/api/v1/offers", json=_offer(accept_by=(base - timedelta(hours=1)).isoformat()), headers=ACME)
    assert past.status_code == 422
    nobody = client.post("/api/v1/offers", json=_offer(buyer="999999999999"), headers=ACME)
    assert nobody.status_code == 422


@pytest.mark.rule("SEL-03")
def test_offers_need_the_seller_enrolled_in_data_sharing(client: TestClient, market: Database) -> None:
    """SEL-03: a seller outside the enhanced data sharing program cannot make private offers."""
    refused = client.post("/api/v1/offers", json=_offer(product="noshare-db"), headers=NOSHARE)
    assert refused.status_code == 403 and "SEL-03" in refused.json()["detail"]
    other = client.post("/api/v1/offers", json=_offer(product="noshare-db"), headers=ACME)
    assert other.status_code == 404, "a seller offers only its own products"
    assert client.post("/api/v1/offers", json=_offer(), headers=BUYER).status_code == 403


@pytest.mark.rule("OFR-03")
def test_accepting_replaces_the_buyers_public_subscription(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    public = client.post("/api/v1/subscriptions", json={"product": "acme-vault", "accept_eula": True}, headers=BUYER)
    offer_id = _create(client)
    client.post(f"/api/v1/offers/{offer_id}/extend", headers=ACME)
    manual_clock.advance(timedelta(hours=3))
    client.post(f"/api/v1/offers/{offer_id}/accept", json={"accept_eula": True}, headers=BUYER)
    old = client.get(f"/api/v1/subscriptions/{public.json()['id']}", headers=BUYER).json()
    assert old["state"] == "cancelled" and old["ended_at"] == manual_clock.now().isoformat()
