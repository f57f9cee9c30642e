from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class Product(Timestamped, Base):
    """A listing. Searchable fields are columns; the rest of the listing and the pricing document are JSON."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    listing: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column()
