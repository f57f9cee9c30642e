"""usage_records keeps one foreign key, to its subscription, on PostgreSQL (issue 16)

A record's product and buyer are its subscription's, copied so billing need not join; each copy's foreign
key cost every inserted row a lookup and a row lock on the product and the buyer (KEY SHARE, which every
concurrent writer of the same product shares through a multixact): 32 µs of server CPU a row with the three
keys, 19 µs with the subscription's alone. Subscriptions, products and buyers are never deleted, so the
two checks guarded nothing the subscription's does not. SQLite's checks are index probes without locks,
and dropping a key there rebuilds the table: its database keeps them (`agora.migrate` leaves them out of
the schema comparison).

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
