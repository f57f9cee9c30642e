"""Contracts (PRC-10, SUB-07): upfront quantities, prorated upgrades, entitlements with expiry, a license."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock
from agora.db import Database
from agora.manifest.loader import load_data
from agora.models import WebhookDelivery
from agora.subscriptions.contracts import add_months

# Webhooks and metrics are served by the test itself, on 127.0.0.1.
pytestmark = pytest.mark.usefixtures("private_urls_allowed")

SELLER = {"Authorization": "Bearer acme-seller-token-1"}
OTHER_SELLER = {"Authorization": "Bearer globex-seller-token"}
BUYER = {"Authorization": "Bearer buyer-token-0001"}
OTHER_BUYER = {"Authorization": "Bearer buyer-token-0002"}

CRM_PRICING = {
    "contract": {
        "dimensions": [
            {"name": "seats", "description": "Named seats", "prices": {"1": "12", "12": "120", "36": "324"}},
            {"name": "sandboxes", "description": "Sandboxes", "prices": {"12": "500.50"}},
        ]
    }
}


@pytest.fixture
def market(db: Database) -> Database:
    data = {
        "sellers": [
            {"id": "acme", "name": "Acme", "tax_form": "W-9", "api_tokens": ["acme-seller-token-1"]},
            {"id": "globex", "name": "Globex", "tax_form": "W-9", "api_tokens": ["globex-seller-token"]},
        ],
        "buyers": [
            {"account": "111122223333", "email": "a@buyer.example", "api_tokens": ["buyer-token-0001"]},
            {"account": "444455556666", "email": "b@buyer.example", "api_tokens": ["buyer-token-0002"]},
        ],
        "products": [
            {
                "code": "acme-crm",
                "seller": "acme",
                "kind": "saas",
                "title": "Acme CRM",
                "short_description": "CRM",
                "category": "crm",
                "regions": ["us-east-1"],
                "refund_policy": "30 days: billing@acme.example",
                "state": "public",
                "webhook_url": "http://127.0.0.1:9/hooks",
                "pricing": CRM_PRICING,
            },
            {
                "code": "acme-cache",
                "seller": "acme",
                "kind": "ami",
                "title": "Acme Cache",
                "short_description": "C",
                "category": "db",
                "regions": ["us-east-1"],
                "refund_policy": "none: billing@acme.example",
                "state": "public",
                "pricing": {"hourly": {"m5.large": "0.10"}},
            },
        ],
    }
    with db.unit_of_work() as session:
        load_data(data, session)
    return db


def _subscribe(client: TestClient, product: str = "acme-crm", headers: dict[str, str] = BUYER) -> int:
    response = client.post("/api/v1/subscriptions", json={"product": product, "accept_eula": True}, headers=headers)
    assert response.status_code == 201, response.text
    subscription_id: int = response.json()["id"]
    return subscription_id


@pytest.mark.rule("PRC-10")
@pytest.mark.rule("SUB-07")
def test_a_contract_is_paid_upfront_and_entitles_the_buyer_until_its_end(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    """PRC-10: quantities × the 12-month unit prices, invoiced at purchase. SUB-07: entitlements with the
    contract's end as expiry, and a license the software can check."""
    subscription = _subscribe(client)
    bought = client.post(
        f"/api/v1/subscriptions/{subscription}/contract",
        json={"duration_months": 12, "quantities": {"seats": 10, "sandboxes": 1}},
        headers=BUYER,
    )
    assert bought.status_code == 201, bought.text
    contract = bought.json()
    assert contract["charges"] == [{"reason": "purchase", "amount": "1700.50", "at": manual_clock.now().isoformat()}]
    assert contract["ends_at"] == "2027-03-01T12:00:00+00:00"
    assert contract["entitlements"] == {"sandboxes": 1, "seats": 10}

    seen = client.get("/api/v1/entitlements", params={"product": "acme-crm"}, headers=SELLER).json()
    assert [(e["dimension"], e["value"], e["expiration_date"]) for e in seen] == [
        ("sandboxes", 1, "2027-03-01T12:00:00+00:00"),
        ("seats", 10, "2027-03-01T12:00:00+00:00"),
    ]
    assert {e["customer_account"] for e in seen} == {"111122223333"}
    assert client.get("/api/v1/entitlements", headers=OTHER_SELLER).json() == []
    assert client.get("/api/v1/entitlements", headers=OTHER_BUYER).json() == []
    assert len(client.get("/api/v1/entitlements", params={"dimension": "seats"}, headers=BUYER).json()) == 1

    license_key = contract["license"]
    checked = client.get(f"/api/v1/licenses/{license_key}", headers=BUYER).json()
    assert checked["valid"] is True and checked["entitlements"] == {"sandboxes": 1, "seats": 10}
    assert client.get(f"/api/v1/licenses/{license_key}", headers=OTHER_BUYER).status_code == 404

    with market.reader() as session:
        events = list(session.scalars(select(WebhookDelivery.event_type)))
    assert events == ["subscribe-success", "entitlement-updated"]

    manual_clock.set(datetime(2027, 3, 1, 12, tzinfo=UTC))
    assert client.get("/api/v1/entitlements", headers=SELLER).json() == []
    assert client.get(f"/api/v1/licenses/{license_key}", headers=BUYER).json()["valid"] is False


