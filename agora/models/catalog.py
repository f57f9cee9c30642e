from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class Product(Timestamped, Base):
    """A listing. `listing` holds the approved listing fields; facets used for filtering are columns.

    While a public product has a pending change request, `listing` keeps the approved version (what buyers
    see) and the request holds the proposal.
    """

    __tablename__ = "products"
    # The storefront's search page orders by title and counts each facet over every public product: with
    # these, each of its statements reads one index in order, never the table nor a sort (migration 0014).
    __table_args__ = (
        Index("ix_products_state_title", "state", "title"),
        Index("ix_products_state_kind", "state", "kind"),
        Index("ix_products_state_category", "state", "category"),
        Index("ix_products_state_pricing_family", "state", "pricing_family"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    # The Catalog API's ids (`prod-…`, and `offer-…` for the public pricing as an Offer@1.0 entity).
    entity_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    public_offer_entity_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    listing: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    category: Mapped[str | None] = mapped_column(String(80), index=True)
    pricing_family: Mapped[str | None] = mapped_column(String(32), index=True)
    free_trial: Mapped[bool] = mapped_column(default=False)
    enterprise_only: Mapped[bool] = mapped_column(default=False)
    # LST-04: a managed service backs at most one product; the unique constraint is the rule.
    managed_service_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ProductRegion(Base):
    __tablename__ = "product_regions"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class ProductAsset(Timestamped, Base):
    """An uploaded file, stored content-addressed (`digest`) by the asset storage."""

    __tablename__ = "product_assets"
    __table_args__ = (UniqueConstraint("product_id", "kind", "digest", name="uq_product_assets_content"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))


class ChangeRequest(Timestamped, Base):
    """A seller's edit to a public listing, waiting for the operator."""

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_state", "state", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(160))


class SearchDocument(Base):
    """The text search runs over, one row per public product (PostgreSQL indexes it with a GIN tsvector;
    SQLite mirrors it into an FTS5 table)."""

    __tablename__ = "search_documents"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
