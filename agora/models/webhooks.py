from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class WebhookDelivery(Timestamped, Base):
    """One lifecycle event for one seller endpoint (SUB-06). The job it points to holds the attempts and
    the last error; replaying the delivery gives it a new job."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_status: Mapped[int | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
