"""CPU time per metering request, in process: the same pre-signed BatchMeterUsage requests (25 records) and
native batches (1,000 records) as bench.ingestion, driven straight through the ASGI app against a fresh SQLite
file, with no HTTP server and no load generator competing for the cores.

    .venv/bin/python -m bench.ingestion_cpu [--requests 400] [--concurrency 1] [--profile batch|native]

CPU time (process time, every thread) is steadier than wall-clock time on a shared machine; it is what the
server pays per request, HTTP parsing aside. `--concurrency` runs that many requests at once on one event
loop, as one server process sees them under load. `--profile` prints cProfile's top functions for one kind.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from agora import config, migrate
from agora.app import create_app, tune_collector
from agora.compat import endpoint as compat_endpoint
from agora.compat.endpoint import in_thread
from agora.db import open_database
from agora.metering import endpoints as metering_endpoints
from bench.ingestion import DEFAULT_POSTGRES_URL, build_requests, database_url, populate, stored

HOST = "testserver"


def load_requests(path: Path) -> list[tuple[str, list[tuple[bytes, bytes]], bytes]]:
    """(path, headers, body) of every prepared request."""
    requests = []
    for line in path.read_text().splitlines():
        amz_date, authorization, bearer, body = line.split("\t", 3)
        if amz_date:
            headers = {
                "host": HOST,
                "content-type": "application/x-amz-json-1.1",
                "x-amz-target": "AWSMPMeteringService.BatchMeterUsage",
                "x-amz-date": amz_date,
                "authorization": authorization,
            }
            target = "/"
        else:
            headers = {"host": HOST, "content-type": "application/json", "authorization": bearer}
            target = "/api/v1/usage"
        headers["content-length"] = str(len(body.encode()))
        requests.append((target, [(k.encode(), v.encode()) for k, v in headers.items()], body.encode()))
    return requests


def asgi_call(app: Any, target: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Callable[[], Awaitable[int]]:
    async def call() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"{target} answered {status}: {b''.join(chunks)[:300]!r}")
        return status

    return call


async def drive(app: Any, requests: list[Any], concurrency: int) -> None:
    queue = iter(requests)

    async def worker() -> None:
        for target, headers, body in queue:
            await asgi_call(app, target, headers, body)()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """anyio.to_thread.run_sync for profiling: cProfile sees only the thread it runs on."""
    return function(*args)


async def _inline_db(db: Any, function: Callable[..., Any], *args: Any) -> Any:
    """`in_thread` for profiling, likewise."""
    return function(*args)


def server_cpu(db: Any) -> dict[int, float]:
    """PostgreSQL: CPU seconds used so far by each server process serving this database (from /proc; the
    server runs on this machine). Its share of a request's cost competes for the same cores."""
    if db.dialect != "postgresql":
        return {}
    with db.engine.connect() as connection:
        pids = connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR backend_type <> 'client backend'"
        ).scalars()
        used = {}
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def measure(app: Any, requests: list[Any], concurrency: int, profile: bool) -> tuple[float, float]:
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time: steadier when shared
    original = anyio.to_thread.run_sync
    if profile:
        anyio.to_thread.run_sync = _inline
        compat_endpoint.in_thread = metering_endpoints.in_thread = _inline_db  # type: ignore[assignment]
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    asyncio.run(drive(app, requests, concurrency))
    if profiler:
        profiler.disable()
        anyio.to_thread.run_sync = original
        compat_endpoint.in_thread = metering_endpoints.in_thread = in_thread  # type: ignore[assignment]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="BatchMeterUsage requests (native: a tenth)")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profile", choices=["batch", "native"])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agora-cpu-"))
    os.environ["AGORA_VAR_DIR"] = str(work / "var")
    os.environ.setdefault("AGORA_SECRET_KEY", "bench-secret-key")
    config.reset_settings()
    with database_url(args.database, work, args.postgres_url) as url:
        run(args, work, url)


def run(args: argparse.Namespace, work: Path, url: str) -> None:
    db = open_database(url)
    migrate.upgrade(db)
    now = datetime.now(UTC)
    populate(db, args.customers, now - timedelta(days=1))
    n_native = max(args.requests // 10, 4)
    build_requests(work / "batch.tsv", args.customers, now, 25, native=False, limit=args.requests + 40, host=HOST)
    build_requests(work / "native.tsv", args.customers, now, 1000, native=True, limit=n_native + 4, host=HOST)
    batch, native = load_requests(work / "batch.tsv"), load_requests(work / "native.tsv")
    app = create_app(db)
    tune_collector()  # as `agora serve` does in each server process

    # Warm-up (imports, caches, first statements), then the timed runs on records not sent before.
    asyncio.run(drive(app, batch[:40], 1))
    asyncio.run(drive(app, native[:4], 1))
    before = server_cpu(db)
    cpu_b, wall_b = measure(app, batch[40:], args.concurrency, args.profile == "batch")
    middle = server_cpu(db)
    cpu_n, wall_n = measure(app, native[4:], args.concurrency, args.profile == "native")
    after = server_cpu(db)
    server_b = sum(used - before.get(pid, 0.0) for pid, used in middle.items())
    server_n = sum(used - middle.get(pid, 0.0) for pid, used in after.items())
    rows_b, rows_n = stored(db, "bench-batch"), stored(db, "bench-native")
    expected_b, expected_n = 25 * len(batch), 1000 * len(native)
    print(f"{db.dialect}, {args.customers:,} customers, concurrency {args.concurrency}")
    print(
        f"BatchMeterUsage (25):  {1000 * cpu_b / args.requests:6.2f} ms CPU/request"
        f"  {1000 * wall_b / args.requests:6.2f} ms wall/request  ({25 * args.requests / cpu_b:,.0f} records/CPU-s)"
    )
    print(
        f"native (1,000):        {1000 * cpu_n / n_native:6.2f} ms CPU/request"
        f"  {1000 * wall_n / n_native:6.2f} ms wall/request  ({1000 * n_native / cpu_n:,.0f} records/CPU-s)"
    )
    if db.dialect == "postgresql":
        print(
            f"PostgreSQL server processes: {1000 * server_b / args.requests:6.2f} ms CPU/BatchMeterUsage request,"
            f" {1000 * server_n / n_native:6.2f} ms CPU/native request; with them"
            f" {25 * args.requests / (cpu_b + server_b):,.0f} and {1000 * n_native / (cpu_n + server_n):,.0f}"
            " records/CPU-s"
        )
    if (rows_b, rows_n) != (expected_b, expected_n):
        print(f"WARNING: stored {rows_b:,}/{expected_b:,} batch and {rows_n:,}/{expected_n:,} native records")
    db.dispose()


if __name__ == "__main__":
    main()
