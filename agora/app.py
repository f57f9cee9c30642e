"""The ASGI application: native API, health, the web UI; one port."""

from __future__ import annotations

import gc
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora import __version__, jobs, observability
from agora.admin.endpoints import router as admin_router
from agora.billing.endpoints import router as billing_router
from agora.catalog.endpoints import router as catalog_router
from agora.compat.aws.catalog.protocol import routes as catalog_routes
from agora.compat.endpoint import sdk_endpoint
from agora.db import Database, open_database
from agora.errors import install_handlers
from agora.identities.endpoints import router as identities_router
from agora.limits import BodyLimitMiddleware
from agora.metering.endpoints import router as metering_router
from agora.metering.platform_endpoints import router as platform_metering_router
from agora.offers.endpoints import router as offers_router
from agora.openapi import install as install_openapi
from agora.pricing.endpoints import router as pricing_router
from agora.subscriptions.endpoints import router as subscriptions_router
from agora.validation import check_text
from agora.web import install as install_web
from agora.webhooks.endpoints import router as webhooks_router

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# Every router of the native API; the route-access test walks these.
API_ROUTERS = (
    identities_router,
    admin_router,
    catalog_router,
    pricing_router,
    subscriptions_router,
    webhooks_router,
    offers_router,
    metering_router,
    billing_router,
    platform_metering_router,
)


class RequestIdMiddleware:
    """Every response carries `X-Request-Id`: the caller's, if it looks like one, else a new one. Plain ASGI
    (not `BaseHTTPMiddleware`), so it costs the metering hot path almost nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def app_from_environment() -> FastAPI:
    """The app `agora serve` runs in each server process (uvicorn imports it by name to start workers)."""
    app = create_app(run_worker=os.environ.get("AGORA_RUN_WORKER", "1") == "1")
    tune_collector()
    return app


def tune_collector() -> None:
    """Garbage collection for a server process. What is loaded by now (modules, the app, its routes) lives as
    long as the process, so it is frozen out of every collection; and the youngest generation is collected
    after 50,000 new objects instead of 700. A metering batch makes tens of thousands of short-lived objects
    that reference counting frees; with the defaults, collections cost a third of a 1,000-record request
    (bench.ingestion_cpu: 27 ms against 18 ms of CPU). Cycles are still collected, a little later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def create_app(db: Database | None = None, *, run_worker: bool = False) -> FastAPI:
    """Build the app. Tests pass their own `db`; `agora serve` passes the configured one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if run_worker:
            from agora.tasks import register_all

            register_all()
            from agora.billing.service import start_day_sums

            with app.state.db.unit_of_work() as session:
                start_day_sums(session)  # each day's usage summed as it ends, for the month's close
            worker = jobs.start_background_worker(app.state.db)
        try:
            yield
        finally:
            if worker is not None:  # after in-flight requests finished: let the current job finish too
                await jobs.stop_background_worker(*worker)

    app = FastAPI(
        title="Agora",
        version=__version__,
        description="Self-hostable software marketplace. SDK-compatible endpoints live on `POST /`.",
        lifespan=lifespan,
        # Invalid text (a lone surrogate, NUL) is refused before any route validates or stores it.
        dependencies=[Depends(check_text)],
    )
    app.state.db = db or open_database()
    install_handlers(app)
    install_openapi(app)

    app.add_middleware(BodyLimitMiddleware)  # innermost: its refusals are counted and carry a request id
    observability.install(app)  # /metrics, /readyz; its middleware runs inside RequestIdMiddleware
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    def healthz() -> Any:
        try:
            with app.state.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        return {"status": "ok"}

    for router in API_ROUTERS:
        app.include_router(router)
    # The SDK front door is matched first: it carries the metering load, and a route found after a
    # hundred API routes costs every request the walk.
    app.router.routes.insert(0, Route("/", sdk_endpoint, methods=["POST"], include_in_schema=False))
    app.router.routes[1:1] = catalog_routes()  # the Catalog API's REST-JSON paths (DESIGN "Endpoints on one port")
    install_web(app)
    return app
