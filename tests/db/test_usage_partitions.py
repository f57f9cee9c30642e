"""usage_records by month on PostgreSQL (issue 16): partitions made ahead by a daily job, a default one so
nothing is refused, a month's close reading its partition alone, ingestion's exactly-once keys (MTR-05)
unchanged, archiving by detaching a partition, and migration 0018 converting a table both ways. SQLite
stays one table."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from agora import clock, jobs, migrate
from agora.billing import runs, service
from agora.db import Database, open_database
from agora.metering import archive, partitions
from agora.metering.records import Reading, Source, Status
from agora.models import Base, Job, Product, Role, Seller
from agora.tasks import register_all
from tests.conftest import POSTGRES_URL
from tests.factories.metering import SAAS, metered_market
from tests.metering.test_usage_archive import APRIL, MARCH, march_and_april, meter_at, stored

T0 = datetime(2026, 3, 1, tzinfo=UTC)
postgres_only = pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL only: AGORA_TEST_POSTGRES_URL unset")


def only_postgres(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL partitions; SQLite keeps one table")


def where_rows_are(db: Database, period: str) -> dict[str, int]:
    """How many of the month's records each partition holds."""
    start, end = partitions.bounds(period)
    with db.read_only() as connection:
        rows = connection.execute(
            text(
                "SELECT tableoid::regclass::text, count(*) FROM usage_records "
                "WHERE period_start >= :start AND period_start < :end GROUP BY 1"
            ),
            {"start": start, "end": end},
        )
        return {name: count for name, count in rows}


def test_the_daily_job_creates_this_month_and_the_next_two(db: Database) -> None:
    register_all()
    with clock.use_clock(clock.ManualClock(datetime(2031, 1, 15, 9, tzinfo=UTC))):
        with db.unit_of_work() as session:
            partitions.start(session)
            partitions.start(session)  # a second process starting the same day adds nothing
        assert jobs.Worker(db).run_once()
        with db.reader() as session:
            queued = session.execute(
                select(Job.dedupe_key, Job.run_at).where(Job.name == partitions.JOB, Job.state == "queued")
            ).all()
    assert queued == [("usage.partitions:2031-01-16", datetime(2031, 1, 16, tzinfo=UTC))]  # daily from then on
    with db.read_only() as connection:
        made = [p for p in partitions.monthly(connection) if p.startswith("203")]
    assert made == (["2031-01", "2031-02", "2031-03"] if db.dialect == "postgresql" else [])
    with clock.use_clock(clock.ManualClock(datetime(2031, 1, 16, tzinfo=UTC))):
        assert jobs.Worker(db).run_once()  # the next day: nothing new to make
    with db.unit_of_work() as session:
        assert partitions.create_ahead(session.connection(), datetime(2031, 1, 16, tzinfo=UTC)) == []


