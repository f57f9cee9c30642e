from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class Offer(Timestamped, Base):
    """A private offer (OFR-01): one product, one buyer, its own prices and terms. Immutable once extended
    (OFR-02); only the named buyer sees or accepts it, before its deadline (OFR-03)."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    entity_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the Catalog API's `offer-…`
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    pricing: Mapped[dict[str, Any]] = mapped_column(JSONType)
    duration_days: Mapped[int] = mapped_column()
    accept_by: Mapped[datetime] = mapped_column()
    total_cents: Mapped[int | None] = mapped_column(BigInteger)
    schedule: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    eula_digest: Mapped[str | None] = mapped_column(String(64))
    extended_at: Mapped[datetime | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
