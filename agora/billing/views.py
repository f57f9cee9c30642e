"""Invoices as each caller may read them (a buyer its own, a seller the lines of its products, an operator
all), and their CSV: what the API and the buyer's console both answer from."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.billing import service
from agora.errors import NotFound
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


def listing(session: Session, principal: Principal, period: str | None = None) -> list[dict[str, Any]]:
    query = visible(principal)
    if period:
        query = query.where(Invoice.period == period)
    return [document(session, principal, invoice) for invoice in session.scalars(query)]


def to_csv(invoices: list[dict[str, Any]]) -> str:
    """One row per line; the last column says whether it is a software or an infrastructure charge (LST-10)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in invoices:
        for line in invoice["lines"]:
            writer.writerow([invoice["id"], invoice["buyer"], invoice["period"], invoice["kind"], line["product"],
                             line["charge"], line["instance_type"] or "", line["dimension"] or "", line["quantity"],
                             line["unit_price"], line["amount"], line["explain"], line["category"]])  # fmt: skip
    return out.getvalue()
