"""The seller portal's integration pages through the TestClient (SQLite, and PostgreSQL when configured):
SDK keys — the secret shown once, never in a later page load — and revoking them; webhooks — endpoints,
signing secret rotation, the delivery log with failed deliveries, **Replay** (SUB-06); and another seller's
keys and deliveries are out of reach."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora.db import Database
from agora.models import AccessKey, Job, JobState, Product, Seller, WebhookDelivery
from agora.webhooks import service as webhooks
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import SELLER
from tests.web.test_seller_money import NORTHWIND, text_of, with_northwind_sign_in

SECRET_RE = re.compile(r'<code class="wrap" id="new-key-secret">([^<]+)</code>')
TOKEN_RE = re.compile(r'<code class="wrap" id="new-token">([^<]+)</code>')


@pytest.fixture
def seller(browser: TestClient) -> TestClient:
    assert sign_in(browser, *SELLER).status_code == 303
    return browser


# --- keys ----------------------------------------------------------------------------------------------------------


def test_a_new_key_shows_its_secret_once_and_can_be_revoked(seller: TestClient, db: Database) -> None:
    page = seller.get("/seller/keys")
    assert page.status_code == 200 and "AKIDACME00000001" in page.text and "acme-demo-secret" not in page.text
    created = seller.post("/seller/keys", data={"csrf_token": csrf_of(page)})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    secret = SECRET_RE.search(created.text)
    token = TOKEN_RE.search(created.text)
    assert secret and token and "shown only this once" in created.text
    key_id = re.search(r'<code id="new-key-id">([^<]+)</code>', created.text)
    assert key_id
    with db.reader() as session:
        stored = session.get_one(AccessKey, key_id.group(1))
        assert stored.revoked_at is None and secret.group(1) not in stored.secret_encrypted
    assert seller.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}).json()["role"] == "seller"

    again = seller.get("/seller/keys")
    assert key_id.group(1) in again.text  # listed …
    assert secret.group(1) not in again.text and token.group(1) not in again.text  # … its secret never again

    revoked = seller.post(f"/seller/keys/{key_id.group(1)}/revoke", data={"csrf_token": csrf_of(again)})
    assert revoked.status_code == 303
    after = text_of(seller.get("/seller/keys").text)
    assert f"Access key {key_id.group(1)} is revoked" in after and "Revoked" in after
    with db.reader() as session:
        assert session.get_one(AccessKey, key_id.group(1)).revoked_at is not None


def test_another_sellers_key_cannot_be_revoked(seller: TestClient, db: Database) -> None:
    page = seller.get("/seller/keys")
    assert "AKIDNORTHWIND001" not in page.text
    refused = seller.post("/seller/keys/AKIDNORTHWIND001/revoke", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 303
    assert "no access key AKIDNORTHWIND001" in text_of(seller.get("/seller/keys").text)
    with db.reader() as session:
        assert session.get_one(AccessKey, "AKIDNORTHWIND001").revoked_at is None


def test_forms_without_their_csrf_token_are_refused(seller: TestClient) -> None:
    assert seller.post("/seller/keys").status_code == 403
    assert seller.post("/seller/webhooks/secret").status_code == 403
    assert seller.post("/seller/usage/errors", data={"record_id": "1", "reason": "x"}).status_code == 403
    assert seller.post("/seller/refunds", data={"reason": "x"}).status_code == 403


# --- webhooks --------------------------------------------------------------------------------------------------------


def _deliveries(db: Database) -> tuple[int, int, int]:
    """A delivered, a failed and a stranger's delivery: (acme failed id, acme delivered id, northwind id)."""
    with db.unit_of_work() as session:
        made = []
        for code in ("acme-analytics", "acme-crm", "northwind-db"):
            product = session.scalar(select(Product).where(Product.code == code))
            assert product is not None
            product.listing = {**product.listing, "webhook_url": f"https://hooks.example/{code}"}
            delivery = webhooks.emit(session, product, "subscribe-success", {"customer": "cust-1"})
            assert delivery is not None
            made.append(delivery)
        failed, delivered, theirs = made
        job = session.get_one(Job, failed.job_id)
        job.state, job.attempts, job.last_error = (
            JobState.FAILED,
            16,
            "HTTP 500 from https://hooks.example/acme-analytics",
        )
        delivered.state, delivered.last_status = "delivered", 200
        return failed.id, delivered.id, theirs.id


@pytest.mark.rule("SUB-06")
def test_webhooks_show_endpoints_the_delivery_log_and_replay(seller: TestClient, db: Database) -> None:
    failed, _delivered, theirs = _deliveries(db)
    assert "1 webhook delivery failed" in text_of(seller.get("/seller").text)
    page = seller.get("/seller/webhooks")
    words = text_of(page.text)
    assert "https://hooks.example/acme-analytics" in words and "https://hooks.example/northwind-db" not in words
    assert "Failed" in words and "HTTP 500 from https://hooks.example/acme-analytics" in words and "Delivered" in words
    assert page.text.count(">Replay</button>") == 2
    assert "No signing secret is set yet" in words

    replayed = seller.post(f"/seller/webhooks/deliveries/{failed}/replay", data={"csrf_token": csrf_of(page)})
    assert replayed.status_code == 303
    assert "is queued to be sent again" in text_of(seller.get("/seller/webhooks").text)
    with db.reader() as session:
        again = session.get_one(WebhookDelivery, failed)
        assert again.state == "pending"
        assert session.get_one(Job, again.job_id).state == JobState.QUEUED
    assert "failed: replay once fixed" not in text_of(seller.get("/seller").text)  # nothing failed any more

    stranger = seller.post(f"/seller/webhooks/deliveries/{theirs}/replay", data={"csrf_token": csrf_of(page)})
    assert stranger.status_code == 404


@pytest.mark.rule("SUB-06")
def test_the_signing_secret_is_shown_once_when_rotated(seller: TestClient, db: Database) -> None:
    page = seller.get("/seller/webhooks")
    rotated = seller.post("/seller/webhooks/secret", data={"csrf_token": csrf_of(page)})
    assert rotated.status_code == 200
    found = re.search(r'id="new-webhook-secret">(whsec_[^<]+)</code>', rotated.text)
    assert found
    with db.reader() as session:
        acme = session.scalar(select(Seller).where(Seller.handle == "acme"))
        assert acme is not None and webhooks.secret_of(acme) == found.group(1)
    later = seller.get("/seller/webhooks")
    assert found.group(1) not in later.text and "A signing secret is set." in later.text
    assert "Rotate signing secret" in later.text


def test_another_seller_sees_only_its_own_keys_and_deliveries(browser: TestClient, db: Database) -> None:
    _deliveries(db)
    with_northwind_sign_in(db)
    assert sign_in(browser, *NORTHWIND).status_code == 303
    keys = browser.get("/seller/keys").text
    assert "AKIDNORTHWIND001" in keys and "AKIDACME00000001" not in keys
    log = text_of(browser.get("/seller/webhooks").text)
    assert "https://hooks.example/northwind-db" in log and "acme" not in log.lower().replace("acme corp", "")
