"""A marketplace for billing tests: software and infrastructure charges (LST-10), an ML model package in
preview (BIL-05), a free-trial image (RFD-02) and seller-metered SaaS of two sellers (RFD-02 metering errors).
Loaded through the manifest loader, with API tokens for every party."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from agora import tasks
from agora.auth import Principal
from agora.db import Database
from agora.manifest.loader import load_data
from agora.metering import platform
from agora.metering import service as metering
from agora.metering.records import Reading, Source
from agora.models import Buyer, Product, Role, Seller, Subscription

BUYER = "111122223333"
OTHER_BUYER = "444455556666"

DB = "acme-db"  # managed service: queries (seller, tiered) and egress (an infrastructure bill item)
MODEL = "acme-model"  # ML model package in preview
GA_MODEL = "acme-model-ga"  # the same prices, generally available
TRIAL = "acme-trial"  # server image, hourly with a 7-day free trial
APP = "acme-app"  # SaaS, users at 0.125
GLOBEX_APP = "globex-app"  # another seller's SaaS, users at 0.125

QUERY_TIERS = [{"up_to": 1000, "price": "0.01"}, {"up_to": None, "price": "0.005"}]
EGRESS_PRICE = Decimal("0.09")
ML_PRICES = {"ml.m5.large": "1.20"}
USERS = {"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.125"}

HEADERS = {
    role: {"Authorization": f"Bearer {role}-token"} for role in ("acme", "globex", "buyer", "other-buyer", "ops")
}


def _product(code: str, kind: str, pricing: dict[str, Any], seller: str = "acme", **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "seller": seller,
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Billed software",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": "Full refund within 30 days: billing@example.com",
        "state": "public",
        "pricing": pricing,
        **fields,
    }


def manifest(at: datetime) -> dict[str, Any]:
    when = at.isoformat().replace("+00:00", "Z")
    ml_pricing = {"ml": {"realtime_inference": ML_PRICES, "batch_inference": ML_PRICES}}
    tiered = {
        "period": "hour",
        "items": [
            {"name": "queries", "reporting": "seller", "tiers": QUERY_TIERS},
            {"name": "egress", "reporting": "bill", "tiers": [{"up_to": None, "price": str(EGRESS_PRICE)}]},
        ],
    }
    service = {"service_id": "svc-acme-db", "deployment": "fully_managed_service", "templates": ["standard"]}
    return {
        "region": "us-east-1",
        "sellers": [
            {"id": "acme", "name": "Acme", "tax_form": "W-9", "api_tokens": ["acme-token"]},
            {"id": "globex", "name": "Globex", "tax_form": "W-9", "api_tokens": ["globex-token"]},
        ],
        "buyers": [
            {"account": BUYER, "email": "a@buyer.example", "api_tokens": ["buyer-token"]},
            {"account": OTHER_BUYER, "email": "b@buyer.example", "api_tokens": ["other-buyer-token"]},
        ],
        "operators": [{"id": "ops", "api_tokens": ["ops-token"]}],
        "products": [
            _product(DB, "managed_service", {"tiered": tiered}, managed_service=service),
            _product(MODEL, "ml_model", ml_pricing, ml={"supported_instance_types": ["ml.m5.large"], "preview": True}),
            _product(GA_MODEL, "ml_model", ml_pricing, ml={"supported_instance_types": ["ml.m5.large"]}),
            _product(TRIAL, "ami", {"hourly": {"m5.large": "0.10"}, "free_trial_days": 7}),
            _product(APP, "saas", {"usage": {"category": "users", "dimensions": [USERS]}}),
            _product(GLOBEX_APP, "saas", {"usage": {"category": "users", "dimensions": [USERS]}}, seller="globex"),
        ],
        "subscriptions": [
            {"buyer": BUYER, "product": DB, "at": when, "customer_identifier": "db-1"},
            {"buyer": BUYER, "product": MODEL, "at": when, "customer_identifier": "model-1"},
            {"buyer": BUYER, "product": GA_MODEL, "at": when, "customer_identifier": "model-ga-1"},
            {"buyer": BUYER, "product": APP, "at": when, "customer_identifier": "app-1"},
            {"buyer": OTHER_BUYER, "product": APP, "at": when, "customer_identifier": "app-2"},
            {"buyer": BUYER, "product": GLOBEX_APP, "at": when, "customer_identifier": "gx-1"},
        ],
    }


def billing_market(db: Database, at: datetime) -> None:
    """Load the market with every subscription starting at `at` (the clock should be at `at`)."""
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(manifest(at), session)


def meter(db: Database, product: str, customer: str, dimension: str, quantity: int, at: datetime) -> int:
    """A record the product's seller sends for the hour of `at` (the clock must be within 6 hours after
    it, MTR-04); answers the record's `id`."""
    with db.unit_of_work() as session:
        found = session.execute(
            select(Seller.id, Seller.handle)
            .join(Product, Product.seller_id == Seller.id)
            .where(Product.code == product)
        ).one()
        seller = Principal(Role.SELLER, found.id, found.handle)
        reading = Reading(product, dimension, quantity, at, customer_identifier=customer)
        [outcome] = metering.ingest(session, seller, [reading], source=Source.SELLER)
        assert outcome.ok, outcome
    return record_id(db, outcome.record_id)


def record_id(db: Database, metering_record_id: str | None) -> int:
    from agora.models import UsageRecord

    with db.reader() as session:
        found = session.scalar(select(UsageRecord.id).where(UsageRecord.record_id == metering_record_id))
        assert found is not None
        return found


def bill_line(db: Database, customer: str, item: str, hour: datetime, quantity: int) -> None:
    """An infrastructure bill line the operator posts (PRC-14 `bill`)."""
    with db.unit_of_work() as session:
        [outcome] = platform.record_bill_lines(
            session, [platform.BillLine(DB, item, hour, quantity, customer_identifier=customer)]
        )
        assert outcome.ok, outcome


def ml_job(db: Database, customer: str, seconds: int, at: datetime) -> None:
    """A batch-inference job on one ml.m5.large instance (1.20 an hour, metered per second)."""
    with db.unit_of_work() as session:
        subscription = session.scalars(select(Subscription).where(Subscription.customer_identifier == customer)).one()
        platform.ml_job(session, subscription, "batch_inference", "ml.m5.large", 1, seconds, at)


def subscription_of(db: Database, customer: str) -> Subscription:
    with db.reader() as session:
        return session.scalars(select(Subscription).where(Subscription.customer_identifier == customer)).one()


def buyer_of(db: Database, account: str = BUYER) -> Principal:
    with db.reader() as session:
        found = session.scalars(select(Buyer).where(Buyer.account == account)).one()
        return Principal(Role.BUYER, found.id, found.account)
