"""usage_records without foreign keys on PostgreSQL (issue 16): the metering hot path's inserts stop paying for them

Each foreign key cost every inserted row a lookup of the referenced row and a row lock on it (KEY SHARE,
which concurrent writers of one product or buyer share through a multixact): 32 µs of server CPU per row
with the three keys, 19 µs with the subscription's alone, 14 µs with none (25-row inserts, two writers).
Rows are written only by the ingestion service, which has just read the subscription they name (its
product and buyer are copied from it), and subscriptions, products and buyers are never deleted: the keys
guarded nothing. SQLite's checks are index probes without locks, and dropping a key there rebuilds the
table: its databases keep them (`agora.migrate` leaves them out of the schema comparison).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 07:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

KEYS = {
    "fk_usage_records_buyer_id_buyers": ("buyer_id", "buyers"),
    "fk_usage_records_product_id_products": ("product_id", "products"),
    "fk_usage_records_subscription_id_subscriptions": ("subscription_id", "subscriptions"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in KEYS:
        op.drop_constraint(name, "usage_records", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (column, table) in KEYS.items():
        op.create_foreign_key(name, "usage_records", table, [column], ["id"])
