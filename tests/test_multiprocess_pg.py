"""Several servers and several workers on one PostgreSQL database (issue #16, MTR-02, MTR-05, BIL-05).

Two `agora serve --no-worker` processes and two `agora worker`s share a database of their own (created for
this test run). Signed BatchMeterUsage calls go through both servers at once; one server is SIGKILLed in the
middle and started again, and every call is then retried as an SDK would: every record answered `Success` is
stored once, under the id first answered. A month is closed by the two workers while one of them is
SIGKILLed holding an invoice job: every buyer has one invoice, and the totals are those of the same month
closed by a single process (on SQLite, in this process). An access key revoked through one server is refused
by the other within `ACCESS_KEY_TTL` (2 seconds), the bound of each process's key cache.
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
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from sqlalchemy import func, insert, select

from agora import jobs
from agora.auth import ACCESS_KEY_TTL
from agora.billing import runs
from agora.db import Database, open_database
from agora.models import Buyer, Invoice, Job, JobState, Product, Subscription, UsageRecord
from agora.tasks import register_all
from tests.billing.test_interrupted_close import PERIOD, market, settled
from tests.conftest import POSTGRES_URL
from tests.factories.metering import SAAS, SELLER_KEY
from tests.live import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="AGORA_TEST_POSTGRES_URL is not set"),
]

CUSTOMERS = 200  # metered now, through the servers: 200 × 2 dimensions × 4 hours = 1,600 records
ROOT = Path(__file__).resolve().parents[1]


def _add_customers(db: Database, at: datetime) -> list[str]:
    with db.unit_of_work() as session:
        product_id = session.scalar(select(Product.id).where(Product.code == SAAS))
        session.execute(
            insert(Buyer),
            [
                {"account": f"{920000000000 + i}", "email": f"m{i}@multi.example", "created_at": at}
                for i in range(CUSTOMERS)
            ],
        )
        buyers = session.scalars(select(Buyer.id).where(Buyer.account.like("92000%")).order_by(Buyer.id)).all()
        session.execute(
            insert(Subscription),
            [
                {"buyer_id": b, "product_id": product_id, "customer_identifier": f"multi-{n}", "started_at": at,
                 "created_at": at, "purchases": {}}
                for n, b in enumerate(buyers)
            ],
        )  # fmt: skip
    return [f"multi-{n}" for n in range(CUSTOMERS)]


def _env(db_url: str) -> dict[str, str]:
    return {**os.environ, "AGORA_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "agora", "serve", "--no-worker", "--no-access-log", f"--port={port}"]
    process = subprocess.Popen(command, env=_env(db_url), stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            assert process.poll() is None, f"the server died while starting: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def _worker(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "agora", "worker", "--poll", "0.05", "--lease-seconds", "15"]
    return subprocess.Popen(command, env=_env(db_url), stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _client(port: int, key: tuple[str, str] = SELLER_KEY) -> Any:
    return boto3.client(
        "meteringmarketplace",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20),
    )


class Answers:
    """What the servers answered: the MeteringRecordId of every record answered Success, and any answer that
    was not Success or named another id for a record than its first answer."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, datetime], str] = {}
        self.wrong: list[str] = []
        self.lock = threading.Lock()

    def send(self, client: Any, batch: list[dict[str, Any]]) -> bool:
        try:
            result = client.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        except Exception:
            return False
        with self.lock:
            for item in result["Results"]:
                record = item["UsageRecord"]
                key = (record["CustomerIdentifier"], record["Dimension"], record["Timestamp"])
                if item["Status"] != "Success":
                    self.wrong.append(f"{key}: {item['Status']}")
                elif self.ids.setdefault(key, item["MeteringRecordId"]) != item["MeteringRecordId"]:
                    self.wrong.append(f"{key}: {self.ids[key]} then {item['MeteringRecordId']}")
        return True


