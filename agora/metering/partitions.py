"""`usage_records` by month on PostgreSQL: one range partition per UTC calendar month, plus a default one.

The partition key is `period_start` (epoch seconds), so a month's close, whose query bounds `period_start`
by the month, reads its month's partition alone (partition pruning), and a closed, invoiced month can be
archived by detaching and dropping its partition (`agora.metering.archive`). The default partition takes
any record no monthly partition covers, so nothing is ever refused for want of one; creating a month's
partition moves that month's rows out of the default one first.

PostgreSQL's unique indexes on a partitioned table must contain the partition key. MTR-05's key
(`uq_usage_records_key`) starts with `period_start`, and the primary key becomes (id, period_start); the
client-token index (MeterUsage's ClientToken, unique across the table on SQLite) is a unique index of each
partition instead, so a token is unique within a month in the database; `metering.service` reads the
stored tokens across every month before inserting, as before. `INSERT … ON CONFLICT DO NOTHING` (with or
without a conflict target naming MTR-05's columns) works unchanged: each partition has every unique index.

The monthly partitions are created ahead, the current month and the next `AHEAD`, by the daily job
`usage.partitions`; migration 0018 creates them when it converts the table. SQLite is not partitioned:
every function here is a no-op there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.billing.rating import month_bounds, next_period, period_of

PARENT = "usage_records"
DEFAULT = "usage_records_default"
AHEAD = 2  # months created ahead of the current one
JOB = "usage.partitions"
_NAME = re.compile(r"usage_records_p(\d{4})_(\d{2})")
_LOCK = 0x75736167  # pg_advisory_xact_lock key of partition changes ("usag")


def name_of(period: str) -> str:
    """'2026-03' → 'usage_records_p2026_03'."""
    return f"usage_records_p{period.replace('-', '_')}"


def period_of_name(name: str) -> str | None:
    match = _NAME.fullmatch(name)
    return f"{match[1]}-{match[2]}" if match else None


def bounds(period: str) -> tuple[int, int]:
    """The month's [start, end) in epoch seconds, as `period_start` stores it."""
    start, end = month_bounds(period)
    return int(start.timestamp()), int(end.timestamp())


def is_partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    return bool(
        connection.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:name))"),
            {"name": PARENT},
        )
    )


def monthly(connection: Connection) -> list[str]:
    """The months that have a partition of their own, in order."""
    if not is_partitioned(connection):
        return []
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": PARENT},
    )
    return sorted(p for p in (period_of_name(n) for n in names) if p is not None)


def create_month(connection: Connection, period: str) -> bool:
    """Give `period` its own partition (True), moving its rows out of the default partition; False when it
    has one already. Safe to run from several processes at once (an advisory lock serialises them)."""
    if not is_partitioned(connection):
        return False
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    if period in monthly(connection):
        return False
    name, (start, end) = name_of(period), bounds(period)
    # Built beside the table, filled from the default partition, then attached: attaching a partition
    # whose range has rows in the default partition is refused, and this way nothing is refused meanwhile.
    connection.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    if has_default(connection):
        connection.execute(
            text(
                f"WITH moved AS (DELETE FROM {DEFAULT} WHERE period_start >= :start AND period_start < :end "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            ),
            {"start": start, "end": end},
        )
    connection.execute(
        text(f"CREATE UNIQUE INDEX {name}_client_token ON {name} (client_token) WHERE client_token IS NOT NULL")
    )
    connection.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"))
    return True


def has_default(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    return bool(connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": DEFAULT}))


def create_default(connection: Connection) -> None:
    connection.execute(text(f"CREATE TABLE {DEFAULT} PARTITION OF {PARENT} DEFAULT"))
    connection.execute(
        text(f"CREATE UNIQUE INDEX {DEFAULT}_client_token ON {DEFAULT} (client_token) WHERE client_token IS NOT NULL")
    )


def upcoming(now: datetime, ahead: int = AHEAD) -> list[str]:
    """The month of `now` and the `ahead` after it."""
    periods = [period_of(now)]
    for _ in range(ahead):
        periods.append(next_period(periods[-1]))
    return periods


def create_ahead(connection: Connection, now: datetime, ahead: int = AHEAD) -> list[str]:
    """Create the partitions of the current month and the next `ahead` that are missing; the months made."""
    return [period for period in upcoming(now, ahead) if create_month(connection, period)]


def schedule(session: Session, now: datetime) -> None:
    """The next run of `usage.partitions`, at the coming UTC midnight (once per day, whoever asks)."""
    due = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    jobs.enqueue(session, JOB, {}, run_at=due, dedupe_key=f"{JOB}:{due:%Y-%m-%d}")


def start(session: Session) -> None:
    """Run `usage.partitions` now (once per day however many processes start) and daily from then on."""
    now = clock.now()
    jobs.enqueue(session, JOB, {}, run_at=now, dedupe_key=f"{JOB}:{now:%Y-%m-%d}:start")


@jobs.handler(JOB)
def create_partitions(session: Session, payload: dict[str, Any]) -> None:
    now = clock.now()
    create_ahead(session.connection(), now)
    schedule(session, now)
