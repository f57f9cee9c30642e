"""The seller's price-change preview (`agora.pricing.preview.preview`, behind **Preview** on
`/seller/products/{code}/pricing`): how long re-rating the last billed month of every current subscriber
takes at the proposed prices.

    .venv/bin/python -m bench.seller_pricing_preview [--subscribers 300]

The demo market (examples/demo.yaml); N buyers subscribe to Acme Edge Proxy (hourly c5.large plus a monthly
fee) on the 1st of last month, each runs one c5.large for 9.5 hours on the 3rd, and last month is closed.
Prints the preview's time (best and median of 5) and checks its totals: N × $49.50 billed, N × $49.70 at
c5.large $0.07.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import select

from agora import clock, config, migrate
from agora.auth import Principal
from agora.billing import runs
from agora.billing.rating import period_of
from agora.db import Database, open_database
from agora.manifest.loader import load_data
from agora.metering import platform
from agora.models import Buyer, Role, Seller, Subscription
from agora.pricing import preview
from agora.pricing.schema import PricingDocument
from agora.subscriptions import service as subscriptions
from agora.tasks import register_all

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"
PRODUCT = "acme-edge-proxy"


def populate(db: Database, n: int) -> str:
    with db.unit_of_work() as session:
        load_data(yaml.safe_load(DEMO.read_text()), session)
    now = clock.now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=1)
    start = datetime(start.year, start.month, 1, tzinfo=UTC)
    with clock.use_clock(clock.ManualClock(start)) as moved:
        assert isinstance(moved, clock.ManualClock)
        ids = []
        with db.unit_of_work() as session:
            for i in range(n):
                buyer = Buyer(account=f"9{i:011d}", email=f"bench-{i}@buyers.example", enterprise=False)
                session.add(buyer)
                session.flush()
                principal = Principal(Role.BUYER, buyer.id, buyer.account)
                ids.append(subscriptions.subscribe(session, principal, PRODUCT, accept_eula=True)[0].id)
        moved.set(start + timedelta(days=2, hours=9))
        with db.unit_of_work() as session:
            for i, subscription_id in enumerate(ids):
                found = session.get_one(Subscription, subscription_id)
                platform.start_instance(session, found, f"i-bench-{i}", "c5.large", clock.now(), "us-east-1")
        moved.set(start + timedelta(days=2, hours=18, minutes=30))
        with db.unit_of_work() as session:
            for i in range(n):
                platform.stop_instance(session, f"i-bench-{i}", clock.now())
    register_all()
    runs.close(db, period_of(start))
    return period_of(start)


def measure(url: str, label: str, n: int) -> None:
    db = open_database(url)
    try:
        migrate.upgrade(db)
        populate(db, n)
        proposed = PricingDocument.model_validate({"hourly": {"c5.large": "0.07"}, "monthly": "49"})
        times = []
        with db.reader() as session:
            acme = session.scalar(select(Seller).where(Seller.handle == "acme"))
            assert acme is not None
            seller = Principal(Role.SELLER, acme.id, acme.handle)
            for _ in range(5):
                began = time.perf_counter()
                result = preview.preview(session, seller, PRODUCT, proposed)
                times.append((time.perf_counter() - began) * 1000)
        assert result.billed_total == n * 4950 and result.proposed_total == n * 4970, result
        print(
            f"{label}: preview of {n} subscribers: best {min(times):.0f} ms, median {statistics.median(times):.0f} ms "
            f"({statistics.median(times) / n:.2f} ms per subscriber)"
        )
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        os.environ["AGORA_VAR_DIR"] = str(Path(tmp) / "var")
        os.environ.setdefault("AGORA_SECRET_KEY", "bench-secret-key")
        config.reset_settings()
        measure(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite", args.subscribers)


if __name__ == "__main__":
    main()
