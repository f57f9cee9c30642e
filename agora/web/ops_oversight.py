"""The operator console, oversight: the audit log with its filters (`/ops/audit`), the job queue with
**Retry** (`/ops/jobs`), the outbox (`/ops/outbox`), and the sellers' and buyers' accounts, whose API tokens
and SDK keys are revoked from here (`/ops/sellers`, `/ops/buyers`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from agora import jobs
from agora.admin import views
from agora.errors import AgoraError, NotFound
from agora.identities import service as identities
from agora.models import Role
from agora.web.core import page_router, redirect, render, require
from agora.web.ops import acting
from agora.web.sessions import Viewer

router = page_router()
operator = require(Role.OPERATOR)


def _day(value: str | None, field: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "Enter a date as YYYY-MM-DD."
        return None


@router.get("/ops/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    viewer: Viewer = Depends(operator),
) -> HTMLResponse:
    """`since` and `until` are days (UTC), both included."""
    errors: dict[str, str] = {}
    first = _day(since, "since", errors)
    last = _day(until, "until", errors)
    f = views.AuditFilter(
        actor=(actor or "").strip() or None,
        action=(action or "").strip() or None,
        target_type=(target_type or "").strip() or None,
        target_id=(target_id or "").strip() or None,
        since=datetime.combine(first, time(), UTC) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
    )
    with request.app.state.db.reader() as session:
        events = views.as_rows(views.audit_events(session, f)) if not errors else []
        choices = views.audit_choices(session)
    context = {
        "events": events,
        "f": f,
        "since": since or "",
        "until": until or "",
        "errors": errors,
        "choices": choices,
        "limit": views.PAGE,
    }
    return render(request, "ops/audit.html", context, 422 if errors else 200)


@router.get("/ops/jobs", response_class=HTMLResponse)
def job_list(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        depth = views.queue_depth(session)
        failed = views.failed_jobs(session)
        recent = views.recent_jobs(session)
    return render(request, "ops/jobs.html", {"depth": depth, "failed": failed, "recent": recent})


@router.post("/ops/jobs/{job_id}/retry", response_model=None)
def retry(request: Request, job_id: int, viewer: Viewer = Depends(operator)) -> Response:
    try:
        with acting(request) as session:
            job = jobs.retry(session, viewer.principal.actor, job_id)
            name = job.name
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, "/ops/jobs", flash=("error", exc.detail))
    return redirect(request, "/ops/jobs", flash=("success", f"Job {job_id} ({name}) is queued again."))


@router.get("/ops/outbox", response_class=HTMLResponse)
def outbox(
    request: Request, to: str | None = None, kind: str | None = None, viewer: Viewer = Depends(operator)
) -> HTMLResponse:
    to, kind = (to or "").strip() or None, (kind or "").strip() or None
    with request.app.state.db.reader() as session:
        messages = views.outbox(session, to, kind)
        counts = views.outbox_counts(session)
    return render(request, "ops/outbox.html", {"messages": messages, "counts": counts, "to": to, "kind": kind})


@router.get("/ops/sellers", response_class=HTMLResponse)
def sellers(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        accounts = views.sellers(session)
    return render(request, "ops/accounts.html", {"accounts": accounts, "which": "sellers"})


@router.get("/ops/buyers", response_class=HTMLResponse)
def buyers(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        accounts = views.buyers(session)
    return render(request, "ops/accounts.html", {"accounts": accounts, "which": "buyers"})


@router.post("/ops/{which}/credentials/{kind}/{credential_id}/revoke", response_model=None)
def revoke(request: Request, which: str, kind: str, credential_id: str, viewer: Viewer = Depends(operator)) -> Response:
    if which not in ("sellers", "buyers") or kind not in ("token", "key"):
        raise NotFound("no such credential")
    what = "API token" if kind == "token" else "access key"
    try:
        with acting(request) as session:
            identities.revoke_for_account(session, viewer.principal, kind, credential_id)
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, f"/ops/{which}", flash=("error", exc.detail))
    return redirect(request, f"/ops/{which}", flash=("success", f"The {what} is revoked: it no longer signs in."))
