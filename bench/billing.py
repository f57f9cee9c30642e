"""Closing a month of billing: N usage records (default 10 million) for 10,000 buyers across every pricing
family, on SQLite and (if reachable) PostgreSQL, next to one bare GROUP BY over the same table.

    .venv/bin/python -m bench.billing [--records 10000000] [--buyers 10000] [--postgres URL | --no-postgres]

The month is closed exactly as `agora bill` closes it (the durable jobs: one rollup pass, then invoice jobs
of 200 buyers). Printed per database: load time, the bare GROUP BY (each subscription's total per
dimension: the least any bill needs), the close's rollup alone (its aggregation, without the per-buyer
invoicing around it), the close, their ratios, records/s, the process's peak memory, and the close's
parts (each kind of job, timed as it runs). On PostgreSQL the month has its own partition of
usage_records, as the daily `usage.partitions` job makes it ahead.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from agora import clock, config, jobs, migrate
from agora.billing import payouts, runs, service
from agora.db import Database, open_database
from agora.manifest.loader import load_data
from agora.metering import partitions
from agora.models import Buyer, Invoice, Product, Subscription
from agora.tasks import register_all

PERIOD = "2026-03"
START = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = 31 * 24
USERS = {"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.125"}
PRODUCTS = {  # code → (kind, pricing, how its usage is recorded)
    "b-usage": ("saas", {"usage": {"category": "users", "dimensions": [USERS]}}, "usage"),
    "b-hourly": ("ami", {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}, "free_trial_days": 7}, "hourly"),
    "b-monthly": ("container", {"hourly": {"c5.large": "0.05"}, "monthly": "49"}, "hourly"),
    "b-ml": ("ml_algorithm", {"ml": {"training": {"ml.m5.large": "1.00"}, "realtime_inference": {"ml.m5.large": "0.50"},
                                     "batch_inference": {"ml.m5.large": "0.40"}}},
             "ml"),
    "b-tiered": ("managed_service", {"tiered": {"period": "hour", "items": [
        {"name": "queries", "reporting": "seller",
         "tiers": [{"up_to": 1000, "price": "0.01"}, {"up_to": None, "price": "0.005"}]}]}}, "tiered"),
}  # fmt: skip


ML_LISTING = {
    "supported_instance_types": ["ml.m5.large"],
    "training_instance_types": ["ml.m5.large"],
    "content_types": ["text/csv"],
    "mime_types": ["text/csv"],
    "input_modes": ["File"],
}


def manifest() -> dict[str, object]:
    service = {"service_id": "svc-bench", "deployment": "fully_managed_service", "templates": ["std"]}
    extra = {"managed_service": service}
    return {
        "region": "us-east-1",
        "sellers": [{"id": "bench", "name": "Bench", "tax_form": "W-9"}],
        "products": [
            {
                "code": code,
                "seller": "bench",
                "kind": kind,
                "title": code,
                "short_description": "Benchmark product",
                "category": "analytics",
                "regions": ["us-east-1"],
                "refund_policy": "none",
                "state": "public",
                "pricing": pricing,
                **(extra if kind == "managed_service" else {}),
                **({"ml": ML_LISTING} if kind == "ml_algorithm" else {}),
            }
            for code, (kind, pricing, _) in PRODUCTS.items()
        ],
    }


def populate(db: Database, buyers: int) -> list[tuple[int, int, str]]:
    """Buyers each subscribed to one product, families round-robin: (subscription, buyer, how it meters)."""
    with clock.use_clock(clock.ManualClock(START - timedelta(days=30))), db.unit_of_work() as session:
        load_data(manifest(), session)
    at = START - timedelta(days=30)
    with db.unit_of_work() as session:
        codes = {code: session.scalar(select(Product.id).where(Product.code == code)) for code in PRODUCTS}
        session.execute(
            insert(Buyer),
            [{"account": f"{500000000000 + i}", "email": f"b{i}@x.example", "created_at": at} for i in range(buyers)],
        )
        buyer_ids = session.scalars(select(Buyer.id).order_by(Buyer.id)).all()
        names = list(PRODUCTS)
        rows = [
            {
                "buyer_id": buyer_id,
                "product_id": codes[names[n % len(names)]],
                "customer_identifier": f"c{n}",
                "started_at": at,
                "created_at": at,
                "purchases": {},
            }
            for n, buyer_id in enumerate(buyer_ids)
        ]
        session.execute(insert(Subscription), rows)
        subs = session.execute(select(Subscription.id, Subscription.buyer_id, Subscription.product_id)).all()
    method = {codes[code]: how for code, (_, _, how) in PRODUCTS.items()}
    product_of = {sub: product for sub, _, product in subs}
    return [(sub, buyer, method[product_of[sub]]) for sub, buyer, _ in subs]


def records(subscriptions: list[tuple[int, int, str]], total: int) -> Iterator[tuple[object, ...]]:
    """Usage rows in arrival (time) order, as the ingestion service would have stored them."""
    per = max(1, total // len(subscriptions))
    start = int(START.timestamp())
    slots = [(k * HOURS) // per for k in range(per)]  # each subscription's records spread over the month
    n = 0
    for k in range(per):
        base = start + slots[k] * 3600
        for sub, buyer, how in subscriptions:
            n += 1
            if how == "hourly":
                dimension, resource, quantity, ts = "hourly:m5.large", f"i-{sub}#{k % 2}", 1, base
            elif how == "ml":
                dimension, resource, quantity, ts = "training:ml.m5.large", f"job-{k}", 30 + sub % 600, base + k % 3600
            elif how == "tiered":
                dimension, resource, quantity, ts = "queries", "", 1 + (sub * k) % 900, base + (k % 12) * 300
            else:
                dimension, resource, quantity, ts = "users", f"r{k}", 1 + sub % 50, base
            yield (f"b{n:011d}", ts, None, sub, 0, buyer, dimension, resource, quantity, "seller", ts, None, None)


COLUMNS = (
    "record_id, period_start, period_end, subscription_id, product_id, buyer_id, dimension, resource, quantity,"
    " source, received_at, allocations, client_token"
)


def load_usage(db: Database, subscriptions: list[tuple[int, int, str]], total: int) -> int:
    """Bulk-load the month through the driver (the ingestion path is measured by bench.ingestion)."""
    with db.reader() as session:
        product_of = {
            sub: product for sub, product in session.execute(select(Subscription.id, Subscription.product_id))
        }
    count = 0
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.dialect == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
            batch: list[tuple[object, ...]] = []
            for row in records(subscriptions, total):
                batch.append((*row[:4], product_of[row[3]], *row[5:]))
                if len(batch) == 100_000:
                    cursor.executemany(f"INSERT INTO usage_records ({COLUMNS}) VALUES ({', '.join('?' * 13)})", batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(f"INSERT INTO usage_records ({COLUMNS}) VALUES ({', '.join('?' * 13)})", batch)
                count += len(batch)
            cursor.execute("COMMIT")
        else:
            with cursor.copy(f"COPY usage_records ({COLUMNS}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in records(subscriptions, total):
                    copy.write_row((*row[:4], product_of[row[3]], *row[5:]))
                    count += 1
            raw.commit()
            cursor.execute("ANALYZE usage_records")
            raw.commit()
    finally:
        raw.close()
    return count


def bare_group_by(db: Database) -> float:
    """The least any bill needs: each subscription's total per dimension over the month, counted in the
    database so no row crosses into Python."""
    start, end = int(START.timestamp()), int((START + timedelta(days=31)).timestamp())
    sql = text(
        "SELECT count(*), sum(s) FROM (SELECT subscription_id, dimension, sum(quantity) AS s FROM usage_records "
        "WHERE period_start >= :start AND period_start < :end GROUP BY subscription_id, dimension) AS g"
    )
    began = time.perf_counter()
    with db.engine.connect() as connection:
        connection.execute(sql, {"start": start, "end": end}).one()
    return time.perf_counter() - began


def rollup_alone(db: Database) -> float:
    """The close's aggregation by itself, as it runs when no day of the month was summed beforehand: the
    month summed at each subscription's grain, tiers graduated, without the per-buyer invoicing around it."""
    start, end = START, START + timedelta(days=31)
    with db.reader() as session:
        month = service.month_terms(session, PERIOD)
    began = time.perf_counter()
    service._rollup(db.engine, month.sql(), month.tiers, service._sliced([(start, end)]))
    return time.perf_counter() - began


