"""MTR-02: a server killed with SIGKILL in the middle of a BatchMeterUsage load loses nothing it answered.

A real `agora serve` process takes signed boto3 calls from several threads; it is killed without warning
while they run, and started again. Every record that was answered `Success` is stored exactly once; the
calls that died in flight are retried, as an SDK would, and are stored once too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from sqlalchemy import func, insert, select

from agora.db import Database
from agora.models import Buyer, Product, Subscription, UsageRecord
from tests.factories.metering import SAAS, SELLER_KEY, metered_market
from tests.live import free_port

CUSTOMERS = 120


def _add_customers(db: Database, at: datetime) -> list[str]:
    with db.unit_of_work() as session:
        product_id = session.scalar(select(Product.id).where(Product.code == SAAS))
        session.execute(
            insert(Buyer),
            [
                {"account": f"{900000000000 + i}", "email": f"c{i}@crash.example", "created_at": at}
                for i in range(CUSTOMERS)
            ],
        )
        buyers = session.scalars(select(Buyer.id).where(Buyer.account.like("9000000%")).order_by(Buyer.id)).all()
        session.execute(
            insert(Subscription),
            [
                {
                    "buyer_id": buyer_id,
                    "product_id": product_id,
                    "customer_identifier": f"crash-{n}",
                    "started_at": at,
                    "created_at": at,
                    "purchases": {},
                }
                for n, buyer_id in enumerate(buyers)
            ],
        )
    return [f"crash-{n}" for n in range(CUSTOMERS)]


@contextmanager
def _server(db_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "AGORA_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "agora", "serve", "--no-worker", "--no-access-log", f"--port={port}"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                break
        except OSError:
            assert process.poll() is None, "the server died while starting"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.rule("MTR-02")
def test_records_answered_success_survive_a_sigkill_exactly_once_MTR_02(db: Database, db_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    metered_market(db, now - timedelta(days=1))
    customers = _add_customers(db, now - timedelta(days=1))
    hour = now.replace(minute=0, second=0)
    hours = [hour - timedelta(hours=h) for h in range(5)]
    batches = [
        [
            {"Timestamp": ts, "CustomerIdentifier": customer, "Dimension": dimension, "Quantity": 1 + n % 5}
            for n, customer in enumerate(customers[start : start + 25])
        ]
        for ts in hours
        for dimension in ("users", "requests")
        for start in range(0, CUSTOMERS, 25)
    ]  # 5 hours × 2 dimensions × 5 batches = 50 calls, 1,200 distinct records
    port = free_port()
    answered: dict[tuple[str, str, datetime], str] = {}  # record key → MeteringRecordId answered Success
    lock = threading.Lock()
    failures: list[int] = []
    mismatches: list[str] = []
    next_batch = iter(range(len(batches)))

    def client() -> object:
        return boto3.client(
            "meteringmarketplace",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=SELLER_KEY[0],
            aws_secret_access_key=SELLER_KEY[1],
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def send(index: int, metering: object) -> bool:
        try:
            result = metering.batch_meter_usage(ProductCode=SAAS, UsageRecords=batches[index])  # type: ignore[attr-defined]
        except Exception:
            return False
        with lock:
            for item in result["Results"]:
                record = item["UsageRecord"]
                key = (record["CustomerIdentifier"], record["Dimension"], record["Timestamp"])
                if item["Status"] != "Success":
                    mismatches.append(f"{key}: {item['Status']}")
                    continue
                previous = answered.setdefault(key, item["MeteringRecordId"])
                if previous != item["MeteringRecordId"]:  # a retry must get the first answer's id
                    mismatches.append(f"{key}: {previous} then {item['MeteringRecordId']}")
        return True

    def load() -> None:
        metering = client()
        for index in next_batch:
            if not send(index, metering):
                with lock:
                    failures.append(index)
            time.sleep(0.02)

    with _server(db_url, port) as first:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(answered) < 200:  # killed mid-load: some calls answered, some in flight, some not sent
            assert time.monotonic() < deadline, "no load got through"
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=60)
    answered_before_kill = dict(answered)
    assert 0 < len(answered_before_kill) < 1200

    with _server(db_url, port):
        metering = client()
        for index in range(len(batches)):  # the SDK's retries: every call again, answered or not
            assert send(index, metering)

    with db.reader() as session:
        rows = session.execute(select(UsageRecord.record_id, UsageRecord.quantity)).all()
        distinct = session.scalar(
            select(func.count()).select_from(
                select(UsageRecord.period_start, UsageRecord.subscription_id, UsageRecord.dimension)
                .distinct()
                .subquery()
            )
        )
    stored_ids = [record_id for record_id, _ in rows]
    assert len(rows) == 1200 == distinct  # every record once, none twice
    assert set(answered_before_kill.values()) <= set(stored_ids)  # nothing answered Success was lost
    assert mismatches == []  # every answer Success, and a retry answered with the original id
    assert len(answered) == 1200 and set(answered.values()) == set(stored_ids)
