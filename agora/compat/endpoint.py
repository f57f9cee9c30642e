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

# At most this many SDK requests of one process touch the database at once. More threads than this only
# take turns at the GIL while one of them holds the write lock, and throughput collapses (measured with
# bench.ingestion: 64 concurrent clients on 40 threads gave a tenth of what 4 threads give).
DATABASE_THREADS = 4
_limiter: anyio.CapacityLimiter | None = None


async def in_thread(function: Any, *args: Any) -> Any:
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(DATABASE_THREADS)
    return await anyio.to_thread.run_sync(partial(function, *args), limiter=_limiter)


async def sdk_endpoint(request: Request) -> Response:
    body = await request.body()
    db: Database = request.app.state.db
    headers = request.headers
    query = request.url.query
    if "x-amz-target" in headers:
        reply = await in_thread(aws.handle, db, request.method, request.url.path, query, headers, body)
        return Response(reply.body, reply.status, headers=reply.headers)
    if "x-acs-action" in headers or "Action" in request.query_params:
        from agora.compat.alibaba import protocol as alibaba

        areply = await in_thread(alibaba.handle, db, request.method, request.url.path, query, headers, body)
        return Response(areply.body, areply.status, headers=areply.headers)
    detail = "POST / is for SDK requests: AWS (X-Amz-Target) or Alibaba Cloud (x-acs-action or Action)"
    return Response(json.dumps({"error": "unknown_protocol", "detail": detail}), 400, media_type="application/json")
