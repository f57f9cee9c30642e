"""`POST /`: the SDK-compatible front door. AWS JSON requests carry `X-Amz-Target`; Alibaba RPC requests
carry `x-acs-action` (V3 signatures) or an `Action` query parameter (legacy signatures).

A plain Starlette endpoint, not a FastAPI route: these requests are validated by their protocol adapters,
and the metering hot path should not pay for a second layer of request parsing.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from agora.compat.aws import protocol as aws
from agora.db import Database

# How many metering requests of one process run their database work at once. On SQLite a few: writes are
# serialized anyway, but a request that has prepared its rows waits for the write lock (releasing the GIL)
# while others prepare theirs, and the waiting inserts are then committed as one group (`GroupCommit`). With
# one thread there is never a group. PostgreSQL takes concurrent writers, so its processes run more.
DATABASE_THREADS = {"sqlite": 4, "postgresql": 8}
_limiters: dict[str, anyio.CapacityLimiter] = {}


async def in_thread(db: Database, function: Any, *args: Any) -> Any:
    """Run `function(*args)` on a worker thread, at most DATABASE_THREADS at once per dialect."""
    limiter = _limiters.get(db.dialect)
    if limiter is None:
        limiter = _limiters[db.dialect] = anyio.CapacityLimiter(DATABASE_THREADS.get(db.dialect, 4))
    return await anyio.to_thread.run_sync(partial(function, *args), limiter=limiter)


async def sdk_endpoint(request: Request) -> Response:
    body = await request.body()
    db: Database = request.app.state.db
    headers = request.headers
    query = request.url.query
    if "x-amz-target" in headers:
        reply = await in_thread(db, aws.handle, db, request.method, request.url.path, query, headers, body)
        return Response(reply.body, reply.status, headers=reply.headers)
    if "x-acs-action" in headers or "Action" in request.query_params:
        from agora.compat.alibaba import protocol as alibaba

        areply = await in_thread(db, alibaba.handle, db, request.method, request.url.path, query, headers, body)
        return Response(areply.body, areply.status, headers=areply.headers)
    detail = "POST / is for SDK requests: AWS (X-Amz-Target) or Alibaba Cloud (x-acs-action or Action)"
    return Response(json.dumps({"error": "unknown_protocol", "detail": detail}), 400, media_type="application/json")
