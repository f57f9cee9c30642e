"""Usage: what sellers, buyers' software and the platform itself measured (MTR-01…06).

`usage_records` is the one store billing reads. It is written at thousands of rows a second, so its times
are epoch seconds (integers bind and compare without conversion) and its only index is the deduplication
key, which leads with the time so that inserts land at the end of the index instead of on random pages
(PERF-NOTES §2: a random unique key costs SQLite 5–11× its insert rate).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped

# SQLite makes an INTEGER PRIMARY KEY the rowid (an append-only B-tree); BIGINT would not be.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UsageRecord(Base):
    """One accepted record. The unique key is MTR-05: the same customer, dimension, period and resource is
    stored once. `period_start` is the hour (MTR-01) for metered records, and the exact start for
    records that cover part of an hour (Alibaba's StartTime, per-second platform measurements)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("period_start", "subscription_id", "dimension", "resource", name="uq_usage_records_key"),
        # MeterUsage's ClientToken: a retry with the same token is answered from the record it made. Only
        # MeterUsage sets it, so the random keys of this index cost nothing to batch ingestion.
        Index(
            "uq_usage_records_client_token",
            "client_token",
            unique=True,
            sqlite_where=text("client_token IS NOT NULL"),
            postgresql_where=text("client_token IS NOT NULL"),
        ),
        # Records stored after their month closed, billed in a later one (BIL-03): few, so a partial index.
        Index(
            "ix_usage_records_billed_in",
            "billed_in",
            sqlite_where=text("billed_in IS NOT NULL"),
            postgresql_where=text("billed_in IS NOT NULL"),
        ),
        # Intervals (Alibaba's StartTime–EndTime) must not overlap within a series; only they have a
        # `period_end`, so hourly ingestion never writes to this index.
        Index(
            "ix_usage_records_intervals",
            "subscription_id",
            "dimension",
            "period_start",
            sqlite_where=text("period_end IS NOT NULL"),
            postgresql_where=text("period_end IS NOT NULL"),
        ),
        # Only confirmed errors are indexed, so the index costs ingestion nothing.
        Index(
            "ix_usage_records_error_id",
            "error_id",
            sqlite_where=text("error_id IS NOT NULL"),
            postgresql_where=text("error_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(36))  # the MeteringRecordId answered to the sender
    period_start: Mapped[int] = mapped_column(BigInteger)  # epoch seconds, UTC
    period_end: Mapped[int | None] = mapped_column(BigInteger)
    # The subscription, and its product and buyer copied so billing need not join. No foreign keys: each cost
    # every inserted row a lookup and a row lock, and only ingestion writes rows, naming the subscription it
    # has just read; none of the three is ever deleted (migration 0020; SQLite databases keep theirs).
    subscription_id: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(Integer)
    buyer_id: Mapped[int] = mapped_column(Integer)
    dimension: Mapped[str] = mapped_column(String(160))
    resource: Mapped[str] = mapped_column(String(128), default="")
    quantity: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # seller | buyer | platform
    received_at: Mapped[int] = mapped_column(BigInteger)  # epoch seconds
    allocations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    client_token: Mapped[str | None] = mapped_column(String(64))
    billed_in: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM, set when its own month had closed
    # A metering error the seller confirmed (RFD-02). No foreign key: adding one rebuilds this table on
    # SQLite. `voided_at` (epoch seconds) is set when it was confirmed before its month was invoiced: the
    # close leaves it out; one confirmed later stays billed and is refunded on a credit note. Never deleted.
    error_id: Mapped[int | None] = mapped_column(Integer)
    voided_at: Mapped[int | None] = mapped_column(BigInteger)


class MeteringError(Timestamped, Base):
    """A set of usage records the product's seller confirmed as metering errors (RFD-02): the buyer is
    refunded the charges they caused, without anyone else's approval."""

    __tablename__ = "metering_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    actor: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text)
    confirmed_at: Mapped[datetime] = mapped_column()


class InstanceRun(Timestamped, Base):
    """Something the platform runs for a buyer and measures itself (MTR-06, PRC-14): a server image or
    container instance (`instance`), an ML real-time endpoint (`endpoint`), or a managed-service instance
    (`service`, whose billable items may be scraped from `metrics_url`). `metered_through` is how far its
    usage has been written to `usage_records`."""

    __tablename__ = "instance_runs"
    __table_args__ = (
        Index(
            "uq_instance_runs_running",
            "instance_id",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # instance | endpoint | service
    instance_id: Mapped[str] = mapped_column(String(128))
    instance_type: Mapped[str] = mapped_column(String(64))
    instances: Mapped[int] = mapped_column(default=1)
    region: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column()
    stopped_at: Mapped[datetime | None] = mapped_column(index=True)
    metered_through: Mapped[datetime] = mapped_column()
    metrics_url: Mapped[str | None] = mapped_column(String(500))


class MetricScrape(Timestamped, Base):
    """One hourly scrape of a managed-service instance's Prometheus endpoint for one billable item.
    A failed scrape is kept with its error and retried; it is never read as zero."""

    __tablename__ = "metric_scrapes"
    __table_args__ = (UniqueConstraint("run_id", "item", "hour", name="uq_metric_scrapes_hour"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("instance_runs.id"), index=True)
    item: Mapped[str] = mapped_column(String(128))
    hour: Mapped[datetime] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))  # ok | failed
    value: Mapped[str | None] = mapped_column(String(64))  # the counter's value at the scrape (exact text)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