@pytest.mark.rule("SUB-07")
def test_an_upgrade_raises_quantities_for_the_rest_of_the_term_at_a_prorated_price(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    subscription = _subscribe(client)
    client.post(
        f"/api/v1/subscriptions/{subscription}/contract",
        json={"duration_months": 1, "quantities": {"seats": 10}},
        headers=BUYER,
    )
    # A 1-month contract from 2026-03-01 12:00 runs 31 days; 10 days later 21/31 of the term is left.
    manual_clock.advance(timedelta(days=10))
    upgraded = client.post(
        f"/api/v1/subscriptions/{subscription}/contract/upgrade", json={"quantities": {"seats": 15}}, headers=BUYER
    )
    assert upgraded.status_code == 200, upgraded.text
    # 5 seats × $12 × 21/31 = 40.645… → 40.65 (rounded once, half up)
    assert upgraded.json()["charges"][-1]["amount"] == "40.65"
    assert upgraded.json()["entitlements"] == {"seats": 15}

    lower = client.post(
        f"/api/v1/subscriptions/{subscription}/contract/upgrade", json={"quantities": {"seats": 12}}, headers=BUYER
    )
    assert lower.status_code == 422 and "quantities.seats" in lower.json()["detail"]
    same = client.post(
        f"/api/v1/subscriptions/{subscription}/contract/upgrade", json={"quantities": {"seats": 15}}, headers=BUYER
    )
    assert same.status_code == 422


@pytest.mark.rule("PRC-10")
def test_contract_terms_are_checked(client: TestClient, market: Database) -> None:
    """PRC-10: durations 1/12/24/36 that the product prices, its own dimensions, positive quantities; one
    running contract per subscription; only contract products."""
    subscription = _subscribe(client)
    url = f"/api/v1/subscriptions/{subscription}/contract"
    cases = [
        ({"duration_months": 6, "quantities": {"seats": 1}}, "duration_months"),
        ({"duration_months": 24, "quantities": {"seats": 1}}, "quantities.seats"),
        ({"duration_months": 1, "quantities": {"sandboxes": 1}}, "quantities.sandboxes"),
        ({"duration_months": 12, "quantities": {"users": 1}}, "quantities.users"),
        ({"duration_months": 12, "quantities": {"seats": 0}}, "quantities.seats"),
        ({"duration_months": 12, "quantities": {}}, "quantities"),
    ]
    for body, field in cases:
        response = client.post(url, json=body, headers=BUYER)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"].startswith(field), (body, response.json())
    assert client.post(url, json={"duration_months": 12, "quantities": {"seats": 1}}, headers=BUYER).status_code == 201
    again = client.post(url, json={"duration_months": 12, "quantities": {"seats": 1}}, headers=BUYER)
    assert again.status_code == 409

    hourly = _subscribe(client, "acme-cache")
    refused = client.post(
        f"/api/v1/subscriptions/{hourly}/contract", json={"duration_months": 12, "quantities": {"x": 1}}, headers=BUYER
    )
    assert refused.status_code == 422 and "PRC-10" in refused.json()["detail"]
    other = client.post(url, json={"duration_months": 12, "quantities": {"seats": 1}}, headers=OTHER_BUYER)
    assert other.status_code == 404
    assert client.post(url, json={"duration_months": 12, "quantities": {"seats": 1}}, headers=SELLER).status_code == 403


def test_months_are_added_on_the_calendar() -> None:
    start = datetime(2026, 1, 31, 9, tzinfo=UTC)
    assert add_months(start, 1) == datetime(2026, 2, 28, 9, tzinfo=UTC)
    assert add_months(start, 12) == datetime(2027, 1, 31, 9, tzinfo=UTC)
    assert add_months(datetime(2027, 2, 28, tzinfo=UTC), 12) == datetime(2028, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2027, 3, 31, tzinfo=UTC), 11) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 15, tzinfo=UTC), 36) == datetime(2029, 11, 15, tzinfo=UTC)


def test_a_quantity_beyond_what_one_contract_buys_is_refused(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    subscription = _subscribe(client)
    huge = {"seats": 4611686018427387904}
    bought = client.post(
        f"/api/v1/subscriptions/{subscription}/contract", json={"duration_months": 1, "quantities": huge}, headers=BUYER
    )
    assert bought.status_code == 422, bought.text
    assert [p["loc"] for p in bought.json()["problems"]] == ["body.quantities.seats"]
    client.post(
        f"/api/v1/subscriptions/{subscription}/contract",
        json={"duration_months": 1, "quantities": {"seats": 10}},
        headers=BUYER,
    )
    upgraded = client.post(
        f"/api/v1/subscriptions/{subscription}/contract/upgrade", json={"quantities": huge}, headers=BUYER
    )
    assert upgraded.status_code == 422, upgraded.text
    assert [p["loc"] for p in upgraded.json()["problems"]] == ["body.quantities.seats"]
