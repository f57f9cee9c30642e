"""AWS-style ids for the Catalog and Agreement APIs: products' and offers' entity ids, subscriptions'
agreement ids

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = [
    ("products", "entity_id"),
    ("products", "public_offer_entity_id"),
    ("offers", "entity_id"),
    ("subscriptions", "agreement_id"),
]


def upgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.String(length=64), nullable=True))
            batch.create_unique_constraint(f"uq_{table}_{column}", [column])


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_{column}", type_="unique")
            batch.drop_column(column)
