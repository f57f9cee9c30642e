"""Graceful shutdown of real processes: SIGTERM to `agora serve` while a request and a job are in flight lets
both finish before it exits; SIGTERM to `agora worker` lets its job finish, a second one abandons it to its
lease. The server runs with JSON logs, whose access line carries the request id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agora import jobs, migrate
from agora.db import Database
from agora.models import AuditEvent, Job, JobState
from tests.live import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def start(db_url: str, tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / f"{args[0]}.out", tmp_path / f"{args[0]}.err"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_process", *args],
        cwd=Path.cwd(),
        env={**os.environ, "PYTHONPATH": str(ROOT), "AGORA_DATABASE_URL": db_url, **env},
        stdout=out.open("wb"),
        stderr=err.open("wb"),
    )
    return process, out, err


def wait_for(condition: Any, process: subprocess.Popen[bytes], what: str, err: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited before {what}: {err.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {err.read_text()}"
        time.sleep(0.05)


def slow_job(db: Database, tmp_path: Path, tag: str, seconds: float) -> tuple[int, Path]:
    started = tmp_path / f"{tag}.started"
    with db.unit_of_work() as session:
        job = jobs.enqueue(session, "test.slow", {"seconds": seconds, "started": str(started), "tag": tag})
        assert job is not None
        return job.id, started


def effects(db: Database, tag: str) -> int:
    with db.reader() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == tag))
        return int(count or 0)


def job(db: Database, job_id: int) -> Job:
    with db.reader() as session:
        return session.get_one(Job, job_id)


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_sigterm_to_serve_finishes_the_request_in_flight_and_the_in_process_workers_job_then_exits(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(db)
    job_id, job_started = slow_job(db, tmp_path, "served", 3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, _, err = start(db_url, tmp_path, "serve", "--port", str(port), AGORA_LOG_FORMAT="json")
    try:
        wait_for(lambda: healthy(base), process, "the server answers", err)
        wait_for(job_started.exists, process, "the in-process worker starts the job", err)
        request_started = tmp_path / "request.started"
        answer: dict[str, Any] = {}

        def slow_request() -> None:
            response = httpx.get(
                f"{base}/test/slow",
                params={"seconds": 2, "started": str(request_started)},
                headers={"X-Request-Id": "slow-request-1"},
                timeout=60,
            )
            answer.update(status=response.status_code, body=response.json())

        caller = threading.Thread(target=slow_request)
        caller.start()
        wait_for(request_started.exists, process, "the slow request arrives", err)
        process.send_signal(signal.SIGTERM)
        caller.join(timeout=60)
        assert answer == {"status": 200, "body": {"slept": 2}}, err.read_text()
        # uvicorn, once shut down, re-raises the signal it caught: the exit a supervisor expects of SIGTERM
        # (systemd counts it as a clean stop).
        assert process.wait(timeout=60) == -signal.SIGTERM, err.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Application shutdown complete." in err.read_text()
    assert job(db, job_id).state == JobState.DONE, err.read_text()
    assert effects(db, "served") == 1

    lines = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "agora.access" and line.get("route") == "/test/slow"]
    assert len(access) == 1, lines
    assert access[0]["request_id"] == "slow-request-1"
    assert (access[0]["status"], access[0]["method"]) == (200, "GET")
    assert access[0]["duration_ms"] >= 2000
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # one access line, not two


def test_sigterm_to_a_worker_lets_its_job_finish_and_it_exits_cleanly(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(db)
    job_id, started = slow_job(db, tmp_path, "finished", 2)
    process, _, err = start(db_url, tmp_path, "worker", "--poll", "0.1", AGORA_LOG_FORMAT="json")
    try:
        wait_for(started.exists, process, "the worker starts the job", err)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, err.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert job(db, job_id).state == JobState.DONE
    assert effects(db, "finished") == 1
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]  # JSON logs here too
    messages = [(line["logger"], line["message"]) for line in lines]
    assert ("agora.jobs", "stopping: no new job is claimed; the current one finishes") in messages
    assert messages[-1][0] == "agora.jobs" and messages[-1][1].endswith("stopped")


def test_a_second_sigterm_abandons_the_job_to_its_lease(db: Database, db_url: str, tmp_path: Path) -> None:
    migrate.upgrade(db)
    job_id, started = slow_job(db, tmp_path, "abandoned", 600)
    process, _, err = start(db_url, tmp_path, "worker", "--poll", "0.1", "--lease-seconds", "120")
    try:
        wait_for(started.exists, process, "the worker starts the job", err)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM, err.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = job(db, job_id)
    assert left.state == JobState.RUNNING and left.locked_by is not None  # the lease lapses to the next worker
    assert effects(db, "abandoned") == 0  # nothing of the interrupted run was committed
