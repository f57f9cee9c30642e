"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 14:01:33.706344
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import agora.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=160), nullable=False),
        sa.Column("before", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True),
        sa.Column("after", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_request_id"), ["request_id"], unique=False)
        batch_op.create_index("ix_audit_events_target", ["target_type", "target_id"], unique=False)

    op.create_table(
        "buyers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=12), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("enterprise", sa.Boolean(), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(account) = 12", name=op.f("ck_buyers_account_12_digits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buyers")),
        sa.UniqueConstraint("account", name=op.f("uq_buyers_account")),
    )
    op.create_table(
        "fee_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_rates")),
        sa.UniqueConstraint("kind", "family", name="uq_fee_rates_kind_family"),
    )
    op.create_table(
        "infrastructure_prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_type", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("hourly", sa.Numeric(precision=12, scale=6), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infrastructure_prices")),
        sa.UniqueConstraint("instance_type", "region", name="uq_infrastructure_prices_type_region"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("run_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=120), nullable=True),
        sa.Column("locked_until", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_jobs_dedupe_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_due", ["state", "run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_name"), ["name"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sent_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_notifications_to"), ["to"], unique=False)

    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("handle", name=op.f("uq_operators_handle")),
    )
    op.create_table(
        "sellers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("tax_form", sa.String(length=8), nullable=False),
        sa.Column("data_sharing", sa.Boolean(), nullable=False),
        sa.Column("webhook_secret_encrypted", sa.String(length=512), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sellers")),
        sa.UniqueConstraint("handle", name=op.f("uq_sellers_handle")),
    )
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(length=128), nullable=False),
        sa.Column("secret_encrypted", sa.String(length=512), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("seller_id", sa.Integer(), nullable=True),
        sa.Column("buyer_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(CASE WHEN operator_id IS NULL THEN 0 ELSE 1 END + CASE WHEN seller_id IS NULL THEN 0 ELSE 1 END + CASE WHEN buyer_id IS NULL THEN 0 ELSE 1 END) = 1",
            name=op.f("ck_access_keys_one_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["buyers.id"], name=op.f("fk_access_keys_buyer_id_buyers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_access_keys_operator_id_operators"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_access_keys_seller_id_sellers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("access_key_id", name=op.f("pk_access_keys")),
    )
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_keys_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_keys_operator_id"), ["operator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_keys_seller_id"), ["seller_id"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("seller_id", sa.Integer(), nullable=True),
        sa.Column("buyer_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(CASE WHEN operator_id IS NULL THEN 0 ELSE 1 END + CASE WHEN seller_id IS NULL THEN 0 ELSE 1 END + CASE WHEN buyer_id IS NULL THEN 0 ELSE 1 END) = 1",
            name=op.f("ck_api_tokens_one_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["buyers.id"], name=op.f("fk_api_tokens_buyer_id_buyers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_api_tokens_operator_id_operators"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_api_tokens_seller_id_sellers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_operator_id"), ["operator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_seller_id"), ["seller_id"], unique=False)

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "listing", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("pricing", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True),
        sa.Column("category", sa.String(length=80), nullable=True),
        sa.Column("pricing_family", sa.String(length=32), nullable=True),
        sa.Column("free_trial", sa.Boolean(), nullable=False),
        sa.Column("enterprise_only", sa.Boolean(), nullable=False),
        sa.Column("managed_service_id", sa.String(length=128), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_products_seller_id_sellers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("code", name=op.f("uq_products_code")),
        sa.UniqueConstraint("managed_service_id", name=op.f("uq_products_managed_service_id")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_pricing_family"), ["pricing_family"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_seller_id"), ["seller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_state"), ["state"], unique=False)

    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column(
            "changes", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=160), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_change_requests_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_requests_product_id"), ["product_id"], unique=False)
        batch_op.create_index("ix_change_requests_state", ["state", "created_at"], unique=False)

    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "pricing", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("accept_by", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=True),
        sa.Column(
            "schedule", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("eula_digest", sa.String(length=64), nullable=True),
        sa.Column("extended_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["buyer_id"], ["buyers.id"], name=op.f("fk_offers_buyer_id_buyers")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_offers_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("public_id", name=op.f("uq_offers_public_id")),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offers_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offers_product_id"), ["product_id"], unique=False)

    op.create_table(
        "price_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "pricing", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("noticed_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("existing_from", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_price_versions_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_versions")),
        sa.UniqueConstraint("product_id", "number", name="uq_price_versions_number"),
    )
    with op.batch_alter_table("price_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_versions_product_id"), ["product_id"], unique=False)

    op.create_table(
        "pricing_model_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column(
            "pricing", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("from_family", sa.String(length=32), nullable=False),
        sa.Column("to_family", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=160), nullable=False),
        sa.Column("decided_by", sa.String(length=160), nullable=True),
        sa.Column("decided_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_pricing_model_requests_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pricing_model_requests")),
    )
    with op.batch_alter_table("pricing_model_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pricing_model_requests_product_id"), ["product_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pricing_model_requests_state"), ["state"], unique=False)

    op.create_table(
        "product_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_assets_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_assets")),
        sa.UniqueConstraint("product_id", "kind", "digest", name="uq_product_assets_content"),
    )
    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_assets_digest"), ["digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_product_assets_product_id"), ["product_id"], unique=False)

    op.create_table(
        "product_regions",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_regions_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", "region", name=op.f("pk_product_regions")),
    )
    with op.batch_alter_table("product_regions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_regions_region"), ["region"], unique=False)

    op.create_table(
        "search_documents",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_search_documents_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_search_documents")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("delivered_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_webhook_deliveries_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_webhook_deliveries_product_id_products")
        ),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_webhook_deliveries_seller_id_sellers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_deliveries_message_id")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_product_id"), ["product_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_seller_id"), ["seller_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("customer_identifier", sa.String(length=128), nullable=False),
        sa.Column("started_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("eula", sa.String(length=160), nullable=True),
        sa.Column("eula_accepted_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("license_reference", sa.String(length=200), nullable=True),
        sa.Column("trial_ends_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column(
            "purchases", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["buyer_id"], ["buyers.id"], name=op.f("fk_subscriptions_buyer_id_buyers")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_subscriptions_offer_id_offers")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_subscriptions_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("product_id", "customer_identifier", name="uq_subscriptions_customer"),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_product_id"), ["product_id"], unique=False)
        batch_op.create_index(
            "uq_subscriptions_active",
            ["buyer_id", "product_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )

    op.create_table(
        "annual_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("instance_type", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("renews_id", sa.Integer(), nullable=True),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["renews_id"], ["annual_purchases.id"], name=op.f("fk_annual_purchases_renews_id_annual_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_annual_purchases_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annual_purchases")),
    )
    with op.batch_alter_table("annual_purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annual_purchases_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("duration_months", sa.Integer(), nullable=False),
        sa.Column("starts_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("license_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_contracts_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("license_key", name=op.f("uq_contracts_license_key")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contracts_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "trial_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["buyer_id"], ["buyers.id"], name=op.f("fk_trial_uses_buyer_id_buyers")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_trial_uses_product_id_products")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_trial_uses_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_uses")),
        sa.UniqueConstraint("buyer_id", "product_id", name="uq_trial_uses_buyer_product"),
    )
    op.create_table(
        "contract_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_contract_charges_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_charges")),
    )
    with op.batch_alter_table("contract_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contract_charges_contract_id"), ["contract_id"], unique=False)

    op.create_table(
        "entitlements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"], name=op.f("fk_entitlements_contract_id_contracts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlements")),
        sa.UniqueConstraint("contract_id", "dimension", name="uq_entitlements_dimension"),
    )
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entitlements_contract_id"), ["contract_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlements_contract_id"))

    op.drop_table("entitlements")
    with op.batch_alter_table("contract_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_charges_contract_id"))

    op.drop_table("contract_charges")
    op.drop_table("trial_uses")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_subscription_id"))

    op.drop_table("contracts")
    with op.batch_alter_table("annual_purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annual_purchases_subscription_id"))

    op.drop_table("annual_purchases")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_subscriptions_active",
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_subscriptions_product_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_buyer_id"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_seller_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_product_id"))

    op.drop_table("webhook_deliveries")
    op.drop_table("search_documents")
    with op.batch_alter_table("product_regions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_regions_region"))

    op.drop_table("product_regions")
    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_assets_product_id"))
        batch_op.drop_index(batch_op.f("ix_product_assets_digest"))

    op.drop_table("product_assets")
    with op.batch_alter_table("pricing_model_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pricing_model_requests_state"))
        batch_op.drop_index(batch_op.f("ix_pricing_model_requests_product_id"))

    op.drop_table("pricing_model_requests")
    with op.batch_alter_table("price_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_versions_product_id"))

    op.drop_table("price_versions")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offers_product_id"))
        batch_op.drop_index(batch_op.f("ix_offers_buyer_id"))

    op.drop_table("offers")
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_change_requests_state")
        batch_op.drop_index(batch_op.f("ix_change_requests_product_id"))

    op.drop_table("change_requests")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_state"))
        batch_op.drop_index(batch_op.f("ix_products_seller_id"))
        batch_op.drop_index(batch_op.f("ix_products_pricing_family"))
        batch_op.drop_index(batch_op.f("ix_products_kind"))
        batch_op.drop_index(batch_op.f("ix_products_category"))

    op.drop_table("products")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_seller_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_operator_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_buyer_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_keys_seller_id"))
        batch_op.drop_index(batch_op.f("ix_access_keys_operator_id"))
        batch_op.drop_index(batch_op.f("ix_access_keys_buyer_id"))

    op.drop_table("access_keys")
    op.drop_table("sellers")
    op.drop_table("operators")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_to"))
        batch_op.drop_index(batch_op.f("ix_notifications_kind"))

    op.drop_table("notifications")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_name"))
        batch_op.drop_index("ix_jobs_due")

    op.drop_table("jobs")
    op.drop_table("infrastructure_prices")
    op.drop_table("fee_rates")
    op.drop_table("buyers")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_target")
        batch_op.drop_index(batch_op.f("ix_audit_events_request_id"))
        batch_op.drop_index("ix_audit_events_at")
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
