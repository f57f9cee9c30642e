"""The web UI: server-rendered pages for buyers, sellers and operators on the API's port."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agora.errors import AgoraError
from agora.web.core import (
    STATIC_DIR,
    CsrfRejected,
    LoginRequired,
    SecurityHeadersMiddleware,
    error_page,
    login_redirect,
    wants_html,
)


async def _respond(outcome: Response | Awaitable[Response]) -> Response:
    return await outcome if inspect.isawaitable(outcome) else outcome


def install(app: FastAPI) -> None:
    """Mount the pages, the static files, the security headers, and error pages for browsers (the API's
    callers keep their JSON errors)."""
    from agora.web.endpoints import router

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware)

    json_http = app.exception_handlers[StarletteHTTPException]
    json_agora = app.exception_handlers[AgoraError]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if wants_html(request):
            return await run_in_threadpool(error_page, request, exc.status_code)
        return await _respond(json_http(request, exc))

    async def agora_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AgoraError)
        if wants_html(request):
            return await run_in_threadpool(error_page, request, exc.status_code, exc.detail)
        return await _respond(json_agora(request, exc))

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return login_redirect(exc.target)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        detail = "This form has expired or did not come from this site. Go back, reload the page and try again."
        return await run_in_threadpool(error_page, request, 403, detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        if wants_html(request):
            return await run_in_threadpool(error_page, request, 500)
        return PlainTextResponse("Internal Server Error", status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(AgoraError, agora_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(Exception, server_error)
