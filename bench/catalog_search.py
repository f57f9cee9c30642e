"""Catalog search latency over 10,000 public listings, on SQLite and (if reachable) PostgreSQL.

    .venv/bin/python -m bench.catalog_search [--listings 10000] [--queries 400] [--postgres URL]

Prints p50/p99 per query shape and, as the machine-independent figure, the ratio of each p50 to the p50 of
a primary-key product lookup measured in the same run (these 2-core machines are noisy; see PERF-NOTES).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

from agora import migrate
from agora.catalog import search
from agora.db import Database, open_database
from agora.models import Product, ProductRegion, SearchDocument, Seller

WORDS = (
    "analytics dashboards secrets vault proxy gateway database backup monitoring forecasting sentiment cache "
    "search storage security networking kubernetes container serverless pipeline streaming warehouse ledger "
    "identity compliance observability tracing logging billing invoicing scheduling messaging queue firewall"
).split()
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pra", "den", "gor", "lux", "tem", "zar", "qui")
FILLER = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES})  # 3,375 words
KINDS = ("saas", "ami", "container", "ml_algorithm", "ml_model", "managed_service")
FAMILIES = ("free", "hourly", "hourly_trial", "usage", "contract", "monthly", "byol")
CATEGORIES = ("analytics", "security", "databases", "devops", "networking", "machine-learning", "storage")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")


def populate(db: Database, n: int, rng: random.Random) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with db.unit_of_work() as session:
        session.execute(
            insert(Seller),
            [
                {"handle": f"s{i}", "name": f"Seller {i}", "tax_form": "W-9", "data_sharing": False, "created_at": now}
                for i in range(50)
            ],
        )
        seller_ids = list(session.scalars(select(Seller.id)))
    for start in range(0, n, 1000):
        products, documents, regions = [], [], []
        for i in range(start, min(n, start + 1000)):
            title_words = rng.sample(WORDS, 3)
            body_words = rng.choices(FILLER, k=57) + rng.sample(WORDS, 3)
            products.append(
                {
                    "id": i + 1,
                    "code": f"p-{i:05d}",
                    "seller_id": rng.choice(seller_ids),
                    "kind": rng.choice(KINDS),
                    "title": " ".join(title_words).title(),
                    "state": "public",
                    "listing": {"short_description": " ".join(body_words[:12])},
                    "pricing": {"free": True},
                    "category": rng.choice(CATEGORIES),
                    "pricing_family": rng.choice(FAMILIES),
                    "free_trial": rng.random() < 0.2,
                    "enterprise_only": False,
                    "created_at": now,
                    "updated_at": now,
                    "published_at": now,
                }
            )
            documents.append({"product_id": i + 1, "title": " ".join(title_words), "body": " ".join(body_words)})
            regions.extend({"product_id": i + 1, "region": r} for r in rng.sample(REGIONS, 2))
        with db.unit_of_work() as session:
            session.execute(insert(Product), products)
            session.execute(insert(SearchDocument), documents)
            session.execute(insert(ProductRegion), regions)
    if db.dialect == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def measure(db: Database, fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(db: Database, label: str, n: int, repeat: int) -> None:
    rng = random.Random(7)
    started = time.perf_counter()
    populate(db, n, rng)
    print(f"\n{label}: {n:,} listings loaded in {time.perf_counter() - started:.1f} s")

    def lookup() -> None:
        with db.reader() as session:
            session.scalar(select(Product).where(Product.code == f"p-{rng.randrange(n):05d}"))

    def query(q: str, filters: search.Filters) -> Callable[[], None]:
        def go() -> None:
            with db.reader() as session:
                search.search(session, q, filters, limit=20)

        return go

    shapes = {
        "one word": lambda: query(rng.choice(WORDS), search.Filters())(),
        "two words": lambda: query(" ".join(rng.sample(WORDS, 2)), search.Filters())(),
        "prefix (4 letters)": lambda: query(rng.choice(WORDS)[:4], search.Filters())(),
        "word + kind + region": lambda: query(
            rng.choice(WORDS), search.Filters(kind=rng.choice(KINDS), region=rng.choice(REGIONS))
        )(),
        "filters only (browse)": lambda: query("", search.Filters(category=rng.choice(CATEGORIES)))(),
    }
    base = measure(db, lookup, repeat)
    base_p50 = statistics.median(base)
    print(f"  {'query':<24}{'p50 ms':>9}{'p99 ms':>9}{'p50 ÷ lookup p50':>19}")
    print(f"  {'pk lookup (baseline)':<24}{base_p50:>9.2f}{percentile(base, 0.99):>9.2f}{1.0:>19.1f}")
    for name, fn in shapes.items():
        samples = measure(db, fn, repeat)
        p50 = statistics.median(samples)
        print(f"  {name:<24}{p50:>9.2f}{percentile(samples, 0.99):>9.2f}{p50 / base_p50:>19.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/agora_bench")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(sqlite)
        run(sqlite, "SQLite (FTS5)", args.listings, args.queries)
        sqlite.dispose()

    try:
        admin = open_database(args.postgres.rsplit("/", 1)[0] + "/postgres")
        name = args.postgres.rsplit("/", 1)[1]
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # PostgreSQL is optional for this benchmark
        print(f"\nPostgreSQL skipped: {type(exc).__name__}: {exc}")
        return
    pg = open_database(args.postgres)
    migrate.upgrade(pg)
    run(pg, "PostgreSQL (tsvector + GIN)", args.listings, args.queries)
    pg.dispose()


if __name__ == "__main__":
    main()
