from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class PriceVersion(Timestamped, Base):
    """One price of a product, never edited: a change is the next version (CHG-01/02)."""

    __tablename__ = "price_versions"
    __table_args__ = (UniqueConstraint("product_id", "number", name="uq_price_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column()
    pricing: Mapped[dict[str, Any]] = mapped_column(JSONType)
    family: Mapped[str] = mapped_column(String(32))
    noticed_at: Mapped[datetime] = mapped_column()
    existing_from: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(160))


class PricingModelRequest(Timestamped, Base):
    """PRC-16: a change of pricing model on a published product waits for the operator."""

    __tablename__ = "pricing_model_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    pricing: Mapped[dict[str, Any]] = mapped_column(JSONType)
    from_family: Mapped[str] = mapped_column(String(32))
    to_family: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(160))
    decided_by: Mapped[str | None] = mapped_column(String(160))
    decided_at: Mapped[datetime | None] = mapped_column()


class FeeRate(Timestamped, Base):
    """PRC-17: the listing fee the marketplace keeps, per product kind and pricing family ('*' = any)."""

    __tablename__ = "fee_rates"
    __table_args__ = (UniqueConstraint("kind", "family", name="uq_fee_rates_kind_family"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    family: Mapped[str] = mapped_column(String(32))
    percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))


class InfrastructurePrice(Timestamped, Base):
    """LST-10: the operator's estimate of infrastructure cost per instance type and region, per hour."""

    __tablename__ = "infrastructure_prices"
    __table_args__ = (UniqueConstraint("instance_type", "region", name="uq_infrastructure_prices_type_region"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_type: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(32))
    hourly: Mapped[Decimal] = mapped_column(Numeric(12, 6))
