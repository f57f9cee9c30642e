"""Products' Catalog API ids in manifests: fixed with `entity_id` and `public_offer_entity_id`, assigned when
absent, unique; and products loaded `limited`, as if reviewed and published (LST-05/06)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from agora.db import Database
from agora.manifest.loader import load_data
from agora.manifest.parse import ManifestError
from agora.models import Product

REFUND = "Full refund within 30 days: billing@example.com"


def product(code: str, **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "seller": "acme",
        "kind": "saas",
        "title": code.title(),
        "short_description": "Software",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": REFUND,
        "pricing": {
            "usage": {
                "category": "units",
                "dimensions": [{"name": "calls", "description": "Calls", "unit": "Units", "rate": "0.01"}],
            }
        },
        **fields,
    }


def manifest(*products: dict[str, Any]) -> dict[str, Any]:
    return {"sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-9"}], "products": list(products)}


def problems(db: Database, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught, db.unit_of_work() as session:
        load_data(data, session)
    return [str(p) for p in caught.value.problems]


def stored(db: Database, code: str) -> Product:
    with db.reader() as session:
        found = session.scalars(select(Product).where(Product.code == code)).one()
        session.expunge(found)
        return found


def test_fixed_and_assigned_entity_ids(db: Database) -> None:
    with db.unit_of_work() as session:
        load_data(
            manifest(
                product("fixed", entity_id="prod-aaaaaaaaaaaaa", public_offer_entity_id="offer-bbbbbbbbbbbbb"),
                product("assigned"),
            ),
            session,
        )
    fixed = stored(db, "fixed")
    assert (fixed.entity_id, fixed.public_offer_entity_id) == ("prod-aaaaaaaaaaaaa", "offer-bbbbbbbbbbbbb")
    assigned = stored(db, "assigned")
    assert re.fullmatch(r"prod-[a-z0-9]{13}", assigned.entity_id or "")
    assert re.fullmatch(r"offer-[a-z0-9]{13}", assigned.public_offer_entity_id or "")
    with db.unit_of_work() as session:  # loading again keeps the assigned ids; a fixed one may be set later
        load_data(
            manifest(
                product("fixed", entity_id="prod-aaaaaaaaaaaaa"), product("assigned", entity_id="prod-ccccccccccccc")
            ),
            session,
        )
    assert stored(db, "assigned").entity_id == "prod-ccccccccccccc"
    assert stored(db, "fixed").public_offer_entity_id == "offer-bbbbbbbbbbbbb"


def test_entity_ids_are_unique_and_shaped_like_aws(db: Database) -> None:
    found = problems(
        db, manifest(product("one", entity_id="prod-aaaaaaaaaaaaa"), product("two", entity_id="prod-aaaaaaaaaaaaa"))
    )
    assert any("products[1].entity_id" in p and "duplicate entity id" in p for p in found), found
    found = problems(db, manifest(product("one", entity_id="product-1")))
    assert any("products[0].entity_id" in p for p in found), found
    with db.unit_of_work() as session:
        load_data(manifest(product("one", entity_id="prod-aaaaaaaaaaaaa")), session)
    found = problems(
        db,
        manifest(
            product("two", public_offer_entity_id="offer-ddddddddddddd"),
            product("three", entity_id="prod-aaaaaaaaaaaaa"),
        ),
    )
    assert any("products[1].entity_id" in p and "'one'" in p for p in found), found


@pytest.mark.rule("LST-05")
def test_a_product_loaded_limited(db: Database) -> None:
    with db.unit_of_work() as session:
        load_data(manifest(product("tested", state="limited")), session)
    loaded = stored(db, "tested")
    assert loaded.state == "limited" and loaded.listing["published_regions"] == ["us-east-1"]
    assert loaded.published_at is None  # not public until its seller signs off
    no_pricing = product("bare", state="limited")
    del no_pricing["pricing"]
    assert any("a limited product needs pricing" in p for p in problems(db, manifest(no_pricing)))
    no_refund = product("norefund", state="limited")
    del no_refund["refund_policy"]
    assert any("LST-07" in p for p in problems(db, manifest(no_refund)))
