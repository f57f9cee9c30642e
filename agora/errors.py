"""Expected failures and the one place they become HTTP responses: `{"error": code, "detail": message}`."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class AgoraError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class Unauthorized(AgoraError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AgoraError):
    status_code = 403
    code = "forbidden"


class NotFound(AgoraError):
    status_code = 404
    code = "not_found"


class Conflict(AgoraError):
    status_code = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class Invalid(AgoraError):
    """Input that is well-formed JSON but breaks a rule; `problems` carries every located message."""

    status_code = 422
    code = "invalid"

    def __init__(self, detail: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail, extra={"problems": problems} if problems else None)
        self.problems = problems or []

    @classmethod
    def at(cls, loc: str, message: str, short: str | None = None) -> Invalid:
        """One located problem: detail `loc: message`; `short` is the problem's terse form when it differs."""
        return cls(f"{loc}: {message}", [{"loc": loc, "msg": short or message}])

    @classmethod
    def of(cls, problems: list[tuple[str, str]], prefix: str = "") -> Invalid:
        """Several located problems, all listed in the detail."""
        detail = prefix + "; ".join(f"{loc}: {message}" for loc, message in problems)
        return cls(detail, [{"loc": loc, "msg": message} for loc, message in problems])


def _body(code: str, detail: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": code, "detail": detail, **(extra or {})}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgoraError)
    async def _agora(request: Request, exc: AgoraError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(_body(exc.code, exc.detail, exc.extra), exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems)
        return JSONResponse(_body("validation_error", detail, {"problems": problems}), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, exc.detail), exc.status_code, headers=getattr(exc, "headers", None))
