"""The operator console, money: billing periods with a close started from the page and its progress
(`/ops/billing`, BIL-03), invoice search with **Mark paid** and **Void** (`/ops/invoices`), refunds with the
rule that allowed each and payouts per seller and month (`/ops/refunds`). The acts are the billing services'
(`operations.start_close`, `refunds.mark_paid`, `refunds.void`), audited as through the API."""

from __future__ import annotations

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from agora.billing import operations, refunds
from agora.errors import AgoraError, NotFound
from agora.models import Role
from agora.web.core import page_router, redirect, render, require
from agora.web.ops import acting
from agora.web.sessions import Viewer

router = page_router()
operator = require(Role.OPERATOR)
STATE_WORDS = {"open": "Open", "closing": "Closing", "closed": "Closed"}
CHARGES = {"refund": "Refund", "monthly": "Monthly fee", "hourly": "Hourly", "annual": "Annual subscription"}


@router.get("/ops/billing", response_class=HTMLResponse)
def billing(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = operations.periods(session)
    return render(request, "ops/billing.html", {"periods": found, "states": STATE_WORDS})


@router.get("/ops/billing/{period}/progress", response_class=HTMLResponse)
def progress(request: Request, period: str, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    """One period's row of progress, polled by the billing page (htmx) while the period is closing."""
    if not operations.MONTH.fullmatch(period):
        raise NotFound(f"no period {period!r}")
    with request.app.state.db.reader() as session:
        row = operations.period_row(session, period)
    return render(request, "ops/_period.html", {"p": row, "states": STATE_WORDS})


@router.post("/ops/billing/close", response_model=None)
def close(request: Request, period: str = Form(""), viewer: Viewer = Depends(operator)) -> Response:
    try:
        with acting(request) as session:
            queued = operations.start_close(session, viewer.principal, period)
    except AgoraError as exc:
        return redirect(request, "/ops/billing", flash=("error", exc.detail))
    message = (
        f"Closing {period}: the run is queued, and this page shows its progress."
        if queued
        else f"{period} was already asked to close: nothing is invoiced twice."
    )
    return redirect(request, f"/ops/billing#period-{period}", flash=("success", message))


def _search(
    buyer: str | None, seller: str | None, period: str | None, state: str | None, kind: str | None
) -> operations.InvoiceSearch:
    def clean(value: str | None) -> str | None:
        return (value or "").strip() or None

    return operations.InvoiceSearch(clean(buyer), clean(seller), clean(period), clean(state), clean(kind))


@router.get("/ops/invoices", response_class=HTMLResponse)
def invoices(
    request: Request,
    buyer: str | None = None,
    seller: str | None = None,
    period: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    viewer: Viewer = Depends(operator),
) -> HTMLResponse:
    search = _search(buyer, seller, period, state, kind)
    with request.app.state.db.reader() as session:
        found = operations.search_invoices(session, search)
        choices = operations.invoice_choices(session)
    context = {
        "invoices": found,
        "f": search,
        "choices": choices,
        "states": operations.INVOICE_STATES,
        "kinds": operations.INVOICE_KINDS,
        "charges": CHARGES,
        "back": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    return render(request, "ops/invoices.html", context)


def _back(target: str) -> str:
    return target if target.startswith("/ops/invoices") else "/ops/invoices"


@router.post("/ops/invoices/{invoice_id}/pay", response_model=None)
def pay(request: Request, invoice_id: int, back: str = Form(""), viewer: Viewer = Depends(operator)) -> Response:
    try:
        with acting(request) as session:
            refunds.mark_paid(session, viewer.principal, invoice_id)
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, _back(back), flash=("error", exc.detail))
    return redirect(request, _back(back), flash=("success", f"Invoice {invoice_id} is marked paid."))


@router.post("/ops/invoices/{invoice_id}/void", response_model=None)
def void(
    request: Request, invoice_id: int, reason: str = Form(""), back: str = Form(""), viewer: Viewer = Depends(operator)
) -> Response:
    if not reason.strip():
        message = f"Invoice {invoice_id} is not voided: say why (the reason goes on the credit note)."
        return redirect(request, _back(back), flash=("error", message))
    try:
        with acting(request) as session:
            note = refunds.void(session, viewer.principal, invoice_id, reason.strip())
            note_id = note.id
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, _back(back), flash=("error", exc.detail))
    message = f"Invoice {invoice_id} is void; credit note {note_id} reverses it."
    return redirect(request, _back(back), flash=("success", message))


@router.get("/ops/refunds", response_class=HTMLResponse)
def refund_list(request: Request, viewer: Viewer = Depends(operator)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        issued = operations.refunds_issued(session)
        windows = operations.open_windows(session)
        payouts = operations.disbursements(session)
    return render(request, "ops/refunds.html", {"issued": issued, "windows": windows, "payouts": payouts})