def test_records_without_a_month_partition_go_to_the_default_one_and_move_when_it_is_made(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    only_postgres(db)
    manual_clock.set(T0)
    metered_market(db, T0)
    month = datetime(2030, 6, 10, tzinfo=UTC)
    for hour in range(3):
        manual_clock.set(month + timedelta(hours=hour))
        meter_at(db, clock.now(), 4)
    assert where_rows_are(db, "2030-06") == {partitions.DEFAULT: 3}  # nothing refused
    with db.unit_of_work() as session:
        assert partitions.create_month(session.connection(), "2030-06")
        assert not partitions.create_month(session.connection(), "2030-06")
    assert where_rows_are(db, "2030-06") == {"usage_records_p2030_06": 3}


def ingest(db: Database, *readings: Reading) -> list[tuple[Status, object]]:
    """Through `ingest_in`, the hot path: one multi-row `INSERT … ON CONFLICT DO NOTHING`."""
    from agora.auth import Principal
    from agora.metering import service as metering

    with db.reader() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
    assert seller_id is not None and handle is not None
    principal = Principal(Role.SELLER, seller_id, handle)
    return [(o.status, o.problem) for o in metering.ingest_in(db, principal, list(readings), source=Source.SELLER)]


@pytest.mark.rule("MTR-05")
def test_ingestion_into_monthly_partitions_stores_each_record_once_MTR_05(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    only_postgres(db)
    manual_clock.set(T0)
    metered_market(db, T0)
    with db.unit_of_work() as session:
        for period in (MARCH, APRIL):
            partitions.create_month(session.connection(), period)
    manual_clock.set(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    march = Reading(SAAS, "users", 5, datetime(2026, 3, 31, 23, tzinfo=UTC), customer_identifier="cust-1")
    april = Reading(SAAS, "users", 6, datetime(2026, 4, 1, 0, tzinfo=UTC), customer_identifier="cust-1")
    manual_clock.set(datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
    assert [s for s, _ in ingest(db, march, april)] == [Status.ACCEPTED, Status.ACCEPTED]
    again = ingest(db, march, april, Reading(SAAS, "users", 9, march.timestamp, customer_identifier="cust-1"))
    assert [s for s, _ in again] == [Status.DUPLICATE, Status.DUPLICATE, Status.REFUSED]
    assert where_rows_are(db, MARCH) == {"usage_records_p2026_03": 1}
    assert where_rows_are(db, APRIL) == {"usage_records_p2026_04": 1}
    # A conflict target naming MTR-05's key (as a batched ingestion may use) works on the partitioned table.
    with db.unit_of_work_core() as connection:
        row = connection.execute(text("SELECT * FROM usage_records ORDER BY id LIMIT 1")).mappings().one()
        values = {k: (json.dumps(v) if k == "allocations" and v is not None else v) for k, v in row.items()}
        values.pop("id")
        columns = ", ".join(values)
        inserted = connection.execute(
            text(
                f"INSERT INTO usage_records ({columns}) VALUES ({', '.join(':' + c for c in values)}) "
                "ON CONFLICT (period_start, subscription_id, dimension, resource) DO NOTHING RETURNING id"
            ),
            values,
        ).all()
    assert inserted == []


def test_a_client_token_is_unique_within_its_month(db: Database, manual_clock: clock.ManualClock) -> None:
    """The database keeps a client token unique per monthly partition (a unique index must contain the
    partition key); the ingestion service reads stored tokens across months before it inserts."""
    only_postgres(db)
    manual_clock.set(T0)
    metered_market(db, T0)
    with db.unit_of_work() as session:
        partitions.create_month(session.connection(), MARCH)
    manual_clock.set(T0 + timedelta(days=2))
    meter_at(db, clock.now(), 3)
    with db.unit_of_work_core() as connection:
        connection.execute(text("UPDATE usage_records SET client_token = 'tok-1'"))
        row = connection.execute(text("SELECT * FROM usage_records")).mappings().one()
        copy = {**row, "period_start": row["period_start"] + 3600, "record_id": "other"}
        copy.pop("id")
        copy["allocations"] = None
        names = ", ".join(copy)
        written = connection.execute(
            text(
                f"INSERT INTO usage_records ({names}) VALUES ({', '.join(':' + c for c in copy)}) "
                "ON CONFLICT DO NOTHING"
            ),
            copy,
        ).rowcount
    assert written == 0


def test_the_close_of_a_month_reads_its_partition_alone(db: Database, manual_clock: clock.ManualClock) -> None:
    only_postgres(db)
    manual_clock.set(T0)
    metered_market(db, T0)
    with db.unit_of_work() as session:
        for period in (MARCH, APRIL):
            partitions.create_month(session.connection(), period)
    start, end = partitions.bounds(MARCH)
    # The close's rollup (one query per slice of days) and the bare GROUP BY of the whole month.
    queries = [
        (service._rollup_sql({}, graduate=False), {"start": start, "end": start + 15 * 86400}),
        (service._rollup_sql({"month": [1]}, graduate=False), {"start": start, "end": end}),
        (
            text(
                "SELECT subscription_id, dimension, sum(quantity) FROM usage_records "
                "WHERE period_start >= :start AND period_start < :end GROUP BY subscription_id, dimension"
            ),
            {"start": start, "end": end},
        ),
    ]
    for query, params in queries:
        with db.read_only() as connection:
            plan = connection.execute(text(f"EXPLAIN (FORMAT JSON) {query.text}"), params).scalar()
        scanned = set(_relations(plan))
        assert scanned == {"usage_records_p2026_03"}, scanned


def _relations(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Relation Name" in node:
            yield node["Relation Name"]
        for value in node.values():
            yield from _relations(value)
    elif isinstance(node, list):
        for value in node:
            yield from _relations(value)


def test_archiving_a_month_with_its_own_partition_detaches_and_drops_it(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    only_postgres(db)
    with db.unit_of_work() as session:
        for period in (MARCH, APRIL):
            partitions.create_month(session.connection(), period)
    march_and_april(db, manual_clock)
    assert where_rows_are(db, MARCH) == {"usage_records_p2026_03": 3}
    [done] = archive.archive(db, APRIL, tmp_path)
    assert done.records == 3 and stored(db, MARCH) == 0
    with db.read_only() as connection:
        left = partitions.monthly(connection)
        assert MARCH not in left and APRIL in left
        assert connection.scalar(text("SELECT to_regclass('usage_records_p2026_03')")) is None
    manual_clock.set(datetime(2026, 5, 2, tzinfo=UTC))
    assert runs.close(db, APRIL)  # April bills from its partition as before


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """An empty database of its own, for migrating by hand."""
    assert POSTGRES_URL
    base, _, _ = POSTGRES_URL.rpartition("/")
    name = f"agora_test_0018_{os.getpid()}"
    admin = open_database(POSTGRES_URL)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate(db: Database, revision: str, down: bool = False) -> None:
    config = migrate.alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


@postgres_only
def test_migration_0018_converts_a_table_with_rows_and_back(fresh_postgres: str) -> None:
    db = open_database(fresh_postgres)
    try:
        _migrate(db, "0015")
        months = [datetime(2026, 1, 31, 23, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)]
        months.append(datetime(2026, 2, 9, tzinfo=UTC))
        with clock.use_clock(clock.ManualClock(datetime(2025, 12, 1, tzinfo=UTC))):
            metered_market(db, clock.now())
        with db.engine.begin() as connection:
            ids = connection.execute(text("SELECT id, product_id, buyer_id FROM subscriptions LIMIT 1")).one()
            for n, at in enumerate(months):
                connection.execute(
                    text(
                        "INSERT INTO usage_records (record_id, period_start, subscription_id, product_id, buyer_id, "
                        "dimension, resource, quantity, source, received_at, client_token) "
                        "VALUES (:r, :s, :sub, :product, :buyer, 'users', '', :q, 'seller', :s, :t)"
                    ),
                    {"r": f"r{n}", "s": int(at.timestamp()), "q": n + 1, "t": f"tok-{n}", "sub": ids[0],
                     "product": ids[1], "buyer": ids[2]},
                )  # fmt: skip
        before = _rows(db)
        _migrate(db, "head")
        with db.read_only() as connection:
            assert partitions.is_partitioned(connection)
            assert {"2026-01", "2026-02"} <= set(partitions.monthly(connection))
        assert _rows(db) == before
        assert where_rows_are(db, "2026-02") == {"usage_records_p2026_02": 2}
        assert _next_id(db) == 4  # the id sequence carried over
        with db.engine.connect() as connection:  # the schema is the models'
            opts = {"compare_type": True, "include_object": migrate.include_object_for("postgresql")}
            assert compare_metadata(MigrationContext.configure(connection, opts=opts), Base.metadata) == []

        _migrate(db, "0015", down=True)
        with db.read_only() as connection:
            assert not partitions.is_partitioned(connection)
            names = connection.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'usage_records'"))
            indexes = set(names)
        assert {"pk_usage_records", "uq_usage_records_key", "uq_usage_records_client_token"} <= indexes
        assert _rows(db)[:3] == before
        _migrate(db, "head")  # and up again
        assert _rows(db)[:3] == before
    finally:
        db.dispose()


def _rows(db: Database) -> list[tuple[Any, ...]]:
    with db.read_only() as connection:
        query = text("SELECT id, period_start, quantity, client_token FROM usage_records ORDER BY id")
        return [tuple(row) for row in connection.execute(query)]


def _next_id(db: Database) -> int:
    with db.engine.begin() as connection:
        return int(connection.scalar(text("SELECT nextval('usage_records_id_seq')")) or 0)
