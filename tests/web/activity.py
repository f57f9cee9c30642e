"""What the demo buyer has done in the web tests' market, on top of `market.seed`: usage of Acme Analytics
on each of the last ten days and early last month (reported by the seller, each record sent inside the
6-hour window under a moved clock), last month's invoice closed, and a credit note for part of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from agora import clock
from agora.app import create_app
from agora.billing import runs
from agora.billing.rating import period_of
from agora.db import Database
from agora.tasks import register_all

ACME = {"Authorization": "Bearer demo-acme-token"}
DAYS = 10


def _meter(api: TestClient, hour: datetime, quantity: int) -> None:
    record = {
        "product_code": "acme-analytics",
        "customer_identifier": "cust-bluebird",
        "dimension": "users",
        "quantity": quantity,
        "timestamp": hour.isoformat().replace("+00:00", "Z"),
    }
    with clock.use_clock(clock.ManualClock(hour + timedelta(minutes=20))):
        answer = api.post("/api/v1/usage", json={"records": [record]}, headers=ACME)
    assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "accepted", answer.text


def seed_activity(db: Database) -> str:
    """Returns the period of the closed invoice."""
    now = clock.now()
    today = datetime(now.year, now.month, now.day, 10, tzinfo=UTC)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    last_month = period_of(this_month - timedelta(days=1))
    with TestClient(create_app(db)) as api:
        for n in range(DAYS, 0, -1):
            _meter(api, today - timedelta(days=n), 3 + (n * 7) % 11)
        first = datetime.fromisoformat(f"{last_month}-03T09:00:00+00:00")
        for n in range(3):
            _meter(api, first + timedelta(days=n), 40 + n)
        register_all()  # the close runs every due job, as `agora bill` does
        runs.close(db, last_month)
        refund = {
            "buyer_account": "111122223333",
            "buyer_email": "ops@bluebird.example",
            "product": "acme-analytics",
            "periods": [last_month],
            "amount": "2.00",
            "reason": "Dashboards were down for a day",
        }
        answer = api.post("/api/v1/refunds", json=refund, headers=ACME)
        assert answer.status_code == 201, answer.text
    return last_month
