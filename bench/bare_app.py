"""The framework ceiling for bench.ingestion: a Starlette endpoint that parses the JSON body and answers.

It does no verification, no validation and no storage: what Agora adds on top is measured against it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def parse_only(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"received": len(body.get("UsageRecords") or body.get("records") or [])})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/", parse_only, methods=["POST"]),
        Route("/api/v1/usage", parse_only, methods=["POST"]),
    ]
)
