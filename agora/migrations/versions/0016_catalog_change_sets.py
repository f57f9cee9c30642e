"""Catalog API: change sets, entity details, tags; entity ids for the products and offers that lack one

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:50:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

import agora.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(13))


def upgrade() -> None:
    when = agora.db.UTCDateTime(timezone=True)
    op.create_table(
        "catalog_change_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_set_id", sa.String(length=40), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("intent", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("client_request_token", sa.String(length=64), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("changes", agora.db.JSONType, nullable=False),
        sa.Column("entity_ids", agora.db.JSONType, nullable=False),
        sa.Column("failure_code", sa.String(length=32), nullable=True),
        sa.Column("failure_description", sa.Text(), nullable=True),
        sa.Column("start_time", when, nullable=False),
        sa.Column("end_time", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_catalog_change_sets_seller_id_sellers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_change_sets")),
        sa.UniqueConstraint("change_set_id", name=op.f("uq_catalog_change_sets_change_set_id")),
        sa.UniqueConstraint("seller_id", "client_request_token", name="uq_catalog_change_sets_token"),
    )
    op.create_index("ix_catalog_change_sets_seller_id", "catalog_change_sets", ["seller_id"])
    op.create_index("ix_catalog_change_sets_seller_status", "catalog_change_sets", ["seller_id", "status"])
    op.create_table(
        "catalog_entities",
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("details", agora.db.JSONType, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_catalog_entities_seller_id_sellers")),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_catalog_entities_product_id_products"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_catalog_entities_offer_id_offers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_catalog_entities")),
    )
    for column in ("seller_id", "product_id", "offer_id"):
        op.create_index(f"ix_catalog_entities_{column}", "catalog_entities", [column])
    op.create_table(
        "catalog_tags",
        sa.Column("resource_arn", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_catalog_tags_seller_id_sellers")),
        sa.PrimaryKeyConstraint("resource_arn", "key", name=op.f("pk_catalog_tags")),
    )
    op.create_index("ix_catalog_tags_seller_id", "catalog_tags", ["seller_id"])
    # Every product and offer is an entity: give the ones made before this revision their ids.
    connection = op.get_bind()
    products = connection.execute(sa.text("SELECT id FROM products WHERE entity_id IS NULL")).scalars().all()
    for product_id in products:
        connection.execute(
            sa.text("UPDATE products SET entity_id = :e, public_offer_entity_id = :o WHERE id = :i"),
            {"e": _id("prod-"), "o": _id("offer-"), "i": product_id},
        )
    connection.execute(sa.text("UPDATE offers SET entity_id = public_id WHERE entity_id IS NULL"))


def downgrade() -> None:
    op.drop_table("catalog_tags")
    op.drop_table("catalog_entities")
    op.drop_table("catalog_change_sets")
