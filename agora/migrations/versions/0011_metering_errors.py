"""metering errors confirmed by sellers (RFD-02): metering_errors, usage_records.error_id and voided_at

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agora.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metering_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("confirmed_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"], name=op.f("fk_metering_errors_seller_id_sellers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metering_errors")),
    )
    with op.batch_alter_table("metering_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_metering_errors_seller_id"), ["seller_id"], unique=False)
    # Plain ADD COLUMNs (no batch copy): usage_records may hold tens of millions of rows.
    op.add_column("usage_records", sa.Column("error_id", sa.Integer(), nullable=True))
    op.add_column("usage_records", sa.Column("voided_at", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_usage_records_error_id",
        "usage_records",
        ["error_id"],
        unique=False,
        sqlite_where=sa.text("error_id IS NOT NULL"),
        postgresql_where=sa.text("error_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_usage_records_error_id", table_name="usage_records")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("voided_at")
        batch_op.drop_column("error_id")
    with op.batch_alter_table("metering_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metering_errors_seller_id"))
    op.drop_table("metering_errors")
