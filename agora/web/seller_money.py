"""The seller portal's dashboard, usage (with metering errors, RFD-02), revenue, disbursements (BIL-05) and
refunds (RFD-01, RFD-03) — issue 18, item 4. Every page reads through the seller views of
`agora.billing.seller_views` and `agora.metering.views`, which only ever answer the signed-in seller's
products, buyers and money; CSV goes through `agora.exports` (formula-safe)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from agora.billing import metering_errors, refunds
from agora.billing import seller_views as money
from agora.errors import AgoraError, Invalid
from agora.exports import csv_response
from agora.metering import views as metering
from agora.models import Role
from agora.money import from_cents
from agora.web.core import money as dollars
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
seller = require(Role.SELLER)
KINDS = {
    "seller": "Approved by you",
    "annual_full": "Annual, full (48 h)",
    "annual_prorata": "Annual, pro rata",
    "annual_renewal": "Annual renewal",
    "void": "Invoice voided",
    "preview": "ML preview",
    "trial_conversion": "After trial conversion",
    "metering_error": "Metering error",
}


def _problems(exc: AgoraError) -> dict[str, str]:
    """Field → message, from a service's refusal (the field named in the message when it located one)."""
    if isinstance(exc, Invalid) and exc.problems:
        if len(exc.problems) == 1 and ": " in exc.detail:
            return {exc.problems[0]["loc"]: exc.detail.split(": ", 1)[1]}
        return {p["loc"]: p["msg"] for p in exc.problems}
    return {"form": exc.detail}


# --- dashboard -------------------------------------------------------------------------------------------------


