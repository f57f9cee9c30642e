"""The AWS Marketplace Catalog API's own records: change sets, entity details Agora has no column for, tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class ChangeSet(Timestamped, Base):
    """A seller's StartChangeSet: 1–20 changes applied together by a durable job (PREPARING → APPLYING →
    SUCCEEDED | FAILED, or CANCELLED while still preparing). `changes` keeps each change as requested, with the
    entity id it resolved to and its `ErrorDetailList`; `entity_ids` are the entities it locks while running."""

    __tablename__ = "catalog_change_sets"
    __table_args__ = (
        UniqueConstraint("seller_id", "client_request_token", name="uq_catalog_change_sets_token"),
        Index("ix_catalog_change_sets_seller_status", "seller_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[str] = mapped_column(String(40), unique=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    intent: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    client_request_token: Mapped[str | None] = mapped_column(String(64))
    request_digest: Mapped[str] = mapped_column(String(64))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    entity_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    failure_code: Mapped[str | None] = mapped_column(String(32))
    failure_description: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column()
    end_time: Mapped[datetime | None] = mapped_column()


class CatalogEntity(Timestamped, Base):
    """What the Catalog API says about an entity beyond Agora's own columns: a product's dimensions, delivery
    options and targeting; an offer's name, description and AWS terms. A draft `Offer@1.0` lives only here until
    ReleaseOffer makes it an Agora offer (`offer_id`) or it becomes its product's public pricing."""

    __tablename__ = "catalog_entities"

    entity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column()


class CatalogTag(Base):
    """TagResource's tags, per resource ARN (an entity's or a change set's), owned by its seller."""

    __tablename__ = "catalog_tags"

    resource_arn: Mapped[str] = mapped_column(String(300), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
