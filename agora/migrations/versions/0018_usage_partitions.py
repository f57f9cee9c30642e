"""usage_records range-partitioned by month on PostgreSQL (issue 16): a partition per UTC calendar month
of `period_start`, plus a default partition; SQLite is left as it is

The table is converted in one transaction: renamed aside, a partitioned parent made like it, a partition
made for every month it holds (and the current month and the next two), its rows moved, its keys, indexes
and foreign keys made again on the parent (each partition gets them), the old table dropped with its id
sequence handed over first. Unique indexes of a partitioned table must contain the partition key: the
primary key becomes (id, period_start); MTR-05's key has `period_start` already; the client-token index
becomes a unique index of each partition (`agora.metering.partitions`). Downgrade reverses it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 03:50:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

from agora import clock
from agora.metering import partitions

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

OLD = "usage_records_unpartitioned"

# The parent's keys, indexes and foreign keys, as 0003/0007/0009/0011 made them (names included).
KEYS = [
    "ALTER TABLE usage_records ADD CONSTRAINT pk_usage_records PRIMARY KEY ({pk})",
    "ALTER TABLE usage_records ADD CONSTRAINT uq_usage_records_key "
    "UNIQUE (period_start, subscription_id, dimension, resource)",
    "CREATE INDEX ix_usage_records_billed_in ON usage_records (billed_in) WHERE billed_in IS NOT NULL",
    "CREATE INDEX ix_usage_records_intervals ON usage_records (subscription_id, dimension, period_start) "
    "WHERE period_end IS NOT NULL",
    "CREATE INDEX ix_usage_records_error_id ON usage_records (error_id) WHERE error_id IS NOT NULL",
    "ALTER TABLE usage_records ADD CONSTRAINT fk_usage_records_buyer_id_buyers "
    "FOREIGN KEY (buyer_id) REFERENCES buyers (id)",
    "ALTER TABLE usage_records ADD CONSTRAINT fk_usage_records_product_id_products "
    "FOREIGN KEY (product_id) REFERENCES products (id)",
    "ALTER TABLE usage_records ADD CONSTRAINT fk_usage_records_subscription_id_subscriptions "
    "FOREIGN KEY (subscription_id) REFERENCES subscriptions (id)",
]
CLIENT_TOKEN = (
    "CREATE UNIQUE INDEX uq_usage_records_client_token ON usage_records (client_token) WHERE client_token IS NOT NULL"
)


def _aside(connection: Connection) -> None:
    """Rename the table and its indexes out of the way (index names are the schema's, not the table's)."""
    connection.execute(text(f"ALTER TABLE usage_records RENAME TO {OLD}"))
    for name in connection.scalars(
        text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"), {"t": OLD}
    ).all():
        connection.execute(text(f"ALTER INDEX {name} RENAME TO {name}_old"))


def _months(connection: Connection) -> list[str]:
    return list(
        connection.scalars(
            text(
                f"SELECT DISTINCT to_char(to_timestamp(period_start) AT TIME ZONE 'UTC', 'YYYY-MM') AS m FROM {OLD} "
                "ORDER BY m"
            )
        )
    )


def _hand_over_sequence(connection: Connection) -> None:
    connection.execute(text("ALTER SEQUENCE usage_records_id_seq OWNED BY usage_records.id"))


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    _aside(connection)
    connection.execute(
        text(f"CREATE TABLE usage_records (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (period_start)")
    )
    partitions.create_default(connection)
    for period in sorted({*_months(connection), *partitions.upcoming(clock.now())}):
        partitions.create_month(connection, period)
    connection.execute(text(f"INSERT INTO usage_records SELECT * FROM {OLD}"))
    _hand_over_sequence(connection)
    connection.execute(text(f"DROP TABLE {OLD}"))
    for statement in KEYS:
        connection.execute(text(statement.format(pk="id, period_start")))
    connection.execute(text("ANALYZE usage_records"))


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql" or not partitions.is_partitioned(connection):
        return
    _aside(connection)
    connection.execute(text(f"CREATE TABLE usage_records (LIKE {OLD} INCLUDING DEFAULTS)"))
    connection.execute(text(f"INSERT INTO usage_records SELECT * FROM {OLD}"))
    _hand_over_sequence(connection)
    connection.execute(text(f"DROP TABLE {OLD}"))  # the partitions with it
    for statement in KEYS:
        connection.execute(text(statement.format(pk="id")))
    connection.execute(text(CLIENT_TOKEN))
    connection.execute(text("ANALYZE usage_records"))