def sum_the_days(db: Database) -> float:
    """Each day of the month summed as it ends (`billing.sum_day`, run by a worker 7 hours after the day),
    here one after another once the month's records are in: what the close then adds up."""
    with clock.use_clock(clock.ManualClock(START)), db.unit_of_work() as session:
        service.schedule_day_sum(session, START.date())
    began = time.perf_counter()
    with clock.use_clock(clock.ManualClock(START + timedelta(days=31, hours=8))):
        jobs.Worker(db).run_until_idle()
    return time.perf_counter() - began


PHASES = {  # the close's durable jobs, timed as they run: what each part of `agora bill` costs
    "billing.close_period": "the summing job",
    service.INVOICE_JOB: "invoice jobs",
    "billing.disburse": "payouts",
}
DAYS_JOB = (service.SUM_DAY_JOB, service.sum_day)
spent: dict[str, list[tuple[float, float]]] = defaultdict(list)  # each kind's jobs: (began, ended)


def wall(name: str) -> float:
    """The time jobs of one kind were running, counted once where two ran at once (PostgreSQL's second
    invoice worker in `agora bill`)."""
    total, reach = 0.0, float("-inf")
    for began, ended in sorted(spent[name]):
        total += max(0.0, ended - max(began, reach))
        reach = max(reach, ended)
    return total


