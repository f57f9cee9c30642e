"""The ASGI application: native API, health, the web UI; one port."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from agora import __version__, jobs
from agora.admin.endpoints import router as admin_router
from agora.catalog.endpoints import router as catalog_router
from agora.db import Database, open_database
from agora.errors import install_handlers
from agora.identities.endpoints import router as identities_router
from agora.offers.endpoints import router as offers_router
from agora.pricing.endpoints import router as pricing_router
from agora.subscriptions.endpoints import router as subscriptions_router
from agora.web.endpoints import router as web_router
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
)


def create_app(db: Database | None = None, *, run_worker: bool = False) -> FastAPI:
    """Build the app. Tests pass their own `db`; `agora serve` passes the configured one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = None
        if run_worker:
            from agora.tasks import register_all

            register_all()
            _, stop = jobs.start_background_worker(app.state.db)
        try:
            yield
        finally:
            if stop is not None:
                stop.set()

    app = FastAPI(
        title="Agora",
        version=__version__,
        description="Self-hostable software marketplace. SDK-compatible endpoints live on `POST /`.",
        lifespan=lifespan,
    )
    app.state.db = db or open_database()
    install_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

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
    app.include_router(web_router)
    return app