@router.get("/seller", response_class=HTMLResponse)
def dashboard(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    principal = viewer.principal
    with request.app.state.db.reader() as session:
        revenue = money.revenue(session, principal)
        wanted = metering.parse_range(None, None)
        usage = metering.usage(session, principal, wanted)
        context = {
            "revenue": revenue,
            "recent": revenue.months[-12:],
            "revenue_chart": {
                **revenue.chart,
                "labels": revenue.chart["labels"][-12:],
                "series": [{**s, "values": s["values"][-12:]} for s in revenue.chart["series"]],
            },
            "subscribers": money.subscribers(session, principal),
            "usage": usage,
            "attention": money.attention(session, principal),
        }
    return render(request, "seller/dashboard.html", context)


# --- usage -------------------------------------------------------------------------------------------------------


def _usage_page(
    request: Request,
    viewer: Viewer,
    start: str | None,
    end: str | None,
    product: str | None,
    dimension: str | None,
    customer: str | None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    principal = viewer.principal
    errors = dict(errors or {})
    with request.app.state.db.reader() as session:
        try:
            wanted = metering.parse_range(start, end, product, dimension, customer)
        except Invalid as exc:
            errors |= _problems(exc)
            status = 422
            wanted = metering.parse_range(None, None)
        context = {
            "usage": metering.usage(session, principal, wanted),
            "records": metering.records(session, principal, wanted),
            "products": metering.products(session, principal),
            "asked": {
                "start": start or wanted.first.isoformat(),
                "end": end or wanted.last.isoformat(),
                "product": product or "",
                "dimension": dimension or "",
                "customer": customer or "",
            },
            "errors": errors,
            "form": form or {},
            "max_records": metering.MAX_RECORDS,
        }
    return render(request, "seller/usage.html", context, status)


@router.get("/seller/usage", response_class=HTMLResponse)
def usage(
    request: Request,
    start: str | None = None,
    end: str | None = None,
    product: str | None = None,
    dimension: str | None = None,
    customer: str | None = None,
    viewer: Viewer = Depends(seller),
) -> HTMLResponse:
    return _usage_page(request, viewer, start, end, product, dimension, customer)


@router.get("/seller/usage.csv")
def usage_csv(
    request: Request,
    start: str | None = None,
    end: str | None = None,
    product: str | None = None,
    dimension: str | None = None,
    customer: str | None = None,
    viewer: Viewer = Depends(seller),
) -> Response:
    wanted = metering.parse_range(start, end, product, dimension, customer)
    with request.app.state.db.reader() as session:
        rows = metering.daily(session, viewer.principal, wanted)
    filename = f"usage-{wanted.first.isoformat()}-to-{wanted.last.isoformat()}.csv"
    return csv_response(metering.CSV_COLUMNS, rows, filename)


@router.post("/seller/usage/errors", response_model=None)
def mark_errors(
    request: Request,
    record_id: list[str] = Form(default_factory=list),
    reason: str = Form(""),
    start: str = Form(""),
    end: str = Form(""),
    product: str = Form(""),
    dimension: str = Form(""),
    customer: str = Form(""),
    viewer: Viewer = Depends(seller),
) -> Response:
    """RFD-02, as POST /api/v1/usage/errors: the ticked records are confirmed as metering errors."""
    keep = {"start": start, "end": end, "product": product, "dimension": dimension, "customer": customer}
    ids = [int(value) for value in record_id if value.isdigit() and len(value) <= 18]
    errors: dict[str, str] = {}
    if len(ids) != len(record_id):
        errors["record_id"] = "choose records from the list"
    elif not ids:
        errors["record_id"] = "tick at least one record to mark as a metering error"
    elif len(ids) > 1000:
        errors["record_id"] = "at most 1,000 records at a time"
    elif not reason.strip():
        errors["reason"] = "say what went wrong with the metering"
    if not errors:
        try:
            with request.app.state.db.unit_of_work() as session:
                result = metering_errors.confirm(session, viewer.principal, ids, reason[:1000])
        except AgoraError as exc:
            errors = {
                "record_id" if "record_ids" in k or "record_ids" in v else k: v for k, v in _problems(exc).items()
            }
        else:
            words = f"{len(result.confirmed)} record(s) confirmed as metering errors"
            if result.excluded:
                words += f"; {len(result.excluded)} left out of this month's billing"
            if result.credit_notes:
                words += f"; {len(result.credit_notes)} credit note(s) issued to the buyer"
            if result.already_confirmed:
                words += f"; {len(result.already_confirmed)} had been confirmed before"
            try:
                query = "?" + metering.parse_range(**keep).query_string()
            except Invalid:
                query = ""
            return redirect(request, "/seller/usage" + query, flash=("success", words + "."))
    return _usage_page(request, viewer, **keep, errors=errors, status=422, form={"reason": reason, "ids": ids})


# --- revenue and disbursements ------------------------------------------------------------------------------------


@router.get("/seller/revenue", response_class=HTMLResponse)
def revenue(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = money.revenue(session, viewer.principal)
    return render(request, "seller/revenue.html", {"revenue": found})


@router.get("/seller/revenue.csv")
def revenue_csv(request: Request, viewer: Viewer = Depends(seller)) -> Response:
    with request.app.state.db.reader() as session:
        found = money.revenue(session, viewer.principal)
    return csv_response(money.REVENUE_CSV, found.rows, "revenue.csv")


@router.get("/seller/disbursements", response_class=HTMLResponse)
def disbursements(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = money.disbursements(session, viewer.principal)
    return render(request, "seller/disbursements.html", {"statements": found})


@router.get("/seller/disbursements.csv")
def disbursements_csv(request: Request, viewer: Viewer = Depends(seller)) -> Response:
    with request.app.state.db.reader() as session:
        found = money.disbursements(session, viewer.principal)
    return csv_response(money.DISBURSEMENT_CSV, money.disbursement_rows(found), "disbursements.csv")


# --- refunds -------------------------------------------------------------------------------------------------------


def _refunds_page(
    request: Request,
    viewer: Viewer,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        context = {
            "windows": money.annual_windows(session, viewer.principal),
            "issued": money.refunds_issued(session, viewer.principal),
            "choices": money.refund_choices(session, viewer.principal),
            "kinds": KINDS,
            "errors": {k: v for k, v in (errors or {}).items() if not k.startswith("annual-")},
            "annual_errors": {k: v for k, v in (errors or {}).items() if k.startswith("annual-")},
            "form": form or {},
        }
    return render(request, "seller/refunds.html", context, status)


@router.get("/seller/refunds", response_class=HTMLResponse)
def refund_page(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    return _refunds_page(request, viewer)


@router.post("/seller/refunds", response_model=None)
def approve_refund(
    request: Request,
    buyer_account: str = Form(""),
    buyer_email: str = Form(""),
    product: str = Form(""),
    periods: list[str] = Form(default_factory=list),
    amount: str = Form(""),
    reason: str = Form(""),
    viewer: Viewer = Depends(seller),
) -> Response:
    """RFD-01: the seller approves a software refund; the marketplace issues it as a credit note (RFD-05)."""
    form = {
        "buyer_account": buyer_account,
        "buyer_email": buyer_email,
        "product": product,
        "periods": periods,
        "amount": amount,
        "reason": reason,
    }
    errors: dict[str, str] = {}
    value: Decimal | None = None
    if not buyer_account.strip().isdigit() or len(buyer_account.strip()) != 12:
        errors["buyer_account"] = "a buyer account is 12 digits"
    if not buyer_email.strip():
        errors["buyer_email"] = "the buyer's e-mail is required [RFD-01]"
    if not reason.strip():
        errors["reason"] = "say why the buyer is refunded"
    if amount.strip():
        try:
            value = Decimal(amount.strip().lstrip("$"))
        except InvalidOperation:
            errors["amount"] = "must be an amount such as 12.50, or empty for a full refund"
        else:
            if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
                errors["amount"] = "must be more than 0 with at most two decimal places"
    if errors:
        return _refunds_page(request, viewer, errors, form, 422)
    try:
        with request.app.state.db.unit_of_work() as session:
            note = refunds.seller_refund(
                session,
                viewer.principal,
                buyer_account=buyer_account.strip(),
                buyer_email=buyer_email,
                product_code=product,
                periods=[p for p in periods if p],
                amount=value,
                reason=reason.strip()[:1000],
            )
            total = -note.total_cents
    except AgoraError as exc:
        return _refunds_page(request, viewer, _problems(exc), form, exc.status_code)
    text = (
        f"Refund of {dollars(from_cents(total))} approved: credit note {note.id} was issued to {buyer_account.strip()}."
    )
    return redirect(request, "/seller/refunds", flash=("success", text))


@router.post("/seller/refunds/annual/{purchase_id}", response_model=None)
def refund_annual(
    request: Request,
    purchase_id: int,
    mode: str = Form(""),
    reason: str = Form(""),
    viewer: Viewer = Depends(seller),
) -> Response:
    """RFD-03: a full refund within its window, or a pro-rata one within 14 days; the purchase ends now."""
    if not reason.strip():
        return _refunds_page(request, viewer, {f"annual-{purchase_id}": "say why the buyer is refunded"}, None, 422)
    try:
        with request.app.state.db.unit_of_work() as session:
            note = refunds.annual_refund(session, viewer.principal, purchase_id, mode, reason.strip()[:1000])
            total = -note.total_cents
    except AgoraError as exc:
        return _refunds_page(request, viewer, {f"annual-{purchase_id}": exc.detail}, None, exc.status_code)
    text = (
        f"Annual subscription refunded: {dollars(from_cents(total))} on credit note {note.id}; the purchase has ended."
    )
    return redirect(request, "/seller/refunds", flash=("success", text))