def time_the_phases() -> None:
    for name, handler in (
        ("billing.close_period", service.close_period),
        (service.INVOICE_JOB, service.invoice_buyers),
        ("billing.disburse", payouts.disburse_job),
        DAYS_JOB,
    ):

        def timed(session: Session, payload: dict[str, Any], name: str = name, handler: jobs.Handler = handler) -> None:
            began = time.perf_counter()
            handler(session, payload)
            spent[name].append((began, time.perf_counter()))

        jobs.handler(name)(timed)


def run(label: str, url: str, total: int, buyers: int) -> None:
    db = open_database(url)
    migrate.upgrade(db)
    register_all()
    time_the_phases()
    with db.unit_of_work() as session:  # the month's partition, as the daily job makes it ahead (PostgreSQL)
        partitions.create_month(session.connection(), PERIOD)
    began = time.perf_counter()
    subscriptions = populate(db, buyers)
    loaded = load_usage(db, subscriptions, total)
    load_seconds = time.perf_counter() - began
    print(f"{label}: {loaded:,} records, {buyers:,} buyers loaded in {load_seconds:.0f} s", flush=True)
    bare = bare_group_by(db)
    print(f"  bare GROUP BY over the month      {bare:8.1f} s", flush=True)
    with clock.use_clock(clock.ManualClock(START + timedelta(days=32))):
        alone = rollup_alone(db)
    print(f"  the close's rollup alone          {alone:8.1f} s   = {alone / bare:.2f} × the bare GROUP BY", flush=True)
    spent.clear()
    days = sum_the_days(db)
    print(
        f"  the 31 days summed as they end    {days:8.1f} s   (before the close, by the worker; "
        f"{wall(service.SUM_DAY_JOB) / 31:.2f} s a day)",
        flush=True,
    )
    spent.clear()
    with clock.use_clock(clock.ManualClock(START + timedelta(days=32))):
        began = time.perf_counter()
        runs.close(db, PERIOD)
        close = time.perf_counter() - began
    with db.reader() as session:
        invoices = session.scalar(select(func.count()).select_from(Invoice).where(Invoice.kind == "monthly"))
        cents = session.scalar(select(func.sum(Invoice.total_cents)).where(Invoice.kind == "monthly"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  close the month (agora bill)      {close:8.1f} s   {loaded / close:>10,.0f} records/s"
        f"   = {close / bare:.2f} × the bare GROUP BY\n"
        f"  invoices {invoices:,}, total billed {cents / 100 if cents else 0:,.2f} USD, peak memory {peak:,.0f} MB",
        flush=True,
    )
    parts = [f"{what} {wall(name):.1f} s" for name, what in PHASES.items()]
    rest = close - sum(wall(name) for name in PHASES)
    print(f"  of the close: {', '.join(parts)}, listing the invoices and the jobs' own work {rest:.1f} s", flush=True)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--buyers", type=int, default=10_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agora-bench-billing-"))
    os.environ["AGORA_VAR_DIR"] = str(work / "var")
    os.environ.setdefault("AGORA_SECRET_KEY", "bench-secret-key")
    config.reset_settings()
    if not args.no_sqlite:
        run("SQLite", f"sqlite:///{work / 'billing.db'}", args.records, args.buyers)
    if not args.no_postgres:
        base, _, _ = args.postgres.rpartition("/")
        name = f"agora_bench_billing_{os.getpid()}"
        admin = open_database(args.postgres)
        try:
            with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # no PostgreSQL here: report and skip it
            print(f"PostgreSQL: skipped ({type(exc).__name__}: {exc})")
            return
        try:
            run("PostgreSQL", f"{base}/{name}", args.records, args.buyers)
        finally:
            with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
