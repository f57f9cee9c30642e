"""usage_days and usage_day_sums: each ended day of usage summed once, so a month's close adds days up (issue 16)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("last_hour", sa.BigInteger(), nullable=False),
        sa.Column("dimension", sa.String(length=160), nullable=False),
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_days")),
    )
    op.create_index("ix_usage_days_day", "usage_days", ["day"], unique=False)
    op.create_table(
        "usage_day_sums",
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_usage_day_sums")),
    )


def downgrade() -> None:
    op.drop_table("usage_day_sums")
    op.drop_index("ix_usage_days_day", table_name="usage_days")
    op.drop_table("usage_days")
