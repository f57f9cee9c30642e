"""Annual purchases (SUB-03) and auto-renewal at the CHG-03 price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock, jobs, tasks
from agora.db import Database
from agora.manifest.loader import load_data
from agora.models import Notification
from agora.validation import MAX_QUANTITY

SELLER = {"Authorization": "Bearer acme-seller-token-1"}
BUYER = {"Authorization": "Bearer buyer-token-0001"}
OTHER_BUYER = {"Authorization": "Bearer buyer-token-0002"}
PRICING = {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}, "annual": {"m5.large": "700", "m5.xlarge": "1400"}}


@pytest.fixture
def market(db: Database) -> Database:
    data = {
        "sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-9", "api_tokens": ["acme-seller-token-1"]}],
        "buyers": [
            {"account": "111122223333", "email": "a@buyer.example", "api_tokens": ["buyer-token-0001"]},
            {"account": "444455556666", "email": "b@buyer.example", "api_tokens": ["buyer-token-0002"]},
        ],
        "products": [
            {
                "code": "acme-vault",
                "seller": "acme",
                "kind": "ami",
                "title": "Acme Vault",
                "short_description": "V",
                "category": "security",
                "regions": ["us-east-1"],
                "refund_policy": "48 h: billing@acme.example",
                "state": "public",
                "pricing": PRICING,
            }
        ],
    }
    with db.unit_of_work() as session:
        load_data(data, session)
    return db


def _run(db: Database) -> None:
    tasks.register_all()
    jobs.Worker(db).run_until_idle()


def _subscription(client: TestClient) -> int:
    response = client.post("/api/v1/subscriptions", json={"product": "acme-vault", "accept_eula": True}, headers=BUYER)
    assert response.status_code == 201, response.text
    subscription_id: int = response.json()["id"]
    return subscription_id


def _notices(db: Database) -> list[Notification]:
    with db.reader() as session:
        return list(session.scalars(select(Notification).where(Notification.kind == "renewal_notice")))


@pytest.mark.rule("SUB-03")
def test_an_annual_purchase_is_invoiced_in_full_for_twelve_months(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    """SUB-03: quantity × the annual price, paid at purchase; 12 months; without auto-renew it just ends."""
    subscription = _subscription(client)
    bought = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 2},
        headers=BUYER,
    )
    assert bought.status_code == 201, bought.text
    assert bought.json() | {"id": 0} == {
        "id": 0,
        "subscription_id": subscription,
        "instance_type": "m5.large",
        "quantity": 2,
        "unit_price": "700",
        "amount": "1400.00",
        "starts_at": "2026-03-01T12:00:00+00:00",
        "ends_at": "2027-03-01T12:00:00+00:00",
        "auto_renew": False,
        "renews": None,
    }
    no_price = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "c5.large", "quantity": 1},
        headers=BUYER,
    )
    assert no_price.status_code == 422 and "SUB-03" in no_price.json()["detail"]
    other = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 1},
        headers=OTHER_BUYER,
    )
    assert other.status_code == 404
    manual_clock.set(datetime(2027, 3, 2, tzinfo=UTC))
    _run(market)
    assert len(client.get(f"/api/v1/subscriptions/{subscription}/annual", headers=BUYER).json()) == 1
    assert _notices(market) == []


@pytest.mark.rule("CHG-03")
@pytest.mark.rule("SUB-03")
def test_an_auto_renewal_keeps_the_price_when_the_change_came_less_than_90_days_before(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    """CHG-03: a price change 60 days before the renewal does not reach it; the notice says the old price."""
    subscription = _subscription(client)
    client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 1, "auto_renew": True},
        headers=BUYER,
    )
    manual_clock.set(datetime(2027, 1, 1, 12, tzinfo=UTC))  # 59 days before 2027-03-01
    new = {**PRICING, "annual": {"m5.large": "800", "m5.xlarge": "1400"}}
    assert client.put("/api/v1/products/acme-vault/pricing", json=new, headers=SELLER).status_code == 201
    manual_clock.set(datetime(2027, 1, 30, 12, tzinfo=UTC))  # 30 days before: the renewal notice
    _run(market)
    (notice,) = _notices(market)
    assert notice.to == "a@buyer.example"
    assert "renews on 2027-03-01" in notice.subject and "at 700 per m5.large" in notice.body
    manual_clock.set(datetime(2027, 3, 1, 12, tzinfo=UTC))
    _run(market)
    purchases = client.get(f"/api/v1/subscriptions/{subscription}/annual", headers=BUYER).json()
    assert [(p["unit_price"], p["amount"], p["ends_at"][:10]) for p in purchases] == [
        ("700", "700.00", "2027-03-01"),
        ("700", "700.00", "2028-03-01"),
    ]
    assert purchases[1]["renews"] == purchases[0]["id"]


@pytest.mark.rule("CHG-03")
def test_an_auto_renewal_takes_a_price_set_at_least_90_days_before(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    """CHG-03: a change 100 days before the renewal applies to it, and the running year keeps its price."""
    subscription = _subscription(client)
    client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 3, "auto_renew": True},
        headers=BUYER,
    )
    manual_clock.set(datetime(2026, 11, 21, 12, tzinfo=UTC))  # 100 days before 2027-03-01
    new = {**PRICING, "annual": {"m5.large": "800", "m5.xlarge": "1400"}}
    client.put("/api/v1/products/acme-vault/pricing", json=new, headers=SELLER)
    manual_clock.set(datetime(2027, 3, 1, 12, tzinfo=UTC))
    _run(market)
    (notice,) = _notices(market)
    assert "at 800 per m5.large instance, 2400.00 for 3" in notice.body
    purchases = client.get(f"/api/v1/subscriptions/{subscription}/annual", headers=BUYER).json()
    assert [(p["unit_price"], p["amount"]) for p in purchases] == [("700", "2100.00"), ("800", "2400.00")]


@pytest.mark.rule("SUB-03")
def test_turning_auto_renew_off_or_cancelling_stops_the_renewal(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    subscription = _subscription(client)
    purchase = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 1, "auto_renew": True},
        headers=BUYER,
    ).json()
    off = client.post(
        f"/api/v1/annual-purchases/{purchase['id']}/auto-renew", json={"auto_renew": False}, headers=BUYER
    )
    assert off.status_code == 200 and off.json()["auto_renew"] is False
    assert (
        client.post(
            f"/api/v1/annual-purchases/{purchase['id']}/auto-renew", json={"auto_renew": True}, headers=OTHER_BUYER
        ).status_code
        == 404
    )
    manual_clock.advance(timedelta(days=400))
    _run(market)
    assert len(client.get(f"/api/v1/subscriptions/{subscription}/annual", headers=BUYER).json()) == 1
    assert _notices(market) == []


def test_a_quantity_beyond_what_one_purchase_buys_is_refused(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    subscription = _subscription(client)
    for quantity in (4611686018427387904, MAX_QUANTITY + 1):
        bought = client.post(
            f"/api/v1/subscriptions/{subscription}/annual",
            json={"instance_type": "m5.large", "quantity": quantity},
            headers=BUYER,
        )
        assert bought.status_code == 422, bought.text
        assert [p["loc"] for p in bought.json()["problems"]] == ["body.quantity"]


def test_a_charge_too_large_to_bill_is_refused_naming_the_quantity(
    client: TestClient, market: Database, manual_clock: clock.ManualClock
) -> None:
    pricing = {"hourly": {"m5.large": "0.10"}, "annual": {"m5.large": "999999999999"}}
    product = {"code": "acme-dear", "seller": "acme", "kind": "ami", "title": "Dear", "short_description": "D",
               "category": "security", "regions": ["us-east-1"], "refund_policy": "none", "state": "public",
               "pricing": pricing}  # fmt: skip
    with market.unit_of_work() as session:
        load_data({"products": [product]}, session)
    response = client.post("/api/v1/subscriptions", json={"product": "acme-dear", "accept_eula": True}, headers=BUYER)
    subscription = response.json()["id"]
    bought = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": MAX_QUANTITY},
        headers=BUYER,
    )
    assert bought.status_code == 422, bought.text
    assert bought.json()["problems"][0]["loc"] == "quantity"
    assert "more than the 10000000000000.00 one charge may be" in bought.json()["detail"]
    fits = client.post(
        f"/api/v1/subscriptions/{subscription}/annual",
        json={"instance_type": "m5.large", "quantity": 10},
        headers=BUYER,
    )
    assert fits.status_code == 201, fits.text
