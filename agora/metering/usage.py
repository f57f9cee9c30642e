"""Usage read back: the records a seller, buyer or operator may see, filtered and paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.metering.records import USAGE, epoch, from_epoch, iso
from agora.models import Buyer, Product, Role, Subscription


@dataclass(frozen=True)
class UsageFilter:
    product_code: str | None = None
    customer_identifier: str | None = None
    dimension: str | None = None
    start: datetime | None = None  # inclusive, on the record's period start
    end: datetime | None = None  # exclusive
    after_id: int = 0
    limit: int = 1000


def query(session: Session, principal: Principal, where: UsageFilter) -> list[dict[str, Any]]:
    """Records the caller may see (a seller: its products'; a buyer: its own; an operator: all), oldest
    received first, paged by `after_id`."""
    c = USAGE.c
    statement = (
        select(
            c.id,
            c.record_id,
            c.period_start,
            c.period_end,
            c.dimension,
            c.resource,
            c.quantity,
            c.source,
            c.received_at,
            c.allocations,
            Product.code,
            Subscription.customer_identifier,
            Buyer.account,
        )
        .join(Product, Product.id == c.product_id)
        .join(Subscription, Subscription.id == c.subscription_id)
        .join(Buyer, Buyer.id == c.buyer_id)
        .where(c.id > where.after_id)
        .order_by(c.id)
        .limit(where.limit)
    )
    if principal.role is Role.SELLER:
        statement = statement.where(Product.seller_id == principal.id)
    elif principal.role is Role.BUYER:
        statement = statement.where(c.buyer_id == principal.id)
    if where.product_code:
        statement = statement.where(Product.code == where.product_code)
    if where.customer_identifier:
        statement = statement.where(Subscription.customer_identifier == where.customer_identifier)
    if where.dimension:
        statement = statement.where(c.dimension == where.dimension)
    if where.start:
        statement = statement.where(c.period_start >= epoch(where.start))
    if where.end:
        statement = statement.where(c.period_start < epoch(where.end))
    return [
        {
            "id": row.id,
            "metering_record_id": row.record_id,
            "product": row.code,
            "customer_identifier": row.customer_identifier,
            "customer_account": row.account,
            "dimension": row.dimension,
            "resource": row.resource or None,
            "period_start": iso(from_epoch(row.period_start)),
            "period_end": iso(from_epoch(row.period_end)) if row.period_end is not None else None,
            "quantity": row.quantity,
            "source": row.source,
            "received_at": iso(from_epoch(row.received_at)),
            "allocations": row.allocations,
        }
        for row in session.execute(statement)
    ]
