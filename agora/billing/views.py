"""Invoices as each caller may read them (a buyer its own, a seller the lines of its products, an operator
all), and their CSV: what the API and the buyer's console both answer from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.billing import service
from agora.errors import NotFound
from agora.exports import csv_text
from agora.models import Invoice, InvoiceLine, Role

CSV_COLUMNS = ["invoice", "buyer", "period", "kind", "product", "charge", "instance_type", "dimension",
               "quantity", "unit_price", "amount", "explain", "category"]  # fmt: skip


def visible(principal: Principal) -> Select[Invoice]:
    query = select(Invoice).order_by(Invoice.period, Invoice.id)
    if principal.role is Role.BUYER:
        return query.where(Invoice.buyer_id == principal.id)
    if principal.role is Role.SELLER:
        mine = select(InvoiceLine.invoice_id).where(InvoiceLine.seller_id == principal.id)
        return query.where(Invoice.id.in_(mine))
    return query


def document(session: Session, principal: Principal, invoice: Invoice) -> dict[str, Any]:
    seller = principal.id if principal.role is Role.SELLER else None
    return service.invoice_json(session, invoice, seller_id=seller)


def one(session: Session, principal: Principal, invoice_id: int) -> dict[str, Any]:
    """One invoice the caller may see; 404 for anyone else's."""
    found = session.scalar(visible(principal).where(Invoice.id == invoice_id))
    if found is None:
        raise NotFound(f"no invoice {invoice_id}")
    return document(session, principal, found)


def query(principal: Principal, period: str | None = None) -> Select[Invoice]:
    found = visible(principal)
    return found.where(Invoice.period == period) if period else found


def listing(session: Session, principal: Principal, period: str | None = None) -> list[dict[str, Any]]:
    return [document(session, principal, invoice) for invoice in session.scalars(query(principal, period))]


def csv_rows(invoices: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per line; the last column says whether it is a software or an infrastructure charge (LST-10)."""
    return [
        [invoice[key] for key in ("id", "buyer", "period", "kind")]
        + [line[key] or "" for key in ("product", "charge", "instance_type", "dimension")]
        + [line[key] for key in ("quantity", "unit_price", "amount", "explain", "category")]
        for invoice in invoices
        for line in invoice["lines"]
    ]


def to_csv(invoices: list[dict[str, Any]]) -> str:
    return csv_text(CSV_COLUMNS, csv_rows(invoices))
