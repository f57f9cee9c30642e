"""Subscribing and cancelling through the API: EULA acceptance (LST-08), enterprise-only listings (LST-09),
who may subscribe, see and cancel, BYOL license references, and the audit trail of every change."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora.clock import ManualClock
from agora.db import Database
from tests.catalog import files
from tests.factories import catalog as listings
from tests.factories.identities import Actor, Cast
from tests.factories.subscriptions import (
    BYOL,
    BYOL_HOURLY,
    DRAFT,
    ENTERPRISE,
    HOURLY,
    SAAS,
    Market,
    cancel,
    market,
    subscribe,
)


@pytest.fixture
def m(db: Database, manual_clock: ManualClock) -> Market:
    return market(db)


def post(client: TestClient, actor: Actor, product: str, **fields: Any) -> Any:
    body = {"product": product, "accept_eula": True, **fields}
    return client.post("/api/v1/subscriptions", json=body, headers=actor.headers)


def test_lst08_buyer_subscribes_accepting_the_standard_eula(client: TestClient, m: Market) -> None:
    sub = subscribe(client, m.buyer, HOURLY)
    assert sub["state"] == "active"
    assert sub["product"] == HOURLY and sub["buyer"] == m.buyer.handle
    assert sub["customer_identifier"]
    assert sub["eula"] == "standard:v1"
    assert sub["eula_accepted_at"] == sub["started_at"] == "2026-03-01T12:00:00+00:00"
    assert sub["ended_at"] is None and sub["trial"] is None and sub["license_reference"] is None
    assert client.get(f"/api/v1/subscriptions/{sub['id']}", headers=m.buyer.headers).json() == sub


def test_lst08_not_accepting_the_eula_is_refused(client: TestClient, m: Market) -> None:
    response = post(client, m.buyer, HOURLY, accept_eula=False)
    assert response.status_code == 422, response.text
    assert "accept_eula" in response.text and "LST-08" in response.text
    assert client.get("/api/v1/subscriptions", headers=m.buyer.headers).json() == []


def test_lst08_a_custom_eula_uploaded_before_publishing_is_what_is_accepted(
    client: TestClient, db: Database, m: Market
) -> None:
    cast = Cast(m.operator, m.seller, m.other_seller, m.buyer, m.other_buyer)
    code = "acme-custom-eula"
    listings.create_listing(client, m.seller, code)
    listings.add_required_files(client, m.seller, code)
    pdf = files.pdf()
    status, asset = listings.upload(client, m.seller, code, "eula", pdf, "eula.pdf")
    assert status == 201, asset
    listings.submit(client, m.seller, code)
    listings.approve(client, cast.operator, code)
    listings.run_jobs(db)
    listings.sign_off(client, m.seller, code)

    sub = subscribe(client, m.buyer, code)
    assert sub["eula"] == f"custom:{hashlib.sha256(pdf).hexdigest()}"


def test_lst09_enterprise_only_listing_refuses_individual_buyers(client: TestClient, m: Market) -> None:
    response = post(client, m.buyer, ENTERPRISE)
    assert response.status_code == 403, response.text
    assert "LST-09" in response.text
    sub = subscribe(client, m.enterprise_buyer, ENTERPRISE)
    assert sub["state"] == "active" and sub["buyer"] == m.enterprise_buyer.handle


def test_only_buyers_subscribe(client: TestClient, m: Market) -> None:
    for actor in (m.seller, m.operator):
        assert post(client, actor, HOURLY).status_code == 403


@pytest.mark.parametrize("code", ["acme-nope", DRAFT])
def test_unknown_or_non_public_product_is_not_found(client: TestClient, m: Market, code: str) -> None:
    assert post(client, m.buyer, code).status_code == 404


def test_a_second_active_subscription_conflicts_until_the_first_is_cancelled(client: TestClient, m: Market) -> None:
    first = subscribe(client, m.buyer, HOURLY)
    assert post(client, m.buyer, HOURLY).status_code == 409
    subscribe(client, m.other_buyer, HOURLY)  # another buyer is not affected
    cancel(client, m.buyer, first["id"])
    assert subscribe(client, m.buyer, HOURLY)["id"] != first["id"]


def test_cancel_ends_the_subscription_at_the_clock_instant(
    client: TestClient, m: Market, manual_clock: ManualClock
) -> None:
    sub = subscribe(client, m.buyer, HOURLY)
    manual_clock.advance(timedelta(hours=5, minutes=7))
    assert client.post(f"/api/v1/subscriptions/{sub['id']}/cancel", headers=m.other_buyer.headers).status_code == 404
    cancelled = cancel(client, m.buyer, sub["id"])
    assert cancelled["state"] == "cancelled"
    assert cancelled["ended_at"] == "2026-03-01T17:07:00+00:00"
    again = client.post(f"/api/v1/subscriptions/{sub['id']}/cancel", headers=m.buyer.headers)
    assert again.status_code == 409, again.text
    got = client.get(f"/api/v1/subscriptions/{sub['id']}", headers=m.buyer.headers).json()
    assert got["ended_at"] == "2026-03-01T17:07:00+00:00"


def test_who_sees_a_subscription(client: TestClient, m: Market) -> None:
    sub = subscribe(client, m.buyer, HOURLY)
    url = f"/api/v1/subscriptions/{sub['id']}"
    assert client.get(url, headers=m.other_buyer.headers).status_code == 404
    assert client.get(url, headers=m.other_seller.headers).status_code == 404
    assert client.get(url, headers=m.seller.headers).json()["customer_identifier"] == sub["customer_identifier"]
    assert client.get(url, headers=m.operator.headers).status_code == 200
    assert client.get("/api/v1/subscriptions/999999", headers=m.buyer.headers).status_code == 404

    def ids(actor: Actor) -> list[int]:
        response = client.get("/api/v1/subscriptions", headers=actor.headers)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()]

    assert ids(m.buyer) == [sub["id"]]
    assert ids(m.seller) == [sub["id"]]
    assert ids(m.operator) == [sub["id"]]
    assert ids(m.other_buyer) == []
    assert ids(m.other_seller) == []


def test_byol_only_product_needs_a_license_reference(client: TestClient, m: Market) -> None:
    response = post(client, m.buyer, BYOL)
    assert response.status_code == 422, response.text
    assert "license_reference" in response.text
    sub = subscribe(client, m.buyer, BYOL, license_reference="LIC-42")
    assert sub["license_reference"] == "LIC-42"
    assert client.get(f"/api/v1/subscriptions/{sub['id']}", headers=m.seller.headers).json()["license_reference"] == (
        "LIC-42"
    )


def test_byol_or_hourly_product_takes_either(client: TestClient, m: Market) -> None:
    assert subscribe(client, m.buyer, BYOL_HOURLY)["license_reference"] is None
    assert subscribe(client, m.other_buyer, BYOL_HOURLY, license_reference="LIC-7")["license_reference"] == "LIC-7"


@pytest.mark.parametrize("code", [HOURLY, SAAS])
def test_license_reference_on_a_non_byol_product_is_refused(client: TestClient, m: Market, code: str) -> None:
    response = post(client, m.buyer, code, license_reference="LIC-42")
    assert response.status_code == 422, response.text
    assert "license_reference" in response.text


def test_every_change_is_audited(client: TestClient, m: Market, manual_clock: ManualClock) -> None:
    sub = subscribe(client, m.buyer, BYOL, license_reference="LIC-42")
    manual_clock.advance(timedelta(hours=1))
    cancel(client, m.buyer, sub["id"])
    assert post(client, m.buyer, HOURLY, accept_eula=False).status_code == 422  # refused: nothing recorded

    response = client.get("/api/v1/audit", params={"target_type": "subscription"}, headers=m.operator.headers)
    assert response.status_code == 200, response.text
    events = list(reversed(response.json()["events"]))
    assert [(e["actor"], e["action"], e["target_id"]) for e in events] == [
        (events[0]["actor"], "subscription.create", str(sub["id"])),
        (events[0]["actor"], "subscription.cancel", str(sub["id"])),
    ]
    assert m.buyer.handle in events[0]["actor"]
    created, cancelled = events
    assert created["after"]["product"] == BYOL
    assert created["after"]["customer_identifier"] == sub["customer_identifier"]
    assert created["after"]["eula"] == "standard:v1"
    assert created["after"]["license_reference"] == "LIC-42"
    assert cancelled["before"] == {"ended_at": None}
    assert cancelled["after"] == {"ended_at": "2026-03-01T13:00:00+00:00"}
    forbidden = client.get("/api/v1/audit", params={"target_type": "subscription"}, headers=m.buyer.headers)
    assert forbidden.status_code == 403
