"""A marketplace for metering tests: sellers and buyers with SDK access keys, metered products of every
front door, and subscriptions with known customer identifiers. Loaded through the manifest loader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agora import tasks
from agora.db import Database
from agora.manifest.loader import load_data

SAAS = "acme-metered"  # saas, usage dimensions users and requests
GATEWAY = "acme-gateway"  # ami, usage dimension calls (MeterUsage from the buyer's instance)
MANAGED = "acme-search"  # managed_service, tiered: queries (seller) and storage (prometheus)
MANAGED_2 = "acme-vector"  # another managed_service of acme, tiered: vectors (seller)
EU_ONLY = "acme-eu"  # saas offered only in eu-west-1
OTHER = "globex-metered"  # another seller's saas
HOURLY = "acme-hourly"  # ami, hourly m5.large / m5.xlarge
ML = "acme-ml"  # ml_algorithm with training / realtime / batch prices
TIMED = "acme-db"  # managed_service, one template: uptime (time) and egress (bill)
MULTI = "acme-cache"  # managed_service, templates small/large, items name no plans: none billable (PRC-15)
PLANNED = "acme-queue"  # managed_service, templates small/large: node_time (large), msg_time (both)
CONTAINER = "acme-container"  # container, hourly (RegisterUsage)
CONTRACT = "acme-contract"  # saas sold by contract: seats and admins (GetEntitlements)

SELLER_KEY = ("AKIDACME00000001", "acme-secret")
OTHER_SELLER_KEY = ("AKIDGLOBEX000001", "globex-secret")
BUYER_KEY = ("AKIDBUYER0000001", "buyer-secret")
OTHER_BUYER_KEY = ("AKIDBUYER0000002", "other-buyer-secret")
UNSUBSCRIBED_KEY = ("AKIDBUYER0000003", "unsubscribed-secret")
BUYER = "111122223333"
OTHER_BUYER = "444455556666"
UNSUBSCRIBED_BUYER = "777788889999"


def _access_key(key: tuple[str, str]) -> dict[str, str]:
    return {"id": key[0], "secret": key[1]}


def _product(code: str, kind: str, pricing: dict[str, Any], seller: str = "acme", **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "code": code,
        "seller": seller,
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Metered software",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": "Full refund within 30 days: billing@example.com",
        "state": "public",
        "pricing": pricing,
    }
    entry.update(fields)
    return entry


def _usage(*names: str) -> dict[str, Any]:
    dims = [{"name": n, "description": n.title(), "unit": "Units", "rate": "0.01"} for n in names]
    return {"usage": {"category": "units", "dimensions": dims}}


def _item(name: str, reporting: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "reporting": reporting, "tiers": [{"up_to": None, "price": "0.001"}], **fields}


def _managed(code: str, templates: list[str], *items: dict[str, Any]) -> dict[str, Any]:
    service = {"service_id": f"svc-{code}", "deployment": "fully_managed_service", "templates": templates}
    return _product(
        code, "managed_service", {"tiered": {"period": "hour", "items": list(items)}}, managed_service=service
    )


def manifest(at: datetime, contract_buyers: Sequence[str] = ()) -> dict[str, Any]:
    """`contract_buyers`: extra buyer accounts, each with a 1-month contract for one seat of CONTRACT."""
    when = at.isoformat().replace("+00:00", "Z")
    return {
        "region": "us-east-1",
        "sellers": [
            {
                "id": "acme",
                "name": "Acme",
                "tax_form": "W-9",
                "access_keys": [_access_key(SELLER_KEY)],
                "api_tokens": ["acme-token"],
            },
            {
                "id": "globex",
                "name": "Globex",
                "tax_form": "W-9",
                "access_keys": [_access_key(OTHER_SELLER_KEY)],
                "api_tokens": ["globex-token"],
            },
        ],
        "buyers": [
            {
                "account": BUYER,
                "email": "a@buyer.example",
                "access_keys": [_access_key(BUYER_KEY)],
                "api_tokens": ["buyer-token"],
            },
            {
                "account": OTHER_BUYER,
                "email": "b@buyer.example",
                "access_keys": [_access_key(OTHER_BUYER_KEY)],
                "api_tokens": ["other-buyer-token"],
            },
            {
                "account": UNSUBSCRIBED_BUYER,
                "email": "c@buyer.example",
                "access_keys": [_access_key(UNSUBSCRIBED_KEY)],
                "api_tokens": ["unsubscribed-token"],
            },
            *({"account": account, "email": f"{account}@buyer.example"} for account in contract_buyers),
        ],
        "operators": [{"id": "ops", "api_tokens": ["ops-token"]}],
        "products": [
            _product(SAAS, "saas", _usage("users", "requests"), fulfillment_url="https://acme.example/register"),
            _product(GATEWAY, "ami", _usage("calls")),
            _product(
                MANAGED,
                "managed_service",
                {
                    "tiered": {
                        "period": "hour",
                        "items": [
                            {
                                "name": "queries",
                                "reporting": "seller",
                                "tiers": [{"up_to": 1000, "price": "0.01"}, {"up_to": None, "price": "0.005"}],
                            },
                            {
                                "name": "storage",
                                "reporting": "prometheus",
                                "metric": "storage_bytes_total",
                                "tiers": [{"up_to": None, "price": "0.001"}],
                            },
                        ],
                    }
                },
                managed_service={
                    "service_id": "svc-acme-search",
                    "deployment": "fully_managed_service",
                    "templates": ["standard"],
                },
            ),
            _product(
                MANAGED_2,
                "managed_service",
                {
                    "tiered": {
                        "period": "day",
                        "items": [
                            {"name": "vectors", "reporting": "seller", "tiers": [{"up_to": None, "price": "0.02"}]}
                        ],
                    }
                },
                managed_service={
                    "service_id": "svc-acme-vector",
                    "deployment": "fully_managed_service",
                    "templates": ["standard"],
                },
            ),
            _product(EU_ONLY, "saas", _usage("users"), regions=["eu-west-1"]),
            _product(OTHER, "saas", _usage("users"), seller="globex"),
            _product(HOURLY, "ami", {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}}),
            _product(
                ML,
                "ml_algorithm",
                {
                    "ml": {
                        use: {"ml.m5.large": "1.00", "ml.c5.xlarge": "2.00"}
                        for use in ("training", "realtime_inference", "batch_inference")
                    }
                },
            ),
            _managed(TIMED, ["standard"], _item("uptime", "time"), _item("egress", "bill")),
            _managed(MULTI, ["small", "large"], _item("node_time", "time"), _item("transfer", "bill")),
            _managed(
                PLANNED,
                ["small", "large"],
                _item("node_time", "time", plans=["large"]),
                _item("msg_time", "time", plans=["small", "large"]),
            ),
            _product(CONTAINER, "container", {"hourly": {"m5.large": "0.05"}}),
            _product(
                CONTRACT,
                "saas",
                {
                    "contract": {
                        "dimensions": [
                            {"name": "seats", "description": "Seats", "prices": {"1": "10", "12": "100"}},
                            {"name": "admins", "description": "Admins", "prices": {"12": "50"}},
                        ]
                    }
                },
                fulfillment_url="https://acme.example/register",
            ),
        ],
        "subscriptions": [
            {"buyer": BUYER, "product": SAAS, "at": when, "customer_identifier": "cust-1"},
            {"buyer": OTHER_BUYER, "product": SAAS, "at": when, "customer_identifier": "cust-2"},
            {"buyer": BUYER, "product": GATEWAY, "at": when, "customer_identifier": "gw-1"},
            {"buyer": BUYER, "product": MANAGED, "at": when, "customer_identifier": "si-1000001"},
            {"buyer": OTHER_BUYER, "product": MANAGED, "at": when, "customer_identifier": "si-1000002"},
            {"buyer": BUYER, "product": MANAGED_2, "at": when, "customer_identifier": "si-2000001"},
            {"buyer": BUYER, "product": EU_ONLY, "at": when, "customer_identifier": "eu-1"},
            {"buyer": BUYER, "product": OTHER, "at": when, "customer_identifier": "gx-1"},
            {"buyer": BUYER, "product": HOURLY, "at": when, "customer_identifier": "hr-1"},
            {"buyer": BUYER, "product": ML, "at": when, "customer_identifier": "ml-1"},
            {"buyer": BUYER, "product": TIMED, "at": when, "customer_identifier": "db-1"},
            {"buyer": BUYER, "product": MULTI, "at": when, "customer_identifier": "cache-1"},
            {"buyer": BUYER, "product": PLANNED, "at": when, "customer_identifier": "queue-1"},
            {"buyer": BUYER, "product": CONTAINER, "at": when, "customer_identifier": "ctr-1"},
            {
                "buyer": BUYER,
                "product": CONTRACT,
                "at": when,
                "customer_identifier": "ct-1",
                "contract": {"duration_months": 12, "quantities": {"seats": 10, "admins": 2}},
            },
            {
                "buyer": OTHER_BUYER,
                "product": CONTRACT,
                "at": when,
                "customer_identifier": "ct-2",
                "contract": {"duration_months": 12, "quantities": {"seats": 5}},
            },
            *(
                {
                    "buyer": account,
                    "product": CONTRACT,
                    "at": when,
                    "customer_identifier": f"ct-{account}",
                    "contract": {"duration_months": 1, "quantities": {"seats": 1}},
                }
                for account in contract_buyers
            ),
        ],
    }


@dataclass(frozen=True)
class Metered:
    subscribed_at: datetime


def metered_market(db: Database, at: datetime, contract_buyers: Sequence[str] = ()) -> Metered:
    """Load the metering marketplace with every subscription starting at `at`."""
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(manifest(at, contract_buyers), session)
    return Metered(at)
