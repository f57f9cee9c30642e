"""Durable jobs: written with the change, claimed once, retried with backoff, survive a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.db import Database
from agora.models import AuditEvent, Job, JobState

RUNS: Counter[str] = Counter()
FAILURES: dict[str, int] = {}


@jobs.handler("test.count")
def _count(session: Session, payload: dict[str, Any]) -> None:
    RUNS[payload["tag"]] += 1
    audit.record(session, actor="test", action="test.effect", target_type="job", target_id=payload["tag"])


@jobs.handler("test.flaky")
def _flaky(session: Session, payload: dict[str, Any]) -> None:
    RUNS[payload["tag"]] += 1
    if FAILURES.get(payload["tag"], 0) > 0:
        FAILURES[payload["tag"]] -= 1
        raise RuntimeError(f"remote said no ({payload['tag']})")


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    FAILURES.clear()


def _job(db: Database, job_id: int) -> Job:
    with db.reader() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _enqueue(db: Database, name: str, tag: str, **kwargs: Any) -> int:
    with db.unit_of_work() as session:
        job = jobs.enqueue(session, name, {"tag": tag}, **kwargs)
        assert job is not None
        return job.id


def test_a_job_is_written_in_the_transaction_of_its_cause(db: Database) -> None:
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        jobs.enqueue(session, "test.count", {"tag": "lost"})
        raise RuntimeError("the change failed")
    with db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_worker_runs_a_due_job_once_and_marks_it_done(db: Database, manual_clock: clock.ManualClock) -> None:
    job_id = _enqueue(db, "test.count", "a")
    worker = jobs.Worker(db)
    assert worker.run_until_idle() == 1
    assert RUNS["a"] == 1
    job = _job(db, job_id)
    assert (job.state, job.attempts, job.finished_at) == (JobState.DONE, 1, manual_clock.now())
    assert worker.run_once() is False


def test_a_job_waits_for_its_run_at(db: Database, manual_clock: clock.ManualClock) -> None:
    _enqueue(db, "test.count", "later", run_at=manual_clock.now() + timedelta(hours=1))
    worker = jobs.Worker(db)
    assert worker.run_once() is False
    manual_clock.advance(timedelta(hours=1))
    assert worker.run_once() is True
    assert RUNS["later"] == 1


def test_failures_retry_with_exponential_backoff_and_keep_the_last_error(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    FAILURES["f"] = 3
    job_id = _enqueue(db, "test.flaky", "f")
    worker = jobs.Worker(db)
    delays = []
    for _ in range(3):
        before = manual_clock.now()
        assert worker.run_once() is True
        job = _job(db, job_id)
        assert job.state == JobState.QUEUED
        assert job.last_error == "RuntimeError: remote said no (f)"
        delays.append(job.run_at - before)
        assert worker.run_once() is False, "not due before its backoff ends"
        manual_clock.set(job.run_at)
    assert delays == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    assert worker.run_once() is True
    job = _job(db, job_id)
    assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 4, None)


def test_a_job_that_uses_up_its_attempts_fails_for_good(db: Database, manual_clock: clock.ManualClock) -> None:
    FAILURES["dead"] = 99
    job_id = _enqueue(db, "test.flaky", "dead", max_attempts=3)
    worker = jobs.Worker(db)
    for _ in range(3):
        manual_clock.advance(timedelta(hours=2))
        worker.run_once()
    job = _job(db, job_id)
    assert (job.state, job.attempts) == (JobState.FAILED, 3)
    assert "remote said no" in (job.last_error or "")
    manual_clock.advance(timedelta(days=1))
    assert worker.run_once() is False
    assert RUNS["dead"] == 3


def test_an_unknown_job_name_is_a_recorded_failure_not_a_crash(db: Database) -> None:
    job_id = _enqueue(db, "nobody.handles", "x", max_attempts=1)
    assert jobs.Worker(db).run_once() is True
    job = _job(db, job_id)
    assert job.state == JobState.FAILED
    assert "no handler registered" in (job.last_error or "")


def test_backoff_doubles_and_is_capped() -> None:
    assert [jobs.backoff(n).total_seconds() for n in (1, 2, 3, 10)] == [2, 4, 8, 1024]
    assert jobs.backoff(40) == timedelta(hours=1)


def test_dedupe_key_enqueues_once(db: Database) -> None:
    with db.unit_of_work() as session:
        first = jobs.enqueue(session, "test.count", {"tag": "d"}, dedupe_key="price-change:42")
        second = jobs.enqueue(session, "test.count", {"tag": "d"}, dedupe_key="price-change:42")
    assert first is not None and second is None
    with db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_a_lapsed_lease_is_taken_over_and_the_old_worker_cannot_commit(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    job_id = _enqueue(db, "test.count", "lease")
    slow = jobs.Worker(db, name="slow", lease=timedelta(seconds=30))
    claimed = slow.claim()
    assert claimed is not None
    assert jobs.Worker(db, name="other").claim() is None, "a held lease is respected"
    manual_clock.advance(timedelta(seconds=31))
    fast = jobs.Worker(db, name="fast")
    assert fast.run_once() is True
    slow._run(claimed)  # the first worker wakes up late: its result must be discarded
    assert RUNS["lease"] == 2
    with db.reader() as session:
        effects = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == "lease"))
    assert effects == 1, "only the lease holder's run committed"
    job = _job(db, job_id)
    assert (job.state, job.locked_by, job.attempts) == (JobState.DONE, "fast", 2)


def test_concurrent_workers_never_run_a_job_twice(db: Database) -> None:
    tags = [f"c{i}" for i in range(40)]
    with db.unit_of_work() as session:
        for tag in tags:
            jobs.enqueue(session, "test.count", {"tag": tag})
    workers = [jobs.Worker(db, name=f"w{i}") for i in range(4)]
    threads = [threading.Thread(target=w.run_until_idle) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(RUNS[tag] == 1 for tag in tags), RUNS
    with db.reader() as session:
        states = Counter(session.scalars(select(Job.state)))
        effects = session.scalar(select(func.count()).select_from(AuditEvent))
    assert states == Counter({JobState.DONE.value: 40})
    assert effects == 40


@pytest.mark.slow
def test_a_worker_killed_mid_job_leaves_it_to_the_next_worker_which_completes_it_once(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    with db.unit_of_work() as session:
        job = jobs.enqueue(session, "test.slow_append", {"tag": "crash", "started_file": str(started)})
        assert job is not None
        job_id = job.id
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "tests.jobs.worker_process", db_url, "2"]
    first = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the first worker never started the job"
            assert first.poll() is None, "the first worker died on its own"
            time.sleep(0.05)
        assert _job(db, job_id).locked_by is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while _job(db, job_id).state != JobState.DONE:
            assert time.monotonic() < deadline, "the next worker never completed the job"
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=30)
    job = _job(db, job_id)
    assert job.attempts == 2
    with db.reader() as session:
        effects = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == "crash"))
    assert effects == 1, "the killed run left nothing behind; the second run committed once"
