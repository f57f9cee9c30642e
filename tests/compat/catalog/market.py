"""A market for Catalog API tests, loaded through the manifest with known entity ids: a seller with SDK keys
(enrolled for private offers), another seller, a buyer, an operator, and products of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
from botocore.config import Config
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock, tasks
from agora.db import Database
from agora.jobs import Worker
from agora.manifest.loader import load_data
from agora.models import CatalogEntity, Product
from tests.live import live_server

SELLER_KEY = ("AKIDCATALOG00001", "catalog-secret")
OTHER_SELLER_KEY = ("AKIDCATALOG00002", "other-catalog-secret")
BUYER_KEY = ("AKIDCATBUYER0001", "catalog-buyer-secret")
BUYER = "111111111111"
OTHER_BUYER = "222222222222"
PUBLIC_SAAS = "prod-1111111111111"  # the reference scripts' product id
PUBLIC_SAAS_OFFER = "offer-1111111111111"
LIMITED_SAAS = "prod-2222222222222"
PUBLIC_AMI = "prod-3333333333333"
PUBLIC_CONTAINER = "prod-4444444444444"
OTHERS = "prod-9999999999999"
ONE_ATTEMPT = Config(retries={"max_attempts": 1})
REFUND = "Full refund within 30 days: billing@example.com"


def _product(code: str, kind: str, entity_id: str, pricing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "code": code,
        "seller": "acme",
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Software for catalog tests",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": REFUND,
        "state": "public",
        "entity_id": entity_id,
        "pricing": pricing,
    }
    entry.update(fields)
    return entry


def _usage(*names: str) -> dict[str, Any]:
    return {
        "usage": {
            "category": "units",
            "dimensions": [{"name": n, "description": f"{n} used", "unit": "Units", "rate": "0.10"} for n in names],
        }
    }


def manifest(variant: str = "saas") -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "sellers": [
            {
                "id": "acme",
                "name": "Acme",
                "tax_form": "W-9",
                "data_sharing": True,
                "access_keys": [{"id": SELLER_KEY[0], "secret": SELLER_KEY[1]}],
                "api_tokens": ["acme-catalog-token"],
            },
            {
                "id": "globex",
                "name": "Globex",
                "tax_form": "W-9",
                "access_keys": [{"id": OTHER_SELLER_KEY[0], "secret": OTHER_SELLER_KEY[1]}],
            },
        ],
        "buyers": [
            {
                "account": BUYER,
                "email": "a@buyer.example",
                "access_keys": [{"id": BUYER_KEY[0], "secret": BUYER_KEY[1]}],
                "api_tokens": ["catalog-buyer-token"],
            },
            {"account": OTHER_BUYER, "email": "b@buyer.example"},
        ],
        "operators": [{"id": "ops", "api_tokens": ["catalog-ops-token"]}],
        "products": products(variant),
    }


def products(variant: str) -> list[dict[str, Any]]:
    """`variant` names the kind of product the reference scripts' ids (prod-1111111111111 and its public offer
    offer-1111111111111) belong to: saas, ami or container."""
    ids = {"saas": PUBLIC_SAAS, "ami": PUBLIC_AMI, "container": PUBLIC_CONTAINER, "limited": LIMITED_SAAS}
    if variant in ("ami", "container", "limited"):
        ids["saas"], ids[variant] = ids[variant], PUBLIC_SAAS

    def offer(kind: str) -> dict[str, Any]:
        # In the "private" variant the scripts' offer id is a draft private offer instead (see `serving`).
        return (
            {"public_offer_entity_id": PUBLIC_SAAS_OFFER} if ids[kind] == PUBLIC_SAAS and variant != "private" else {}
        )

    return [
        _product(
            "acme-saas",
            "saas",
            ids["saas"],
            _usage("WorkloadSmall", "WorkloadMedium"),
            fulfillment_url="https://acme.example/register",
            **offer("saas"),
        ),
        _product("acme-limited", "saas", ids["limited"], _usage("Seats"), state="limited", **offer("limited")),
        _product("acme-ami", "ami", ids["ami"], {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}}, **offer("ami")),
        _product(
            "acme-container", "container", ids["container"], {"hourly": {"m5.large": "0.05"}}, **offer("container")
        ),
        {**_product("globex-saas", "saas", OTHERS, _usage("Calls")), "seller": "globex"},
    ]


def draft_private_offer(session: Session) -> None:
    """offer-1111111111111 as a draft private offer of prod-1111111111111 for BUYER, as the Catalog API keeps one
    before ReleaseOffer makes it an Agora offer."""
    product = session.scalars(select(Product).where(Product.entity_id == PUBLIC_SAAS)).one()
    session.add(
        CatalogEntity(
            entity_id=PUBLIC_SAAS_OFFER,
            entity_type="Offer@1.0",
            seller_id=product.seller_id,
            product_id=product.id,
            details={
                "ProductId": PUBLIC_SAAS,
                "Name": "Draft offer",
                "Targeting": {"PositiveTargeting": {"BuyerAccounts": [BUYER]}},
            },
            updated_at=clock.now(),
        )
    )


@dataclass
class Live:
    db: Database
    url: str
    clock: clock.ManualClock

    def client(self, key: tuple[str, str] = SELLER_KEY) -> Any:
        return boto3.client(
            "marketplace-catalog",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=ONE_ATTEMPT,
        )

    def run_jobs(self) -> int:
        tasks.register_all()
        return Worker(self.db).run_until_idle()

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)


@contextmanager
def serving(db: Database, variant: str = "saas") -> Iterator[Live]:
    """boto3 signs with the wall clock: the server's clock is frozen at the real current second."""
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.use_clock(clock.ManualClock(now)) as frozen:
        assert isinstance(frozen, clock.ManualClock)
        with db.unit_of_work() as session:
            load_data(manifest(variant), session)
            if variant == "private":
                draft_private_offer(session)
        with live_server(db) as url:
            yield Live(db, url, frozen)
