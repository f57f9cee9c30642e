"""One active subscription per buyer and product is a database constraint, not only a check."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from agora import clock
from agora.db import Database
from agora.models import Product, Subscription
from tests.factories.identities import add_buyer, add_seller


def test_two_active_subscriptions_of_one_buyer_to_one_product_cannot_both_commit(db: Database) -> None:
    with db.unit_of_work() as session:
        seller = add_seller(session)
        buyer = add_buyer(session)
        product = Product(
            code="p-one",
            seller_id=seller.id,
            kind="ami",
            title="P",
            state="public",
            listing={},
            pricing={"free": True},
            updated_at=clock.now(),
        )
        session.add(product)
        session.flush()
        ids = (buyer.id, product.id)
    with db.unit_of_work() as session:
        session.add(
            Subscription(
                buyer_id=ids[0], product_id=ids[1], customer_identifier="c-1", started_at=clock.now(), purchases={}
            )
        )
    with pytest.raises(IntegrityError), db.unit_of_work() as session:
        session.add(
            Subscription(
                buyer_id=ids[0], product_id=ids[1], customer_identifier="c-2", started_at=clock.now(), purchases={}
            )
        )
        session.flush()
    with db.unit_of_work() as session:
        first = session.query(Subscription).filter_by(customer_identifier="c-1").one()
        first.ended_at = clock.now()
        session.add(
            Subscription(
                buyer_id=ids[0], product_id=ids[1], customer_identifier="c-3", started_at=clock.now(), purchases={}
            )
        )
