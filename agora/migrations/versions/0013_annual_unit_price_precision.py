"""annual_purchases.unit_price holds every price a pricing document may have (12 digits, 8 places)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annual_purchases", schema=None) as batch_op:
        batch_op.alter_column(
            "unit_price", existing_type=sa.Numeric(precision=14, scale=6), type_=sa.Numeric(precision=20, scale=8)
        )


def downgrade() -> None:
    with op.batch_alter_table("annual_purchases", schema=None) as batch_op:
        batch_op.alter_column(
            "unit_price", existing_type=sa.Numeric(precision=20, scale=8), type_=sa.Numeric(precision=14, scale=6)
        )
