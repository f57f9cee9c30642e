"""What every page shares: templates, the signed-in viewer, role guards, CSRF, flash messages, error pages
and the security headers. Pages import from here; they never open the database themselves except through
a service.

A page module makes its router with `page_router()`, which checks the CSRF token of every POST, and
renders with `render()`, which supplies the layout's variables (viewer, navigation, CSRF token, flash).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.identities import resets
from agora.models import Role
from agora.web import sessions
from agora.web.sessions import Viewer

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# `'self'` only: no inline script or style anywhere, no CDN. `form-action` is left open on purpose: the SaaS
# subscribe flow hands the buyer on to the seller's fulfillment URL.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# FastAPI's own API documentation pages load Swagger UI with inline script: they get every header but the CSP.
DOCS_PATHS = ("/docs", "/redoc")

HOME_OF = {Role.BUYER: "/account", Role.SELLER: "/seller", Role.OPERATOR: "/ops"}
ROLE_NAMES = {Role.BUYER: "buyer", Role.SELLER: "seller", Role.OPERATOR: "operator"}

# The navigation of each role: (label, URL). Later pages add their entries here.
NAV: dict[Role | None, list[tuple[str, str]]] = {
    None: [("Browse", "/search")],
    Role.BUYER: [("Browse", "/search"), ("My account", "/account")],
    Role.SELLER: [("Seller portal", "/seller"), ("Storefront", "/search")],
    Role.OPERATOR: [("Operations", "/ops"), ("Storefront", "/search")],
}


# The pages of a console, shown as a second row of tabs on every page under its home URL.
SECTIONS: dict[Role, list[tuple[str, str]]] = {
    Role.SELLER: [
        ("Dashboard", "/seller"),
        ("Products", "/seller/products"),
        ("Offers", "/seller/offers"),
        ("Usage", "/seller/usage"),
        ("Revenue", "/seller/revenue"),
        ("Disbursements", "/seller/disbursements"),
        ("Refunds", "/seller/refunds"),
        ("Keys", "/seller/keys"),
        ("Webhooks", "/seller/webhooks"),
    ],
    Role.OPERATOR: [
        ("Overview", "/ops"),
        ("Reviews", "/ops/reviews"),
        ("Change requests", "/ops/change-requests"),
        ("Billing", "/ops/billing"),
        ("Invoices", "/ops/invoices"),
        ("Refunds", "/ops/refunds"),
        ("Audit", "/ops/audit"),
        ("Jobs", "/ops/jobs"),
        ("Outbox", "/ops/outbox"),
    ],
}


def money(value: Any, places: int | None = None) -> str:
    """`$1,234.50` for prices; rates keep their extra places (`$0.125`), never fewer than two."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if places is None:
        exponent = amount.normalize().as_tuple().exponent
        places = max(2, -exponent) if isinstance(exponent, int) else 2
    sign = "−" if amount < 0 else ""  # a credit reads "−$2.00", not "$-2.00"
    return f"{sign}${abs(amount):,.{places}f}"


def long_date(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime | date):
        return f"{value.day} {value:%B %Y}"
    return ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["money"] = money
    env.filters["long_date"] = long_date
    env.filters["redact"] = resets.redact
    return env


templates = Jinja2Templates(env=_environment())


class LoginRequired(Exception):
    """Not an error: the anonymous visitor is sent to sign in and back."""

    def __init__(self, target: str) -> None:
        self.target = target


class CsrfRejected(Exception):
    pass


def get_viewer(request: Request) -> Viewer | None:
    """The signed-in viewer of this request (looked up once per request)."""
    if "viewer" not in request.state._state:
        request.state.viewer = sessions.lookup(request.app.state.db, request.cookies.get(sessions.SESSION_COOKIE))
    viewer: Viewer | None = request.state.viewer
    return viewer


def require(role: Role) -> Callable[[Request], Viewer]:
    """A dependency: the viewer, who must have `role`. Anonymous visitors are sent to sign in; people of
    another role get 403."""

    def dependency(request: Request) -> Viewer:
        viewer = get_viewer(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        if viewer.role is not role:
            from agora.errors import Forbidden

            raise Forbidden(f"this page is for {ROLE_NAMES[role]} accounts")
        return viewer

    return dependency


async def csrf_protect(request: Request) -> None:
    """Every state-changing request of the web UI carries the token of its browser's CSRF cookie, as the
    form field `csrf_token` or (htmx) the `X-CSRF-Token` header."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    token = request.headers.get(sessions.CSRF_HEADER)
    if token is None:
        form = await request.form()
        field = form.get(sessions.CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not sessions.csrf_valid(request.cookies.get(sessions.CSRF_COOKIE), token):
        raise CsrfRejected()


def page_router() -> APIRouter:
    return APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: `//evil.example` and `https://…` are not followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: HTMLResponse | RedirectResponse, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="lax", secure=_secure(request), path="/")


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    viewer = get_viewer(request)
    seed = request.cookies.get(sessions.CSRF_COOKIE)
    new_seed = None
    if not seed:
        seed = new_seed = sessions.new_csrf_seed()
    flash = sessions.read_flash(request.cookies.get(sessions.FLASH_COOKIE))
    role = viewer.role if viewer else None
    values = {
        "viewer": viewer,
        "role": role.value if role else None,
        "nav": NAV[role],
        "sections": SECTIONS.get(role, []) if role and request.url.path.startswith(HOME_OF[role]) else [],
        "home": HOME_OF.get(role, "/") if role else "/",
        "csrf_token": sessions.csrf_token(seed),
        "flash": flash,
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, values, status_code=status)
    response.headers["cache-control"] = "no-store"
    if new_seed:
        set_cookie(request, response, sessions.CSRF_COOKIE, new_seed)
    if sessions.FLASH_COOKIE in request.cookies:
        response.delete_cookie(sessions.FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, url: str, flash: tuple[str, str] | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_cookie(request, response, sessions.FLASH_COOKIE, sessions.sign_flash(*flash))
    return response


ERROR_TEXT = {
    403: ("You can't open this page", "This page is not available to your account."),
    404: ("We couldn't find that page", "The address may be mistyped, or the page may have moved or been withdrawn."),
    405: ("That didn't work", "This page can't be used that way."),
    429: ("Too many requests", "Please wait a moment and try again."),
    500: ("Something went wrong on our side", "The problem has been logged. Please try again in a moment."),
}


def error_page(request: Request, status: int, detail: str | None = None) -> HTMLResponse:
    title, text = ERROR_TEXT.get(status, ("That didn't work", "The request could not be completed."))
    try:
        response = render(
            request, "error.html", {"status": status, "title": title, "text": text, "detail": detail}, status
        )
    except Exception:  # the database itself may be what failed: the page must still render
        request.state.viewer = None
        response = render(request, "error.html", {"status": status, "title": title, "text": text}, status)
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


def login_redirect(target: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not the API, not an SDK): errors are shown as pages."""
    path = request.url.path
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


class SecurityHeadersMiddleware:
    """The security headers on every HTML response (and static file). Plain ASGI: it only looks at the
    response's start, so the API's hot paths pay next to nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path.startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k == b"content-type"), b"")
                if content_type.startswith(b"text/html") or path.startswith("/static/"):
                    present = {k for k, _ in headers}
                    headers += [
                        (k, v)
                        for k, v in SECURITY_HEADERS
                        if k not in present and not (docs and k == b"content-security-policy")
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
