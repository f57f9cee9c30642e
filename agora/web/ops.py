"""The operator console, part one: what waits (`/ops`), the review queue with each listing's content, files
and pricing in words (**Approve**, **Reject** with a **Reason**, LST-05), and change requests with
pricing-model requests (PRC-16). Every act goes through the catalog and pricing services the API's operator
endpoints use, so it is audited and notified the same way. Money is in `ops_money`, oversight in
`ops_oversight`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session

from agora.admin import views as admin_views
from agora.catalog import service as catalog
from agora.catalog import views as catalog_views
from agora.catalog.storage import LocalAssetStorage
from agora.errors import AgoraError, NotFound
from agora.models import Role
from agora.pricing import service as pricing
from agora.web import present
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
operator = require(Role.OPERATOR)
STATE_WORDS = {
    "draft": "Draft",
    "submitted": "In review",
    "publishing": "Publishing",
    "limited": "Limited (only the seller sees it)",
    "public": "Public",
    "restricted": "Restricted",
}


@contextmanager
def acting(request: Request) -> Iterator[Session]:
    """The unit of work of an operator's act, tagged with the request's id as the API's is, so its audit
    entry names the request it came from."""
    with request.app.state.db.unit_of_work() as session:
        session.info["request_id"] = getattr(request.state, "request_id", None)
        yield session


def hours(value: float | None) -> str:
    """An age in words: "3 hours", "2 days"."""
    if value is None:
        return "—"
    if value < 1:
        return "under an hour"
    if value < 48:
        n = int(value)
        return f"{n} hour" + ("s" if n != 1 else "")
    return f"{int(value // 24)} days"


def _flash_error(exc: AgoraError) -> tuple[str, str]:
    return ("error", exc.detail)


@router.get("/ops", response_class=HTMLResponse)
def ops(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        waits = admin_views.waiting(session)
    return render(request, "ops/overview.html", {"w": waits, "hours": hours})


# --- reviews ---------------------------------------------------------------------------------------------------


@router.get("/ops/reviews", response_class=HTMLResponse)
def reviews(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        queue = catalog_views.queue_out(session)["submitted"]
    return render(request, "ops/reviews.html", {"queue": queue, "hours": hours})


@router.get("/ops/reviews/{code}", response_class=HTMLResponse)
def review(request: Request, code: str, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    return _review_page(request, viewer, code)


def _review_page(
    request: Request, viewer: Viewer, code: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        product = catalog.get_managed(session, viewer.principal, code)
        record = catalog_views.review_out(session, product)
        infra = catalog_views.infrastructure_estimates(session, product)
    context = {
        "p": record,
        "explained": present.explain(record.get("pricing"), infra, record["kind"]),
        "kind_label": present.kind_label,
        "category_label": present.category_label,
        "states": STATE_WORDS,
        "hours": hours,
        "error": error,
    }
    return render(request, "ops/review.html", context, status)


@router.get("/ops/reviews/{code}/progress", response_class=HTMLResponse)
def review_progress(request: Request, code: str, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    """The publishing progress alone, which the review page polls (htmx) while the listing publishes."""
    with request.app.state.db.reader() as session:
        product = catalog.get_managed(session, viewer.principal, code)
        record = catalog_views.review_out(session, product)
    return render(request, "ops/_progress.html", {"p": record, "states": STATE_WORDS})


@router.get("/ops/reviews/{code}/files/{digest}")
def review_file(request: Request, code: str, digest: str, viewer: Viewer = Depends(operator)) -> Response:
    """A listing's file for its reviewer, opened in the browser: images as images, the user guide PDF in the
    browser's PDF viewer (inline, `application/pdf`). Only files this product owns are served."""
    with request.app.state.db.reader() as session:
        product = catalog.get_managed(session, viewer.principal, code)
        asset = catalog_views.asset_of(session, product, digest)
        found = (asset.content_type, asset.filename) if asset else None
    path = LocalAssetStorage().file(digest) if found else None
    if found is None or path is None:
        raise NotFound(f"no file {digest} on product {code!r}")
    content_type, filename = found
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[:100] or "file"
    headers = {
        "Content-Disposition": f'inline; filename="{safe_name}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return FileResponse(path, media_type=content_type, headers=headers)


@router.post("/ops/reviews/{code}/approve", response_model=None)
def approve(request: Request, code: str, viewer: Viewer = Depends(operator)) -> Response:
    try:
        with acting(request) as session:
            product = catalog.approve(session, viewer.principal, code, None)
            title = product.title
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, f"/ops/reviews/{code}", flash=_flash_error(exc))
    message = f"{title} is approved and publishing. The page shows its progress until it is limited."
    return redirect(request, f"/ops/reviews/{code}", flash=("success", message))


@router.post("/ops/reviews/{code}/reject", response_model=None)
def reject(request: Request, code: str, reason: str = Form(""), viewer: Viewer = Depends(operator)) -> Response:
    try:
        with acting(request) as session:
            product = catalog.reject(session, viewer.principal, code, reason.strip())
            title = product.title
    except NotFound:
        raise
    except AgoraError as exc:
        message = "Write a reason: the seller reads it to know what to fix." if "reason" in exc.detail else exc.detail
        return _review_page(request, viewer, code, message, 422 if "reason" in exc.detail else exc.status_code)
    message = f"{title} is returned to its seller with your reason."
    return redirect(request, "/ops/reviews", flash=("success", message))


# --- change requests -------------------------------------------------------------------------------------------


@router.get("/ops/change-requests", response_class=HTMLResponse)
def change_requests(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        changes = catalog_views.change_requests_out(session)
        models = catalog_views.model_requests_out(session)
    explained = {
        m["id"]: (present.explain(m["before"], [], m["kind"]), present.explain(m["after"], [], m["kind"]))
        for m in models
    }
    context = {
        "changes": changes,
        "models": models,
        "explained": explained,
        "hours": hours,
        "pricing_label": present.pricing_label,
    }
    return render(request, "ops/change_requests.html", context)


Decide = Callable[..., Any]


def _decide(
    request: Request, viewer: Viewer, request_id: int, decision: str, reason: str, decide: Decide, noun: str
) -> Response:
    """Approve or reject a change request or a pricing-model request through its service; back to the list."""
    if decision not in ("approve", "reject"):
        raise NotFound("no such decision")
    try:
        with acting(request) as session:
            done = decide(
                session, viewer.principal, request_id, approve=decision == "approve", reason=reason.strip() or None
            )
            state = done.state
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, "/ops/change-requests", flash=_flash_error(exc))
    return redirect(request, "/ops/change-requests", flash=("success", f"{noun} {request_id} is {state}."))


@router.post("/ops/change-requests/{request_id}/{decision}", response_model=None)
def decide_change(
    request: Request, request_id: int, decision: str, reason: str = Form(""), viewer: Viewer = Depends(operator)
) -> Response:
    return _decide(request, viewer, request_id, decision, reason, catalog.decide_change, "Change request")


@router.post("/ops/pricing-model-requests/{request_id}/{decision}", response_model=None)
def decide_model(
    request: Request, request_id: int, decision: str, reason: str = Form(""), viewer: Viewer = Depends(operator)
) -> Response:
    return _decide(request, viewer, request_id, decision, reason, pricing.decide_model_change, "Pricing-model request")
