"""Metering ingestion throughput: BatchMeterUsage (25 records, SigV4-signed) and the native batch route
(1,000 records), each against `agora serve` on SQLite (and PostgreSQL), next to the same load on a bare
Starlette endpoint that only parses the JSON (the framework ceiling; PERF-NOTES §1).

    .venv/bin/python -m bench.ingestion [--seconds 10] [--workers 2] [--connections 64] [--database postgres]

`--database postgres` runs the same load against SQLite and then PostgreSQL (a database of its own, created on
the server --postgres-url or AGORA_BENCH_POSTGRES_URL names and dropped afterwards), one run, one report.

The load generator is wrk (installed with apt-get if missing) replaying pre-built requests: every record is
distinct, so every one is a real insert, and the signatures are made with botocore beforehand so signing
costs the server nothing it would not pay anyway. There are 1,440,000 distinct records per product (10,000
customers, 24 dimensions, 6 hours), more than a 10-second run gets through. The figure printed is records
answered per second (requests answered within the run, times their records); after each Agora run the
stored rows are counted too, and must be at least as many. Any non-2xx answer is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import func, insert, select, text

from agora import config, migrate
from agora.db import Database, normalise_url, open_database
from agora.manifest.loader import load_data
from agora.models import Buyer, Product, Subscription, UsageRecord

# The server a PostgreSQL run creates its own database on (and drops it afterwards).
DEFAULT_POSTGRES_URL = os.environ.get(
    "AGORA_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

ACCESS_KEY = ("AKIDBENCH0000001", "bench-secret")
TOKEN = "bench-seller-token"
DIMENSIONS = [f"d{i}" for i in range(24)]  # the most a product may have (PRC-07)
HOURS = 6  # distinct hours inside the 6-hour window (MTR-04)

LUA = r"""
local requests = {}
local n = 0
init = function(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local a, b, c, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {}
    if a ~= "" then
      headers["Content-Type"] = "application/x-amz-json-1.1"
      headers["X-Amz-Target"] = "AWSMPMeteringService.BatchMeterUsage"
      headers["X-Amz-Date"] = a
      headers["Authorization"] = b
    else
      headers["Content-Type"] = "application/json"
      headers["Authorization"] = c
    end
    n = n + 1
    requests[n] = wrk.format("POST", args[2], headers, body)
  end
  f:close()
end
local i = 0
request = function()
  i = (i % n) + 1
  return requests[i]
end
"""


def manifest(subscribed_at: datetime) -> dict[str, object]:
    usage = {
        "category": "units",
        "dimensions": [{"name": d, "description": d, "unit": "Units", "rate": "0.001"} for d in DIMENSIONS],
    }
    product = {
        "seller": "bench",
        "kind": "saas",
        "short_description": "Benchmark product",
        "category": "analytics",
        "regions": ["us-east-1"],
        "refund_policy": "none",
        "state": "public",
        "pricing": {"usage": usage},
    }
    return {
        "region": "us-east-1",
        "sellers": [
            {
                "id": "bench",
                "name": "Bench",
                "tax_form": "W-9",
                "access_keys": [{"id": ACCESS_KEY[0], "secret": ACCESS_KEY[1]}],
                "api_tokens": [TOKEN],
            }
        ],
        "products": [
            {**product, "code": "bench-batch", "title": "Bench Batch"},
            {**product, "code": "bench-native", "title": "Bench Native"},
        ],
    }


def populate(db: Database, customers: int, at: datetime) -> None:
    with db.unit_of_work() as session:
        load_data(manifest(at), session)
    with db.unit_of_work() as session:
        session.execute(
            insert(Buyer),
            [
                {"account": f"{100000000000 + i}", "email": f"b{i}@bench.example", "created_at": at}
                for i in range(customers)
            ],
        )
        buyers = list(session.scalars(select(Buyer.id).order_by(Buyer.id)))
        for product_id in session.scalars(select(Product.id)):
            session.execute(
                insert(Subscription),
                [
                    {
                        "buyer_id": buyer_id,
                        "product_id": product_id,
                        "customer_identifier": f"c{n}",
                        "started_at": at,
                        "created_at": at,
                        "purchases": {},
                    }
                    for n, buyer_id in enumerate(buyers)
                ],
            )


def records(customers: int, now: datetime) -> Iterator[tuple[int, str, int]]:
    """Distinct (customer, dimension, hour) keys, oldest hour first, as the window allows. The newest hour's
    records are a minute into it: its start two minutes ago, so none is in the future at run time. The others
    are 59 minutes into theirs, so that the oldest is still inside the 6-hour window (MTR-04) when a run
    starts in the first minutes of an hour."""
    base = (now - timedelta(minutes=2)).replace(minute=0, second=0, microsecond=0)
    for h in range(HOURS - 1, -1, -1):
        ts = int((base - timedelta(hours=h)).timestamp()) + (60 if h == 0 else 59 * 60)
        for d in DIMENSIONS:
            for c in range(customers):
                yield c, d, ts


def build_requests(
    path: Path, customers: int, now: datetime, batch_size: int, native: bool, limit: int, host: str
) -> int:
    signer = SigV4Auth(Credentials(*ACCESS_KEY), "aws-marketplace", "us-east-1")
    count = 0
    batch: list[tuple[int, str, int]] = []
    with path.open("w") as out:
        for record in records(customers, now):
            batch.append(record)
            if len(batch) < batch_size:
                continue
            if native:
                body = json.dumps(
                    {
                        "records": [
                            {
                                "product_code": "bench-native",
                                "customer_identifier": f"c{c}",
                                "dimension": d,
                                "quantity": 1 + c % 7,
                                "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
                            }
                            for c, d, ts in batch
                        ]
                    },
                    separators=(",", ":"),
                )
                out.write(f"\t\tBearer {TOKEN}\t{body}\n")
            else:
                body = json.dumps(
                    {
                        "ProductCode": "bench-batch",
                        "UsageRecords": [
                            {"Timestamp": ts, "CustomerIdentifier": f"c{c}", "Dimension": d, "Quantity": 1 + c % 7}
                            for c, d, ts in batch
                        ],
                    },
                    separators=(",", ":"),
                )
                request = AWSRequest(
                    "POST",
                    f"http://{host}/",
                    data=body.encode(),
                    headers={
                        "Content-Type": "application/x-amz-json-1.1",
                        "X-Amz-Target": "AWSMPMeteringService.BatchMeterUsage",
                    },
                )
                signer.add_auth(request)
                out.write(f"{request.headers['X-Amz-Date']}\t{request.headers['Authorization']}\t\t{body}\n")
            batch = []
            count += 1
            if count >= limit:
                break
    return count


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float


def _ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if found is None:
        return float("nan")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, script: Path, requests_file: Path, path: str, seconds: int, connections: int) -> WrkResult:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    command += ["-s", str(script), url]
    output = subprocess.run([*command, "--", str(requests_file), path], capture_output=True, text=True, check=True)
    text = output.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(m.group(1)) if (m := re.search(r"50%\s+(\S+)", text)) else float("nan")
    p99 = _ms(m.group(1)) if (m := re.search(r"99%\s+(\S+)", text)) else float("nan")
    done = re.search(r"(\d+) requests in ([\d.]+)(s|m)", text)
    assert done is not None
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failed = int(errors.group(1)) if errors else 0
    failed += sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    elapsed = float(done.group(2)) * (60 if done.group(3) == "m" else 1)
    return WrkResult(rps, p50, p99, int(done.group(1)), failed, elapsed)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    answered = 0
    while answered < 20:  # several answers in a row: every worker process is up
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                answered += response.status == 200
        except OSError:
            answered = 0
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start") from None
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def probe(url: str, requests_file: Path, path: str) -> None:
    """Send the last prepared request once and show the answer when it is not a success (diagnostics)."""
    import http.client

    amz_date, authorization, bearer, body = requests_file.read_text().splitlines()[-1].split("\t")
    headers = (
        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSMPMeteringService.BatchMeterUsage",
         "X-Amz-Date": amz_date, "Authorization": authorization}
        if amz_date else {"Content-Type": "application/json", "Authorization": bearer}
    )  # fmt: skip
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    if response.status >= 300:
        print(f"  {path} answered {response.status}: {response.read()[:500]!r}")


def stored(db: Database, product: str) -> int:
    with db.reader() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(UsageRecord)
                .join(Product, Product.id == UsageRecord.product_id)
                .where(Product.code == product)
            )
            or 0
        )


@contextmanager
def database_url(kind: str, work: Path, postgres_url: str) -> Iterator[str]:
    """A fresh database for one run: a SQLite file in `work`, or a PostgreSQL database of its own created on
    the server `postgres_url` names, dropped when the run ends."""
    if kind == "sqlite":
        yield f"sqlite:///{work / 'agora.db'}"
        return
    base, _, _ = normalise_url(postgres_url).rpartition("/")
    name = f"agora_bench_{os.getpid()}"
    admin = open_database(postgres_url)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("installing wrk (apt-get) …", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: SQLite, then PostgreSQL, in the same run (a database of its own on --postgres-url's server)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    ensure_wrk()

    work = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    os.environ["AGORA_VAR_DIR"] = str(work / "var")
    os.environ.setdefault("AGORA_SECRET_KEY", "bench-secret-key")
    config.reset_settings()
    now = datetime.now(UTC)
    script = work / "replay.lua"
    script.write_text(LUA)
    keys = args.customers * len(DIMENSIONS) * HOURS
    batch_file, native_file = work / "batch.tsv", work / "native.tsv"
    print(f"building requests ({keys:,} distinct records per product) …", flush=True)
    port = free_port()  # SigV4 signs the Host header, port included: every Agora run serves on this port
    host = f"127.0.0.1:{port}"
    n_batch = build_requests(batch_file, args.customers, now, 25, native=False, limit=keys // 25, host=host)
    n_native = build_requests(native_file, args.customers, now, 1000, native=True, limit=keys // 1000, host=host)
    agora = [sys.executable, "-m", "agora", "serve", "--no-worker", "--no-access-log", f"--workers={args.workers}"]
    bare = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--no-access-log", "--log-level=warning",
        f"--workers={args.workers}",
    ]  # fmt: skip

    load_before = os.getloadavg()
    results: dict[str, WrkResult] = {}
    rows: dict[str, int] = {}
    engines = ["sqlite", "postgres"] if args.database == "postgres" else ["sqlite"]
    for engine in engines:
        with database_url(engine, work, args.postgres_url) as url:
            db = open_database(url)
            migrate.upgrade(db)
            populate(db, args.customers, now - timedelta(days=1))
            env = {**os.environ, "AGORA_DATABASE_URL": url}
            with server([*agora, f"--port={port}"], env, port) as served:
                results[f"{engine}_batch"] = run_wrk(served, script, batch_file, "/", args.seconds, args.connections)
                results[f"{engine}_native"] = run_wrk(
                    served, script, native_file, "/api/v1/usage", args.seconds, args.connections
                )
                if results[f"{engine}_batch"].errors:
                    probe(served, batch_file, "/")
                if results[f"{engine}_native"].errors:
                    probe(served, native_file, "/api/v1/usage")
            rows[f"{engine}_batch"], rows[f"{engine}_native"] = stored(db, "bench-batch"), stored(db, "bench-native")
            db.dispose()
    bare_port = free_port()
    with server([*bare, f"--port={bare_port}"], {**os.environ}, bare_port) as served:
        results["bare_batch"] = run_wrk(served, script, batch_file, "/", args.seconds, args.connections)
        results["bare_native"] = run_wrk(served, script, native_file, "/api/v1/usage", args.seconds, args.connections)

    def line(name: str, result: WrkResult, per_request: int, stored_rows: int | None = None) -> float:
        """Records answered per second: requests wrk saw answered within its run, times their records. Rows
        stored may be more (requests still in flight when wrk stops are committed after it), never fewer."""
        rate = result.requests * per_request / result.seconds
        note = ""
        if stored_rows is not None:
            answered = result.requests * per_request
            note = f"  stored {stored_rows:,} rows"
            if answered > stored_rows:
                note += " (WARNING: fewer rows than records answered: requests replayed or records lost)"
        print(
            f"{name:<42} {rate:>10,.0f} records/s  {result.requests_per_second:>8,.0f} req/s"
            f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  errors {result.errors}{note}"
        )
        return rate

    print()
    print(
        f"{args.workers} server processes, wrk -c{args.connections}, {args.seconds} s per run,"
        f" {os.cpu_count()} CPUs (shared with wrk and the database server); load average (1, 5, 15 min)"
        f" {' '.join(f'{x:.2f}' for x in load_before)} before the runs,"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())} after"
    )
    bb = line("bare Starlette, same 25-record body", results["bare_batch"], 25)
    bn = line("bare Starlette, same 1,000-record body", results["bare_native"], 1000)
    summary = []
    for engine in engines:
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[engine]
        b = line(f"{name}: BatchMeterUsage (25, SigV4)", results[f"{engine}_batch"], 25, rows[f"{engine}_batch"])
        n = line(
            f"{name}: native POST /api/v1/usage (1,000)", results[f"{engine}_native"], 1000, rows[f"{engine}_native"]
        )
        summary.append(
            f"{name + ':':<12} BatchMeterUsage {b:>8,.0f} records/s = {b / bb:.2f} × the bare ceiling"
            f" (target ≥ 25,000); native {n:>8,.0f} records/s = {n / bn:.2f} × the bare ceiling (target ≥ 50,000)"
        )
    print()
    print("\n".join(summary))
    print(f"(requests prepared: {n_batch:,} batch, {n_native:,} native; work dir {work})")


if __name__ == "__main__":
    main()