def _meter_through_both_while_one_is_killed(db: Database, db_url: str, ports: list[int], tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    customers = _add_customers(db, now - timedelta(days=1))
    hour = now.replace(minute=0, second=0)
    batches = [
        [
            {"Timestamp": hour - timedelta(hours=h), "CustomerIdentifier": c, "Dimension": d, "Quantity": 1 + n % 5}
            for n, c in enumerate(customers[start : start + 25])
        ]
        for h in range(4)
        for d in ("users", "requests")
        for start in range(0, CUSTOMERS, 25)
    ]
    answers = Answers()
    queue = iter(range(len(batches)))

    def load(thread: int) -> None:
        clients = [_client(port) for port in ports]
        for n, index in enumerate(queue):
            answers.send(clients[(thread + n) % 2], batches[index])  # both servers, alternately

    with _processes() as servers:
        servers.extend(_serve(db_url, port, tmp_path / f"serve-{port}.log") for port in ports)
        threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(answers.ids) < 300:  # killed in the middle: answered, in flight and unsent calls
            assert time.monotonic() < deadline, "no load got through"
            time.sleep(0.005)
        os.kill(servers[0].pid, signal.SIGKILL)
        servers[0].wait(timeout=30)
        for thread in threads:
            thread.join(timeout=120)
        before_restart = dict(answers.ids)
        assert 0 < len(before_restart) < 25 * len(batches)
        servers[0] = _serve(db_url, ports[0], tmp_path / f"serve-{ports[0]}.log")
        clients = [_client(port) for port in ports]
        for index in range(len(batches)):  # the SDK's retries: every call again, through either server
            assert answers.send(clients[index % 2], batches[index])

    with db.reader() as session:
        stored = session.scalars(
            select(UsageRecord.record_id)
            .join(Buyer, Buyer.id == UsageRecord.buyer_id)
            .where(Buyer.account.like("92000%"))
        ).all()
    assert answers.wrong == []  # every record Success, a retry answered with the first answer's id
    assert len(stored) == len(set(stored)) == 25 * len(batches)  # every record once
    assert set(before_restart.values()) <= set(stored)  # nothing answered Success before the kill was lost
    assert set(answers.ids.values()) == set(stored)


def _revoked_through_one_refused_by_the_other(ports: list[int]) -> float:
    """Seconds from the revocation (through the first server) to the first refusal by the second."""
    first = f"http://127.0.0.1:{ports[0]}"
    auth = {"Authorization": "Bearer acme-token"}
    created = httpx.post(f"{first}/api/v1/keys", headers=auth, timeout=20)
    assert created.status_code == 201, created.text
    key = (created.json()["access_key_id"], created.json()["secret"])
    other = _client(ports[1], key)
    record = {"Timestamp": datetime.now(UTC), "CustomerIdentifier": "multi-0", "Dimension": "users", "Quantity": 1}
    for _ in range(3):  # accepted by the other server, which now has the key in its cache
        assert other.batch_meter_usage(ProductCode=SAAS, UsageRecords=[record])["Results"][0]["Status"] == "Success"
    revoked = httpx.delete(f"{first}/api/v1/keys/{key[0]}", headers=auth, timeout=20)
    assert revoked.status_code == 200, revoked.text
    at = time.monotonic()
    while True:
        try:
            other.batch_meter_usage(ProductCode=SAAS, UsageRecords=[record])
        except other.exceptions.ClientError as refusal:
            assert refusal.response["Error"]["Code"] in ("UnrecognizedClientException", "InvalidSignatureException")
            return time.monotonic() - at
        assert time.monotonic() - at < ACCESS_KEY_TTL + 5, "the revoked key is still accepted"
        time.sleep(0.05)


def _close_while_a_worker_is_killed(db: Database, db_url: str, tmp_path: Path) -> None:
    with _processes() as workers:
        workers.extend(_worker(db_url, tmp_path / f"worker-{n}.log") for n in range(2))
        with db.unit_of_work() as session:
            jobs.enqueue(session, "billing.close_period", {"period": PERIOD}, dedupe_key=f"close-now:{PERIOD}")
        pids = {str(w.pid): w for w in workers}
        deadline = time.monotonic() + 180
        victim = None
        while victim is None:  # the first worker seen holding an invoice job
            assert time.monotonic() < deadline, "no worker took an invoice job"
            with db.reader() as session:
                holders = session.scalars(
                    select(Job.locked_by).where(
                        Job.name == "billing.invoice_buyers", Job.state == JobState.RUNNING.value
                    )
                ).all()
            victim = next((pids[h.split(":")[1]] for h in holders if h and h.split(":")[1] in pids), None)
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)  # its invoices written, perhaps, but not committed
        victim.wait(timeout=30)
        workers[workers.index(victim)] = _worker(db_url, tmp_path / "worker-again.log")
        deadline = time.monotonic() + 600
        while not settled(db):  # the killed job's lease lapses; a worker takes it again
            assert time.monotonic() < deadline, "the month's jobs never settled"
            time.sleep(0.2)


def _monthly_totals(db: Database) -> dict[str, int]:
    with db.reader() as session:
        rows = session.execute(
            select(Buyer.account, Invoice.total_cents)
            .join(Buyer, Buyer.id == Invoice.buyer_id)
            .where(Invoice.kind == "monthly", Invoice.period == PERIOD)
        ).all()
    totals = dict(rows)
    assert len(totals) == len(rows), "a buyer has two invoices for the month"
    return totals


@pytest.mark.rule("MTR-02")
@pytest.mark.rule("MTR-05")
@pytest.mark.rule("BIL-05")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_servers_and_two_workers_on_one_postgres_lose_and_double_nothing_MTR_02_MTR_05_BIL_05(
    db: Database, db_url: str, tmp_path: Path, _sqlite_template: Path
) -> None:
    register_all()
    market(db)  # last month's usage of 2,500 buyers, to close
    ports = [free_port(), free_port()]

    _meter_through_both_while_one_is_killed(db, db_url, ports, tmp_path)

    with _processes() as servers:
        servers.extend(_serve(db_url, port, tmp_path / f"serve-{port}.log") for port in ports)
        refused_after = _revoked_through_one_refused_by_the_other(ports)
    assert refused_after <= ACCESS_KEY_TTL + 1.0  # the cache bound, and a second for a loaded machine

    _close_while_a_worker_is_killed(db, db_url, tmp_path)
    totals = _monthly_totals(db)

    # The same month closed by one process, on a database of its own: the same invoices, cent for cent.
    reference_path = tmp_path / "single.db"
    reference_path.write_bytes(_sqlite_template.read_bytes())
    reference = open_database(f"sqlite:///{reference_path}")
    try:
        market(reference)
        runs.close(reference, PERIOD)
        expected = _monthly_totals(reference)
    finally:
        reference.dispose()
    assert len(totals) >= 2500
    assert totals == expected
    with db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.FAILED.value)) == 0
