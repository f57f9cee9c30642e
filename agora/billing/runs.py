"""Running billing from a command (`agora bill`, `agora simulate`): the same durable jobs a worker runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.billing import service
from agora.billing.rating import month_bounds
from agora.db import Database
from agora.models import Invoice, Job, JobState

log = logging.getLogger(__name__)


class PeriodOpen(Exception):
    pass


def close(db: Database, period: str, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Close `period` now: enqueue its run (once), work the queue until idle, return its monthly invoices.
    A run interrupted at any point is finished by running this again; nothing is invoiced twice.
    `progress(done, total)` hears how many of the month's buyers are invoiced, before and after each job."""
    with db.unit_of_work() as session:
        request_close(session, period)
    # The last invoice job of the month to finish enqueues the sellers' payout (BIL-05), which this worker
    # runs too unless another worker gets to it first. Another worker (a server's) may be running some of the
    # month's jobs: the run is over when none of them is running or due, not when this worker finds nothing
    # to claim. A job whose worker died is waited for while anything moves, then left to its lease
    # (`STALL_SECONDS`): running this again takes it back.
    worker = jobs.Worker(db)
    with _second_invoicer(db):
        return _work(db, period, worker, progress)


def _work(db: Database, period: str, worker: jobs.Worker, progress: Progress | None) -> list[dict[str, Any]]:
    seen: tuple[Any, ...] | None = None
    still_since = time.monotonic()
    for _ in range(IDLE_LIMIT):
        if progress is not None:
            progress(*invoiced(db, period))
        if worker.run_once():
            continue
        pending = _in_progress(db, period)
        if not pending:
            break
        state = (pending, invoiced(db, period))  # read only while waiting: nothing per job without `progress`
        if state != seen:
            seen, still_since = state, time.monotonic()
        elif time.monotonic() - still_since > STALL_SECONDS:
            break
        time.sleep(POLL_SECONDS)
    return invoices_of(db, period)


_Worker = jobs.Worker  # the class itself, whatever a test puts in its place for the command's own worker


@contextmanager
def _second_invoicer(db: Database) -> Iterator[None]:
    """On PostgreSQL, a second worker thread takes the month's invoice jobs beside the command's own: each
    job waits on the database for about half its time, which the other spends rating. (SQLite writes one
    transaction at a time: there it would only wait.) It stops, its current job done, when the run is."""
    if db.dialect != "postgresql":
        yield
        return
    stop = threading.Event()
    invoicer = _Worker(db, only=frozenset({service.INVOICE_JOB}))

    def run() -> None:
        while not stop.is_set():
            try:
                busy = invoicer.run_once()
            except Exception:  # claiming failed (the database went away): the command's own worker goes on
                log.exception("agora bill: the second invoice worker stopped")
                return
            if not busy:
                stop.wait(POLL_SECONDS / 4)

    thread = threading.Thread(target=run, name="agora-bill-invoicer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


POLL_SECONDS = 0.05  # while another worker runs one of the month's jobs
STALL_SECONDS = 30.0


def _in_progress(db: Database, period: str) -> frozenset[tuple[int, str]]:
    """The billing jobs of `period` running (in another worker: their lease has not lapsed, or this worker
    would have claimed them) or due, as (id, state). A job waiting for a retry later, or next month's
    scheduled run, is not waited for."""
    now = clock.now()
    with db.reader() as session:
        rows = session.execute(
            select(Job.id, Job.state, Job.payload).where(
                Job.name.in_(BILLING_JOBS),
                (Job.state == JobState.RUNNING.value) | ((Job.state == JobState.QUEUED.value) & (Job.run_at <= now)),
            )
        )
        return frozenset((job_id, state) for job_id, state, payload in rows if payload.get("period") == period)


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
IDLE_LIMIT = 10_000  # rounds one run takes at most (a job, or a wait for another worker), as `Worker.run_until_idle`


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
        query = select(*service.INVOICE_COLUMNS).where(Invoice.period == period)
        if kind is not None:
            query = query.where(Invoice.kind == kind)
        return service.invoices_json(session, session.execute(query.order_by(Invoice.buyer_id, Invoice.id)).all())
