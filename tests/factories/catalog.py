"""Small typed helpers that drive listings through the HTTP API, as a seller and an operator would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import jobs
from agora.app import create_app
from agora.db import Database
from agora.models import Notification
from tests.catalog import files
from tests.factories.identities import Actor, Cast

PAID_SAAS_PRICING: dict[str, Any] = {
    "usage": {
        "category": "users",
        "dimensions": [{"name": "users", "description": "Active users", "unit": "UserHrs", "rate": "0.125"}],
    }
}
FREE_PRICING: dict[str, Any] = {"free": True}
HOURLY_AMI_PRICING: dict[str, Any] = {"hourly": {"m5.large": "0.10"}}


def listing(code: str, **fields: Any) -> dict[str, Any]:
    """A complete paid SaaS product entry (everything submission needs except the files); `fields` override."""
    entry: dict[str, Any] = {
        "code": code,
        "kind": "saas",
        "title": f"{code.replace('-', ' ').title()}",
        "short_description": "Dashboards for everything",
        "category": "analytics",
        "regions": ["us-east-1"],
        "pricing": PAID_SAAS_PRICING,
        "refund_policy": "Full refund within 30 days: support@acme.example",
    }
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not None}


def create_listing(client: TestClient, seller: Actor, code: str, **fields: Any) -> dict[str, Any]:
    """Create a draft through `POST /api/v1/products`; a field given as None is left out of the entry."""
    response = client.post("/api/v1/products", json=listing(code, **fields), headers=seller.headers)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    assert product["state"] == "draft"
    return product


def upload(
    client: TestClient, seller: Actor, code: str, kind: str, data: bytes, filename: str
) -> tuple[int, dict[str, Any]]:
    """Upload one asset; returns the status and the JSON body, whatever they are."""
    response = client.post(
        f"/api/v1/products/{code}/assets",
        data={"kind": kind},
        files={"file": (filename, data, "application/octet-stream")},
        headers=seller.headers,
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def add_required_files(client: TestClient, seller: Actor, code: str) -> None:
    """The logo and user guide submission needs (LST-03)."""
    for kind, data, name in (("logo", files.png(), "logo.png"), ("user_guide", files.pdf(), "guide.pdf")):
        status, body = upload(client, seller, code, kind, data, name)
        assert status == 201, body


def submit(client: TestClient, seller: Actor, code: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/products/{code}/submit", headers=seller.headers)
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()
    assert product["state"] == "submitted"
    return product


def approve(client: TestClient, operator: Actor, code: str, reason: str | None = None) -> dict[str, Any]:
    response = client.post(f"/api/v1/reviews/{code}/approve", json={"reason": reason}, headers=operator.headers)
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()
    assert product["state"] == "publishing"
    return product


def run_jobs(db: Database) -> int:
    return jobs.Worker(db).run_until_idle()


def sign_off(client: TestClient, seller: Actor, code: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/products/{code}/sign-off", headers=seller.headers)
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()
    assert product["state"] == "public"
    return product


def make_limited(
    client: TestClient, db: Database, cast: Cast, code: str, *, seller: Actor | None = None, **fields: Any
) -> dict[str, Any]:
    """Create, add files, submit, approve and run the publishing job: the listing ends limited (LST-05/06)."""
    owner = seller or cast.seller
    create_listing(client, owner, code, **fields)
    add_required_files(client, owner, code)
    submit(client, owner, code)
    approve(client, cast.operator, code)
    run_jobs(db)
    response = client.get(f"/api/v1/products/{code}", headers=owner.headers)
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()
    assert product["state"] == "limited", product
    return product


def make_public(
    client: TestClient, db: Database, cast: Cast, code: str, *, seller: Actor | None = None, **fields: Any
) -> dict[str, Any]:
    """The whole flow, worker included, ending with the seller's sign-off: the listing is public."""
    owner = seller or cast.seller
    make_limited(client, db, cast, code, seller=owner, **fields)
    return sign_off(client, owner, code)


def notifications(db: Database) -> list[tuple[str, str, str]]:
    """Every message in the outbox as (kind, to, subject), oldest first."""
    with db.reader() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id))
        return [(n.kind, n.to, n.subject) for n in rows]


def audit_actions(client: TestClient, operator: Actor, code: str) -> list[tuple[str, str]]:
    """(actor, action) of every audit event about the product, oldest first."""
    response = client.get("/api/v1/audit", params={"target_id": code}, headers=operator.headers)
    assert response.status_code == 200, response.text
    return [(e["actor"], e["action"]) for e in reversed(response.json()["events"])]


@contextmanager
def lenient_client(db: Database) -> Iterator[TestClient]:
    """A client that answers a server error with its 500 response instead of raising it in the test."""
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client
