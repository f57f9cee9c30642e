"""CPU time the metrics middleware adds to a request: the same trivial route through the same router, with
and without `MetricsMiddleware`, driven straight through ASGI (no server, no database), three rounds.

    .venv/bin/python -m bench.metrics_middleware [--requests 100000]

A difference of two small figures on a shared machine: read the rounds together. The metering routes run
the same middleware; bench.ingestion_cpu measures them whole.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from agora.observability import MetricsMiddleware

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/api/v1/usage",
    "raw_path": b"/api/v1/usage",
    "root_path": "",
    "query_string": b"",
    "headers": [],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


async def ok(request: Request) -> Response:
    return Response(b"ok")


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    pass


async def drive(app: Any, requests: int) -> None:
    for _ in range(requests):
        await app({**SCOPE, "state": {"request_id": "bench"}}, receive, send)


def cpu_per_request(app: Any, requests: int) -> float:
    asyncio.run(drive(app, 2_000))  # warm-up: the metric children are made on first use
    started = time.process_time()
    asyncio.run(drive(app, requests))
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    router = Router([Route("/api/v1/usage", ok, methods=["POST"])])
    measured = MetricsMiddleware(router)
    for _ in range(3):
        bare, with_metrics = cpu_per_request(router, args.requests), cpu_per_request(measured, args.requests)
        print(f"bare {bare:6.2f} µs  with metrics {with_metrics:6.2f} µs  cost {with_metrics - bare:5.2f} µs/request")


if __name__ == "__main__":
    main()
