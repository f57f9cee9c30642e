"""A past month with usage for two buyers and no run yet: the month the console's tests close from
`/ops/billing`, then mark one invoice paid and void the other. Usage is reported by the seller through the
API, each record inside the 6-hour window under a moved clock (MTR-04), as `activity.py` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from agora import clock
from agora.app import create_app
from agora.billing.rating import period_of
from agora.db import Database
from agora.manifest.loader import load_data
from tests.web.market import manifest

ACME = {"Authorization": "Bearer demo-acme-token"}
CUSTOMERS = {"111122223333": "cust-bluebird", "444455556666": "cust-globex-analytics"}


def _meter(api: TestClient, customer: str, hour: datetime, quantity: int) -> None:
    record = {
        "product_code": "acme-analytics",
        "customer_identifier": customer,
        "dimension": "users",
        "quantity": quantity,
        "timestamp": hour.isoformat().replace("+00:00", "Z"),
    }
    with clock.use_clock(clock.ManualClock(hour + timedelta(minutes=20))):
        answer = api.post("/api/v1/usage", json={"records": [record]}, headers=ACME)
    assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "accepted", answer.text


def last_month() -> str:
    now = clock.now()
    return period_of(datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=1))


def seed_past_month(db: Database) -> str:
    """Globex subscribes to Acme Analytics too (from the start of last month); both buyers use it on the
    3rd to 5th of last month. Returns that month, still open."""
    period = last_month()
    start = datetime.fromisoformat(f"{period}-01T00:00:00+00:00")
    data = manifest()
    data["subscriptions"].append(
        {
            "buyer": "444455556666",
            "product": "acme-analytics",
            "at": start.isoformat(),
            "customer_identifier": CUSTOMERS["444455556666"],
        }
    )
    with db.unit_of_work() as session:
        load_data(data, session)
    first = datetime.fromisoformat(f"{period}-03T09:00:00+00:00")
    with TestClient(create_app(db)) as api:
        for n in range(3):
            for i, customer in enumerate(CUSTOMERS.values()):
                _meter(api, customer, first + timedelta(days=n, hours=i), 10 * (i + 1) + n)
    return period
