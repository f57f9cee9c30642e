"""SaaS fulfillment (SUB-06): the buyer is redirected to the seller with a registration token, which the
product's seller, and only it, resolves to the customer within the hour."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from agora.clock import ManualClock
from agora.db import Database
from tests.factories.identities import Actor
from tests.factories.subscriptions import FULFILLMENT_URL, HOURLY, SAAS, TRIAL, Market, market, subscribe


@pytest.fixture
def m(db: Database, manual_clock: ManualClock) -> Market:
    return market(db)


def resolve(client: TestClient, seller: Actor, token: str) -> Any:
    return client.post("/api/v1/fulfillment/resolve", json={"registration_token": token}, headers=seller.headers)


def test_sub06_saas_subscription_redirects_with_a_registration_token(client: TestClient, m: Market) -> None:
    sub = subscribe(client, m.buyer, SAAS)
    fulfillment = sub["fulfillment"]
    token = fulfillment["registration_token"]
    assert token
    redirect = fulfillment["redirect_url"]
    assert redirect.startswith(FULFILLMENT_URL)
    assert "x-amzn-marketplace-token=" in redirect
    assert parse_qs(urlsplit(redirect).query)["x-amzn-marketplace-token"] == [token]
    assert "fulfillment" not in client.get(f"/api/v1/subscriptions/{sub['id']}", headers=m.buyer.headers).json()


def test_sub06_seller_resolves_the_token_to_the_customer(client: TestClient, m: Market) -> None:
    sub = subscribe(client, m.buyer, SAAS)
    response = resolve(client, m.seller, sub["fulfillment"]["registration_token"])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "customer_identifier": sub["customer_identifier"],
        "product_code": SAAS,
        "customer_account": m.buyer.handle,
    }


def test_sub06_only_the_products_seller_resolves(client: TestClient, m: Market) -> None:
    token = subscribe(client, m.buyer, SAAS)["fulfillment"]["registration_token"]
    response = resolve(client, m.other_seller, token)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_token"
    for actor in (m.buyer, m.operator):
        assert resolve(client, actor, token).status_code == 403


@pytest.mark.parametrize("garbage", ["garbage", "gAAAAABnot-a-real-token", "x" * 200])
def test_sub06_garbage_is_an_invalid_token(client: TestClient, m: Market, garbage: str) -> None:
    response = resolve(client, m.seller, garbage)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_token"


def test_sub06_token_expires_after_an_hour(client: TestClient, m: Market, manual_clock: ManualClock) -> None:
    """Two tokens issued at the same instant: one resolved at 59 minutes, the other (never resolved) refused at
    61 minutes."""
    token = subscribe(client, m.buyer, SAAS)["fulfillment"]["registration_token"]
    other = subscribe(client, m.other_buyer, SAAS)["fulfillment"]["registration_token"]
    manual_clock.advance(timedelta(minutes=59))
    assert resolve(client, m.seller, token).status_code == 200
    manual_clock.advance(timedelta(minutes=2))  # 61 minutes after issue
    response = resolve(client, m.seller, other)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "expired_token"
    assert "expired" in response.json()["detail"]


def test_sub06_token_resolves_once(client: TestClient, m: Market) -> None:
    token = subscribe(client, m.buyer, SAAS)["fulfillment"]["registration_token"]
    assert resolve(client, m.seller, token).status_code == 200
    response = resolve(client, m.seller, token)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "expired_token"
    assert "already resolved" in response.json()["detail"]


@pytest.mark.parametrize("code", [HOURLY, TRIAL])
def test_sub06_non_saas_subscription_has_no_fulfillment(client: TestClient, m: Market, code: str) -> None:
    assert "fulfillment" not in subscribe(client, m.buyer, code)
