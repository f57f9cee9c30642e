"""Durable jobs: rows written with the change that causes them, claimed by workers, retried with backoff.

Claiming is a conditional UPDATE (`FOR UPDATE SKIP LOCKED` on PostgreSQL) that takes a lease. A job runs
in its own transaction, and the "done" mark is written in that same transaction only if this worker still
holds the lease — so a worker that dies mid-job leaves nothing behind, the lease lapses, and the next
worker runs the job exactly once more. A job whose lease was taken over can never commit twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.db import Database
from agora.errors import InvalidTransition, NotFound
from agora.models import Job, JobState

log = logging.getLogger("agora.jobs")

Handler = Callable[[Session, dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}

DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(hours=1)


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the function that performs jobs called `name` (`<domain>.<verb>`)."""
    if "." not in name:
        raise ValueError("job names are '<domain>.<verb>'")

    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


def registered() -> frozenset[str]:
    return frozenset(_HANDLERS)


def enqueue(
    session: Session,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = 8,
    dedupe_key: str | None = None,
) -> Job | None:
    """Add a job to the caller's transaction. With `dedupe_key`, a second enqueue of the same key is a no-op
    (returns None) — enforced by a unique constraint, not a look-up."""
    job = Job(
        name=name,
        payload=payload or {},
        state=JobState.QUEUED.value,
        run_at=run_at or clock.now(),
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
    )
    if dedupe_key is None:
        session.add(job)
        session.flush()
        return job
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return None
    return job


def retry(session: Session, actor: str, job_id: int) -> Job:
    """Give a job that used up its attempts another full set (the operator's **Retry**), audited."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state != JobState.FAILED.value:
        raise InvalidTransition(f"job {job_id} is {job.state}; only failed jobs can be retried")
    before = {"state": job.state, "attempts": job.attempts}
    job.state = JobState.QUEUED.value
    job.max_attempts = job.attempts + job.max_attempts
    job.run_at = clock.now()
    job.finished_at = None
    audit.record(
        session,
        actor=actor,
        action="job.retry",
        target_type="job",
        target_id=job.id,
        before=before,
        after={"state": job.state, "max_attempts": job.max_attempts},
    )
    session.flush()
    return job


def backoff(attempts: int) -> timedelta:
    """Delay before retry number `attempts` (1-based): 2 s, 4 s, 8 s … capped at one hour. Deterministic,
    so a simulation replays identically."""
    delay = BACKOFF_BASE * (2 ** max(0, attempts - 1))
    return min(delay, BACKOFF_CAP)


@dataclass(frozen=True)
class Claimed:
    id: int
    name: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def _due(now: datetime) -> Any:
    return or_(
        and_(Job.state == JobState.QUEUED.value, Job.run_at <= now),
        and_(Job.state == JobState.RUNNING.value, Job.locked_until < now),
    )


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        name: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        poll_interval: float = 0.5,
        only: frozenset[str] | None = None,
    ) -> None:
        self.db = db
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = lease
        self.poll_interval = poll_interval
        self.only = only

    # --- claiming ----------------------------------------------------------------------------------

    def claim(self) -> Claimed | None:
        now = clock.now()
        with self.db.unit_of_work() as session:
            query = select(Job.id).where(_due(now)).order_by(Job.run_at, Job.id).limit(1)
            if self.only is not None:
                query = query.where(Job.name.in_(self.only))
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = session.scalar(query)
            if job_id is None:
                return None
            # The WHERE repeats the due condition: if another worker took the job between our SELECT and
            # this UPDATE (possible without row locks), the UPDATE matches nothing and we claim nothing.
            row = session.execute(
                update(Job)
                .where(Job.id == job_id, _due(now))
                .values(
                    state=JobState.RUNNING.value,
                    locked_by=self.name,
                    locked_until=now + self.lease,
                    attempts=Job.attempts + 1,
                )
                .returning(Job.id, Job.name, Job.payload, Job.attempts, Job.max_attempts)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if row is None:
                return None
            return Claimed(row.id, row.name, dict(row.payload), row.attempts, row.max_attempts)

    # --- running -----------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim and run one due job. Returns whether a job was claimed."""
        claimed = self.claim()
        if claimed is None:
            return False
        self._run(claimed)
        return True

    def run_until_idle(self, limit: int = 10_000) -> int:
        ran = 0
        while ran < limit and self.run_once():
            ran += 1
        return ran

    def _run(self, job: Claimed) -> None:
        fn = _HANDLERS.get(job.name)
        try:
            if fn is None:
                raise LookupError(f"no handler registered for job {job.name!r}")
            with self.db.unit_of_work(deferred=True) as session:
                fn(session, job.payload)
                finished = session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.locked_by == self.name, Job.state == JobState.RUNNING.value)
                    .values(state=JobState.DONE.value, finished_at=clock.now(), locked_until=None, last_error=None)
                    .execution_options(synchronize_session=False)
                )
                if finished.rowcount != 1:  # type: ignore[attr-defined]
                    raise LeaseLost(f"job {job.id} was taken over by another worker; this run is rolled back")
        except LeaseLost:
            log.warning("job %s (%s): lease lost, result discarded", job.id, job.name)
        except Exception as exc:
            self._failed(job, exc)

    def _failed(self, job: Claimed, exc: BaseException) -> None:
        now = clock.now()
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:4000]
        final = job.attempts >= job.max_attempts
        log.warning("job %s (%s) attempt %s failed: %s", job.id, job.name, job.attempts, error)
        with self.db.unit_of_work() as session:
            session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.name)
                .values(
                    state=JobState.FAILED.value if final else JobState.QUEUED.value,
                    run_at=now if final else now + backoff(job.attempts),
                    locked_by=None,
                    locked_until=None,
                    last_error=error,
                    finished_at=now if final else None,
                )
                .execution_options(synchronize_session=False)
            )

    def run_forever(self, stop: threading.Event) -> None:
        log.info("worker %s started", self.name)
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("worker %s: claiming failed; retrying", self.name)
                busy = False
            if not busy:
                stop.wait(self.poll_interval)
        log.info("worker %s stopped", self.name)


class LeaseLost(Exception):
    pass


def start_background_worker(db: Database, **kwargs: Any) -> tuple[threading.Thread, threading.Event]:
    """The in-process worker `agora serve` runs unless `--no-worker`."""
    stop = threading.Event()
    worker = Worker(db, **kwargs)
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="agora-worker", daemon=True)
    thread.start()
    return thread, stop


STOP_GRACE = 20.0  # seconds a stopping server gives its in-process worker's current job


async def stop_background_worker(thread: threading.Thread, stop: threading.Event, grace: float = STOP_GRACE) -> None:
    """Stop claiming, and wait up to `grace` seconds for the job in hand. One that takes longer is abandoned
    with the process: its transaction never commits, and its lease lapses to the next worker."""
    import anyio.to_thread

    stop.set()
    await anyio.to_thread.run_sync(thread.join, grace)
    if thread.is_alive():
        log.warning("stopping with a job still running; its lease lapses and another worker retakes it")
