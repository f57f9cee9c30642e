"""Running billing from a command (`agora bill`, `agora simulate`): the same durable jobs a worker runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.billing import service
from agora.billing.rating import month_bounds
from agora.db import Database
from agora.models import Invoice, Job, JobState


class PeriodOpen(Exception):
    pass


def close(db: Database, period: str, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Close `period` now: enqueue its run (once), work the queue until idle, return its monthly invoices.
    A run interrupted at any point is finished by running this again; nothing is invoiced twice.
    `progress(done, total)` hears how many of the month's buyers are invoiced, before and after each job."""
    with db.unit_of_work() as session:
        request_close(session, period)
    # The last invoice job of the month to finish enqueues the sellers' payout (BIL-05), which this worker
    # runs too unless another worker gets to it first.
    worker = jobs.Worker(db)
    for _ in range(IDLE_LIMIT):
        if progress is not None:
            progress(*invoiced(db, period))
        if not worker.run_once():
            break
    return invoices_of(db, period)


def request_close(session: Session, period: str) -> bool:
    """Enqueue `period`'s run now (once: a second request finds the first) and take back its billing jobs
    left leased by a dead process. Returns whether a new run was enqueued. Any worker then does the work."""
    _, end = month_bounds(period)
    if clock.now() < end:
        raise PeriodOpen(f"{period} has not ended yet")
    queued = jobs.enqueue(session, "billing.close_period", {"period": period}, dedupe_key=f"close-now:{period}")
    _retake(session, period)
    return queued is not None


Progress = Callable[[int, int], None]
IDLE_LIMIT = 10_000  # jobs one run works at most, as `Worker.run_until_idle`


def invoiced(db: Database, period: str) -> tuple[int, int]:
    """(buyers invoiced, buyers to invoice) of `period`: the buyers of its invoice jobs, and of those done."""
    with db.reader() as session:
        return invoiced_in(session, period)


def invoiced_in(session: Session, period: str) -> tuple[int, int]:
    rows = session.execute(
        select(Job.state, Job.payload).where(
            Job.name == service.INVOICE_JOB,
            Job.dedupe_key.startswith(service.invoice_key(period, ""), autoescape=True),
        )
    ).all()
    total = sum(len(payload["buyer_ids"]) for _, payload in rows)
    done = sum(len(payload["buyer_ids"]) for state, payload in rows if state == JobState.DONE.value)
    return done, total


BILLING_JOBS = ("billing.close_period", "billing.invoice_buyers", "billing.disburse")


def _retake(session: Session, period: str) -> None:
    """Billing jobs of `period` still leased by a process that died (a killed `agora bill`) are taken back
    now instead of when their lease lapses. Safe even if their holder is alive: every step is idempotent and
    an invoice's unique source lets only one of two concurrent attempts write it."""
    stuck = session.scalars(select(Job).where(Job.name.in_(BILLING_JOBS), Job.state == JobState.RUNNING.value)).all()
    for job in stuck:
        if job.payload.get("period") == period:
            job.state = JobState.QUEUED.value
            job.locked_by = None
            job.locked_until = None
            job.run_at = clock.now()


def invoices_of(db: Database, period: str, kind: str | None = "monthly") -> list[dict[str, Any]]:
    with db.reader() as session:
        query = select(Invoice).where(Invoice.period == period).order_by(Invoice.buyer_id, Invoice.id)
        if kind is not None:
            query = query.where(Invoice.kind == kind)
        return service.invoices_json(session, session.scalars(query).all())
