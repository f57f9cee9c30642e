"""A marketplace whose agreements have known ids: the metering market (tests.factories.metering) with fixed
agreement ids, an annual purchase with a free trial, and private offers in every state (the manifest's `offers`
section)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from agora import tasks
from agora.auth import Principal
from agora.db import Database
from agora.manifest.loader import load_data
from agora.models import Buyer, Role
from agora.subscriptions import service as subscriptions
from tests.factories.metering import BUYER, CONTRACT, OTHER_BUYER, SAAS, manifest

ANNUAL = "acme-annual"  # ami: hourly and annual prices, a 7-day free trial
PRIVATE = "acme-private"  # saas sold to BUYER by a private offer
BYOL = "acme-byol"  # ami: bring your own license, or hourly
SAAS_AGREEMENT = "agmt-saasbuyer000000000000001"
SAAS_OTHER_AGREEMENT = "agmt-saasother000000000000002"
CONTRACT_AGREEMENT = "agmt-contract0000000000000003"
ANNUAL_AGREEMENT = "agmt-annual00000000000000004"
OFFER_AGREEMENT = "agmt-offer000000000000000005"
ACCEPTED_OFFER = "offer-accepted00000001"
EXTENDED_OFFER = "offer-extended00000002"
DRAFT_OFFER = "offer-draft00000000003"
OPERATOR_KEY = ("AKIDOPERATOR0001", "operator-secret")
# The Catalog API's ids of the products and their public offers, fixed by the manifest.
SAAS_ENTITY = "prod-acmemetered0001"
SAAS_PUBLIC_OFFER = "offer-acmemeteredpublic"
PRIVATE_ENTITY = "prod-acmeprivate0001"
CONTRACT_ENTITY = "prod-acmecontract001"
FIXED = {
    (BUYER, SAAS): SAAS_AGREEMENT,
    (OTHER_BUYER, SAAS): SAAS_OTHER_AGREEMENT,
    (BUYER, CONTRACT): CONTRACT_AGREEMENT,
    (BUYER, ANNUAL): ANNUAL_AGREEMENT,
}


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def agreement_manifest(at: datetime) -> dict[str, Any]:
    """Every subscription starts at `at`; the private offer was made then and accepted an hour later."""
    data = manifest(at)
    data["sellers"][0]["data_sharing"] = True  # private offers need it (SEL-03)
    data["operators"][0]["access_keys"] = [{"id": OPERATOR_KEY[0], "secret": OPERATOR_KEY[1]}]
    base = next(p for p in data["products"] if p["code"] == SAAS)
    data["products"] += [
        {
            **base,
            "code": ANNUAL,
            "kind": "ami",
            "pricing": {"hourly": {"m5.large": "0.10"}, "annual": {"m5.large": "700"}, "free_trial_days": 7},
        },
        {**base, "code": PRIVATE},
        {**base, "code": BYOL, "kind": "ami", "pricing": {"byol": True, "hourly": {"m5.large": "0.10"}}},
    ]
    data["subscriptions"].append(
        {"buyer": BUYER, "product": ANNUAL, "at": _iso(at), "annual": {"m5.large": 2}, "auto_renew": True}
    )
    for product in data["products"]:
        if product["code"] == SAAS:
            product["entity_id"], product["public_offer_entity_id"] = SAAS_ENTITY, SAAS_PUBLIC_OFFER
        if product["code"] == PRIVATE:
            product["entity_id"] = PRIVATE_ENTITY
        if product["code"] == CONTRACT:
            product["entity_id"] = CONTRACT_ENTITY
    for sub in data["subscriptions"]:
        fixed = FIXED.get((sub["buyer"], sub["product"]))
        if fixed:
            sub["agreement_id"] = fixed
    users = {"name": "users", "description": "Users", "unit": "Users", "rate": "0.005"}
    usage = {"usage": {"category": "units", "dimensions": [users]}}
    offer: dict[str, Any] = {"product": PRIVATE, "buyer": BUYER, "pricing": usage, "at": _iso(at)}
    data["offers"] = [
        {
            **offer,
            "id": "accepted",
            "entity_id": ACCEPTED_OFFER,
            "duration_days": 365,
            "accept_by": _iso(at + timedelta(days=30)),
            "schedule": [
                {"at": _iso(at + timedelta(hours=1)), "amount": "600.00"},
                {"at": _iso(at + timedelta(days=180)), "amount": "600.00"},
            ],
            "state": "accepted",
            "accepted_at": _iso(at + timedelta(hours=1)),
            "agreement_id": OFFER_AGREEMENT,
        },
        {
            **offer,
            "id": "extended",
            "buyer": OTHER_BUYER,
            "entity_id": EXTENDED_OFFER,
            "duration_days": 30,
            "accept_by": _iso(at + timedelta(days=30)),
            "total": "99.00",
            "state": "extended",
        },
        {
            **offer,
            "id": "draft",
            "entity_id": DRAFT_OFFER,
            "duration_days": 30,
            "accept_by": _iso(at + timedelta(days=30)),
            "state": "draft",
        },
    ]
    return data


def subscribe_byol(db: Database, license_reference: str = "LIC-ACME-0001") -> str:
    """BUYER subscribes to BYOL now with its own license (PRC-11); the subscription's agreement id."""
    with db.unit_of_work() as session:
        buyer = session.scalars(select(Buyer).where(Buyer.account == BUYER)).one()
        subscription, _ = subscriptions.subscribe(
            session,
            Principal(Role.BUYER, buyer.id, buyer.account),
            BYOL,
            accept_eula=True,
            license_reference=license_reference,
            customer_identifier="byol-1",
        )
        assert subscription.agreement_id is not None
        return subscription.agreement_id


def agreement_market(db: Database, at: datetime) -> None:
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(agreement_manifest(at), session)
