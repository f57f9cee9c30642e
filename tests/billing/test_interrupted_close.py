"""BIL-05 after an interrupted close: several workers close a month, one is SIGKILLed holding an invoice job,
`agora bill` runs again — every buyer has one invoice and the seller is paid every software line once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, func, insert, or_, select

from agora import clock, jobs
from agora.auth import Principal
from agora.billing import service
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import Reading, Source
from agora.models import (
    Buyer,
    Disbursement,
    DisbursementLine,
    FeeRate,
    Invoice,
    InvoiceLine,
    Job,
    JobState,
    Product,
    Role,
    Seller,
    Subscription,
)
from agora.money import from_cents, to_cents
from agora.tasks import register_all
from tests.billing.test_runs import meter
from tests.factories.metering import OTHER, SAAS, metered_market

# Last month by the real clock the `agora` processes run on: closed already, and the next close not yet due.
T0 = (datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)).replace(day=1)
PERIOD = f"{T0:%Y-%m}"
BUYERS = 2500  # 13 invoice jobs of 200 buyers
ROOT = Path(__file__).resolve().parents[2]


def market(db: Database) -> list[int]:
    """The metering market and 2,500 more buyers of its SaaS product, each metered once in March."""
    with clock.use_clock(clock.ManualClock(T0)):
        metered_market(db, T0)
    with db.unit_of_work() as session:
        session.add(FeeRate(kind="*", family="*", percent=Decimal("20")))
        product_id = session.scalar(select(Product.id).where(Product.code == SAAS))
        session.execute(
            insert(Buyer),
            [{"account": f"{800000000000 + i}", "email": f"k{i}@x.example", "created_at": T0} for i in range(BUYERS)],
        )
        buyers = list(session.scalars(select(Buyer.id).where(Buyer.account.like("8000%"))))
        session.execute(
            insert(Subscription),
            [
                {"buyer_id": b, "product_id": product_id, "customer_identifier": f"k-{b}", "started_at": T0,
                 "created_at": T0, "purchases": {}}
                for b in buyers
            ],
        )  # fmt: skip
    with clock.use_clock(clock.ManualClock(T0 + timedelta(days=5))), db.unit_of_work() as session:
        seller_id = session.scalar(select(Seller.id).where(Seller.handle == "acme"))
        assert seller_id is not None
        readings = [Reading(SAAS, "users", 1 + b % 9, clock.now(), customer_identifier=f"k-{b}") for b in buyers]
        metering.ingest(session, Principal(Role.SELLER, seller_id, "acme"), readings, source=Source.SELLER)
    return buyers


def settled(db: Database) -> bool:
    """Every invoice job of the month is done (a job retried later — SQLite refuses a second concurrent
    writer — is waited for) and its payout job, if there is one, is neither running nor due."""
    invoice_jobs = Job.dedupe_key.like(f"invoice:{PERIOD}:%")
    payout_job = Job.dedupe_key == f"disburse:{PERIOD}"
    with db.reader() as session:
        busy = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                or_(
                    and_(invoice_jobs, Job.state != JobState.DONE.value),
                    and_(payout_job, Job.state == JobState.RUNNING.value),
                    and_(payout_job, Job.state == JobState.QUEUED.value, Job.run_at <= datetime.now(UTC)),
                )
            )
        )
    return busy == 0


@pytest.mark.slow
@pytest.mark.rule("BIL-05")
def test_a_seller_is_paid_every_line_of_a_month_whose_close_was_interrupted_BIL_05(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    buyers = market(db)
    env = {**os.environ, "AGORA_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = tmp_path / "started"
    doomed = subprocess.Popen([sys.executable, "-m", "tests.billing.invoice_worker", db_url, str(started)], **quiet)
    live = subprocess.Popen([sys.executable, "-m", "agora", "worker", "--poll", "0.1"], **quiet)
    bill = [sys.executable, "-m", "agora", "bill", "--period", PERIOD, "--json"]
    try:
        first = subprocess.Popen(bill, **quiet)
        deadline = time.monotonic() + 180
        while not started.exists():
            assert doomed.poll() is None, "the worker to kill died on its own"
            assert time.monotonic() < deadline, "the worker to kill never took an invoice job"
            time.sleep(0.02)
        os.kill(doomed.pid, signal.SIGKILL)  # holding an invoice job, its invoices written but not committed
        doomed.wait(timeout=30)
        assert first.wait(timeout=300) == 0
        again = subprocess.run(bill, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        deadline = time.monotonic() + 300
        while not settled(db):
            assert time.monotonic() < deadline, "the month's jobs never settled"
            time.sleep(0.1)
    finally:
        for process in (doomed, live):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    with db.reader() as session:
        monthly = session.execute(
            select(Invoice.buyer_id, Invoice.total_cents).where(Invoice.kind == "monthly", Invoice.period == PERIOD)
        ).all()
        acme = session.scalar(select(Seller.id).where(Seller.handle == "acme"))
        software = dict(
            session.execute(
                select(InvoiceLine.id, InvoiceLine.amount_cents)
                .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                .where(InvoiceLine.seller_id == acme, InvoiceLine.category == "software", Invoice.period == PERIOD)
            ).all()
        )
        [paid] = session.scalars(select(Disbursement).where(Disbursement.seller_id == acme)).all()
        statement = session.execute(
            select(DisbursementLine.invoice_line_id, DisbursementLine.amount_cents, DisbursementLine.fee_cents).where(
                DisbursementLine.disbursement_id == paid.id
            )
        ).all()
    totals = dict(monthly)
    assert len(monthly) == len(totals) >= BUYERS  # one invoice per buyer, none twice
    assert all(totals[b] == (1 + b % 9) for b in buyers)  # 1-9 users at 0.01
    assert len(software) > BUYERS
    covered = [line_id for line_id, _, _ in statement]
    assert len(covered) == len(set(covered)) == len(software), f"paid {len(covered)} of {len(software)} lines"
    assert set(covered) == set(software)  # every software line of the month, each once
    assert all(amount == software[line_id] for line_id, amount, _ in statement)
    assert paid.gross_cents == sum(software.values())
    assert paid.fee_cents == sum(to_cents(from_cents(c) * Decimal("0.20")) for c in software.values())
    assert paid.fee_cents == sum(fee for _, _, fee in statement)
    assert paid.net_cents == paid.gross_cents - paid.fee_cents


@pytest.mark.rule("BIL-05")
def test_of_invoice_jobs_finishing_at_once_one_enqueues_the_payout_BIL_05(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every invoice job of the month finishes at the same moment, each in its own worker: each counts the
    others only after they committed, so exactly one payout job is enqueued, after all of them. (PostgreSQL:
    SQLite runs one writer at a time, so two jobs cannot both be writing.)"""
    if db.dialect != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL only")
    register_all()
    with clock.use_clock(clock.ManualClock(T0)) as moved:
        assert isinstance(moved, clock.ManualClock)
        metered_market(db, T0)
        moved.set(T0 + timedelta(days=2))
        meter(db, SAAS, "cust-1", "users", 10)
        meter(db, OTHER, "gx-1", "users", 100)
        moved.set(T0 + timedelta(days=40))
        monkeypatch.setattr(service, "BUYERS_PER_JOB", 1)
        with db.unit_of_work() as session:
            jobs.enqueue(session, "billing.close_period", {"period": PERIOD})
        jobs.Worker(db, only=frozenset({"billing.close_period"})).run_until_idle()
        with db.reader() as session:
            waiting = session.scalar(select(func.count()).where(Job.name == service.INVOICE_JOB)) or 0
        assert waiting >= 2
        together = threading.Barrier(waiting)
        real = service.monthly_invoices

        def invoice_then_meet(session: Any, buyer_ids: Any, period: str) -> Any:
            made = real(session, buyer_ids, period)
            session.flush()
            together.wait(timeout=30)  # every job has written its invoices; none has committed
            return made

        monkeypatch.setattr(service, "monthly_invoices", invoice_then_meet)
        invoicing = frozenset({service.INVOICE_JOB})  # not next month's first day, due by now (`sum_day`)
        workers = [threading.Thread(target=jobs.Worker(db, only=invoicing).run_once) for _ in range(waiting)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        with db.reader() as session:
            states = session.scalars(select(Job.state).where(Job.name == service.INVOICE_JOB)).all()
            payouts = session.scalars(select(Job.dedupe_key).where(Job.name == "billing.disburse")).all()
        assert states == [JobState.DONE.value] * waiting
        assert payouts == [f"disburse:{PERIOD}"]
