from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class Subscription(Timestamped, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("product_id", "customer_identifier", name="uq_subscriptions_customer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    customer_identifier: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # Purchases made with the subscription (contract, annual) as the manifest gave them; the buying
    # issue turns these into their own tables.
    purchases: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
