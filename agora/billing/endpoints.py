"""Invoices through the API: a buyer sees its own, a seller the lines of its products, an operator all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agora.auth import ANY_ROLE, Principal, require
from agora.billing import metering_errors, payouts, pdf, refunds, service, views
from agora.billing.responses import Disbursements, InvoiceOut, MeteringErrorOut, SellerReport
from agora.deps import Uow
from agora.exports import csv_response
from agora.models import Disbursement, Invoice, Role
from agora.paging import Page, Paging
from agora.pricing.schema import Price
from agora.validation import Id, Month

router = APIRouter(prefix="/api/v1", tags=["billing"])
anyone = require(*ANY_ROLE)
seller_or_operator = require(Role.SELLER, Role.OPERATOR)
seller_only = require(Role.SELLER)
operator_only = require(Role.OPERATOR)


@router.get("/invoices", response_model=None)
def invoices(
    session: Uow,
    principal: Principal = Depends(anyone),
    period: str | None = Query(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    format: str = Query("json", pattern="^(json|csv)$"),
    page: Page = Depends(Paging),
) -> dict[str, Any] | Response:
    """The caller's invoices (BIL-01). A seller sees the invoices that bill its products, with only those
    lines; `format=csv` gives one row per line, its last column whether the line is a software or an
    infrastructure charge (LST-10)."""
    rows = page.scalars(
        session, views.query(principal, period), [Invoice.period, Invoice.id], key=lambda r: (r[0].period, r[0].id)
    )
    found = [views.document(session, principal, invoice) for invoice in rows]
    if format == "csv":
        exported = csv_response(views.CSV_COLUMNS, views.csv_rows(found))
        page.link(page.next_after, exported)
        return exported
    return {"invoices": found}


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def invoice(invoice_id: Id, session: Uow, principal: Principal = Depends(anyone)) -> dict[str, Any]:
    return views.one(session, principal, invoice_id)


@router.get("/invoices/{invoice_id}/pdf", response_class=Response)
def invoice_pdf(invoice_id: Id, session: Uow, principal: Principal = Depends(anyone)) -> Response:
    """The invoice (or the caller's lines of it, for a seller) as a PDF."""
    return Response(
        pdf.render(views.one(session, principal, invoice_id)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice_id}.pdf"'},
    )


@router.get("/disbursements", response_model=Disbursements)
def disbursements(
    session: Uow,
    principal: Principal = Depends(seller_or_operator),
    period: str | None = Query(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    page: Page = Depends(Paging),
) -> dict[str, Any]:
    """Monthly payouts (BIL-05) with the statement of every invoice line each covers: a seller its own."""
    query = select(Disbursement)
    if principal.role is Role.SELLER:
        query = query.where(Disbursement.seller_id == principal.id)
    if period:
        query = query.where(Disbursement.period == period)
    order = [Disbursement.period, Disbursement.seller_id, Disbursement.id]
    rows = page.scalars(session, query, order, key=lambda r: (r[0].period, r[0].seller_id, r[0].id))
    return {"disbursements": [payouts.statement(session, d) for d in rows]}


@router.get("/reports/{period}", response_model=SellerReport)
def seller_report(period: Month, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    """The seller's month: billed revenue, active subscribers, usage by dimension."""
    return payouts.report(session, principal.id, period)


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buyer_account: str = Field(pattern=r"^[0-9]{12}$")
    buyer_email: str = Field(min_length=3, max_length=320)
    product: str
    periods: list[Month] = Field(min_length=1, max_length=36)
    amount: Price | None = Field(None, description="omit for a full refund of those periods' charges")
    reason: str = Field(min_length=1, max_length=1000)
    kind: str = Field("software", pattern="^(software|tax)$")


@router.post("/refunds", status_code=201, response_model=InvoiceOut)
def refund(body: RefundIn, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    """RFD-01: a seller-approved software refund, issued as a credit note (never more than was charged)."""
    if body.kind == "tax":
        refunds.tax_refund(session, principal)
    note = refunds.seller_refund(
        session,
        principal,
        buyer_account=body.buyer_account,
        buyer_email=body.buyer_email,
        product_code=body.product,
        periods=body.periods,
        amount=body.amount,
        reason=body.reason,
    )
    return service.invoice_json(session, note)


class AnnualRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field(pattern="^(full|prorata)$")
    reason: str = Field(min_length=1, max_length=1000)


@router.post("/annual-purchases/{purchase_id}/refund", status_code=201, response_model=InvoiceOut)
def refund_annual(
    purchase_id: Id, body: AnnualRefundIn, session: Uow, principal: Principal = Depends(seller_or_operator)
) -> dict[str, Any]:
    """RFD-03: a full refund within 48 h (or 14 days of an auto-renewal), pro-rata within 14 days (seller)."""
    return service.invoice_json(session, refunds.annual_refund(session, principal, purchase_id, body.mode, body.reason))


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


@router.post("/invoices/{invoice_id}/pay", response_model=InvoiceOut)
def pay(invoice_id: Id, session: Uow, principal: Principal = Depends(operator_only)) -> dict[str, Any]:
    """Record the buyer's payment: finalized → paid."""
    return service.invoice_json(session, refunds.mark_paid(session, principal, invoice_id))


@router.post("/invoices/{invoice_id}/void", status_code=201, response_model=InvoiceOut)
def void(invoice_id: Id, body: VoidIn, session: Uow, principal: Principal = Depends(operator_only)) -> dict[str, Any]:
    """Void an unpaid invoice issued in error; answers the credit note that reverses it."""
    return service.invoice_json(session, refunds.void(session, principal, invoice_id, body.reason))


class MeteringErrorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_ids: list[Id] = Field(
        min_length=1, max_length=1000, description="the `id`s of the usage records, as GET /api/v1/usage lists them"
    )
    reason: str = Field(min_length=1, max_length=1000)


@router.post("/usage/errors", status_code=201, response_model=MeteringErrorOut)
def confirm_metering_errors(
    body: MeteringErrorsIn, response: Response, session: Uow, principal: Principal = Depends(seller_only)
) -> dict[str, Any]:
    """RFD-02: the seller confirms a set of its products' usage records as metering errors. Records of an
    open month are left out of its billing; those of a closed month are refunded on credit notes. Records
    confirmed before are not refunded again (answered 200, with nothing new)."""
    result = metering_errors.confirm(session, principal, body.record_ids, body.reason)
    if result.error is None:
        response.status_code = 200
    return metering_errors.confirmation_json(session, result, principal.id)
