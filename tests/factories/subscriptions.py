"""A small public marketplace for subscription tests, loaded through the manifest loader, and typed helpers
that drive subscriptions through the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import jobs, tasks
from agora.db import Database
from agora.manifest.loader import load_data
from agora.models import Notification
from tests.factories.identities import Actor, add_buyer, add_cast

TRIAL = "acme-trial"  # ami, hourly + 14-day free trial (SUB-01/02)
SAAS = "acme-saas"  # saas, usage, fulfillment_url (SUB-06)
ENTERPRISE = "acme-enterprise"  # ami, enterprise_only (LST-09)
BYOL = "acme-byol"  # ami, bring-your-own-license only
BYOL_HOURLY = "acme-byol-hourly"  # ami, BYOL or hourly
HOURLY = "acme-hourly"  # ami, hourly, no trial
DRAFT = "acme-draft"  # not public
FULFILLMENT_URL = "https://app.acme.example/register"
ENTERPRISE_ACCOUNT = "999988887777"


def _entry(code: str, pricing: dict[str, Any], *, kind: str = "ami", **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "code": code,
        "seller": "acme",
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Software for subscription tests",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": "Full refund within 30 days: billing@acme.example",
        "state": "public",
        "pricing": pricing,
    }
    entry.update(fields)
    return entry


USAGE: dict[str, Any] = {
    "usage": {
        "category": "users",
        "dimensions": [{"name": "users", "description": "Active users", "unit": "UserHrs", "rate": "0.125"}],
    }
}


def manifest() -> dict[str, Any]:
    return {
        "products": [
            _entry(TRIAL, {"hourly": {"m5.large": "0.10"}, "free_trial_days": 14}),
            _entry(SAAS, USAGE, kind="saas", fulfillment_url=FULFILLMENT_URL),
            _entry(ENTERPRISE, {"hourly": {"m5.large": "0.10"}}, enterprise_only=True),
            _entry(BYOL, {"byol": True}),
            _entry(BYOL_HOURLY, {"byol": True, "hourly": {"m5.large": "0.10"}}),
            _entry(HOURLY, {"hourly": {"m5.large": "0.10"}}),
            _entry(DRAFT, {"hourly": {"m5.large": "0.10"}}, state="draft"),
        ],
    }


@dataclass(frozen=True)
class Market:
    """The cast (operator `ops`, sellers `acme` and `globex`, two individual buyers) plus an enterprise buyer."""

    operator: Actor
    seller: Actor
    other_seller: Actor
    buyer: Actor
    other_buyer: Actor
    enterprise_buyer: Actor


def market(db: Database) -> Market:
    """Call with the clock already set (e.g. under `manual_clock`): BYOL-only products load only while they are
    within 90 days of launch."""
    tasks.register_all()
    cast = add_cast(db)
    with db.unit_of_work() as session:
        enterprise = add_buyer(session, ENTERPRISE_ACCOUNT, enterprise=True)
        load_data(manifest(), session)
    return Market(cast.operator, cast.seller, cast.other_seller, cast.buyer, cast.other_buyer, enterprise)


def email_of(buyer: Actor) -> str:
    return f"ops-{buyer.handle}@buyer.example"


def subscribe(client: TestClient, buyer: Actor, product: str, **fields: Any) -> dict[str, Any]:
    """Subscribe and insist on 201; returns the subscription."""
    response = client.post(
        "/api/v1/subscriptions", json={"product": product, "accept_eula": True, **fields}, headers=buyer.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def cancel(client: TestClient, buyer: Actor, subscription_id: int) -> dict[str, Any]:
    response = client.post(f"/api/v1/subscriptions/{subscription_id}/cancel", headers=buyer.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def run_jobs(db: Database) -> int:
    return jobs.Worker(db).run_until_idle()


def outbox(db: Database, kind: str | None = None) -> list[tuple[str, str, str, str]]:
    """Messages as (kind, to, subject, body), oldest first; only `kind` when given."""
    with db.reader() as session:
        query = select(Notification).order_by(Notification.id)
        if kind is not None:
            query = query.where(Notification.kind == kind)
        return [(n.kind, n.to, n.subject, n.body) for n in session.scalars(query)]
