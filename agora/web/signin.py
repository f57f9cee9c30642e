"""Signing in and out."""

from __future__ import annotations

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agora import config
from agora.errors import Invalid
from agora.identities import passwords, resets
from agora.web import sessions
from agora.web.core import HOME_OF, get_viewer, page_router, redirect, render, safe_next, set_cookie

router = page_router()

REFUSED = "The e-mail address or password is not right. Check both and try again."


def _form(
    request: Request, *, email: str = "", next_: str = "", error: str | None = None, status: int = 200
) -> HTMLResponse:
    return render(request, "login.html", {"email": email, "next": next_, "error": error}, status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> Response:
    viewer = get_viewer(request)
    if viewer is not None:
        return RedirectResponse(safe_next(next, HOME_OF[viewer.role]), status_code=303)
    return _form(request, next_=safe_next(next, ""))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, email: str = Form("", max_length=320), password: str = Form(""), next: str = Form("")
) -> Response:
    db = request.app.state.db
    try:
        with db.unit_of_work() as session:
            principal = passwords.authenticate(session, email, password)
            token = sessions.start(session, principal) if principal is not None else None
    except passwords.SignInThrottled as exc:
        minutes = -(-exc.retry_after // 60)
        wait = f"{exc.retry_after} seconds" if exc.retry_after < 120 else f"{minutes} minutes"
        message = f"Too many failed attempts to sign in to this account. Wait {wait}, then try again."
        response = _form(request, email=email, next_=safe_next(next, ""), error=message, status=429)
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    if principal is None or token is None:
        return _form(request, email=email, next_=safe_next(next, ""), error=REFUSED, status=401)
    signed_in = redirect(request, safe_next(next, HOME_OF[principal.role]))
    set_cookie(request, signed_in, sessions.SESSION_COOKIE, token)
    set_cookie(request, signed_in, sessions.CSRF_COOKIE, sessions.new_csrf_seed())  # no token from before sign-in
    return signed_in


@router.post("/logout")
def logout(request: Request) -> Response:
    with request.app.state.db.unit_of_work() as session:
        sessions.end(session, request.cookies.get(sessions.SESSION_COOKIE))
    response = redirect(request, "/", flash=("success", "You have signed out."))
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    response.set_cookie(
        sessions.CSRF_COOKIE,
        sessions.new_csrf_seed(),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


SENT = (
    "If an account signs in with that address, we have sent it a link to set a new password. "
    "The link works for an hour."
)
EXPIRED = "This link has expired or has been used already. Ask for a new one below."


def _link_base(request: Request) -> str:
    return config.get_settings().public_url or str(request.base_url)


@router.get("/password-reset", response_class=HTMLResponse)
def reset_form(request: Request) -> HTMLResponse:
    return render(request, "password_reset.html", {"email": ""})


@router.post("/password-reset", response_class=HTMLResponse)
def reset_request(request: Request, email: str = Form("", max_length=320)) -> Response:
    """The same answer whether or not the address has an account."""
    with request.app.state.db.unit_of_work() as session:
        resets.request_link(session, email, _link_base(request))
    return redirect(request, "/login", flash=("success", SENT))


@router.get("/password-reset/{token}", response_class=HTMLResponse)
def new_password_form(request: Request, token: str) -> Response:
    with request.app.state.db.reader() as session:
        usable = resets.valid(session, token) is not None
    if not usable:
        return render(request, "password_reset.html", {"email": "", "error": EXPIRED}, 410)
    return render(request, "password_new.html", {"token": token})


@router.post("/password-reset/{token}", response_class=HTMLResponse)
def set_new_password(request: Request, token: str, password: str = Form(""), confirm: str = Form("")) -> Response:
    if password != confirm:
        error = "The two passwords are not the same. Type the new password twice."
        return render(request, "password_new.html", {"token": token, "error": error}, 422)
    try:
        with request.app.state.db.unit_of_work() as session:
            accounts = resets.complete(session, token, password)
    except Invalid as exc:
        message = exc.problems[0]["msg"] if exc.problems else exc.detail
        return render(request, "password_new.html", {"token": token, "error": f"The new password {message}."}, 422)
    if accounts is None:
        return render(request, "password_reset.html", {"email": "", "error": EXPIRED}, 410)
    response = redirect(request, "/login", flash=("success", "Your password is set. Sign in with it."))
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response
