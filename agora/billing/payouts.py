"""Seller disbursements (BIL-05) and seller reports.

A month's disbursement to a seller pays every software line billed to its products on that month's
invoices (monthly and upfront), less the listing fee of the product's kind and pricing family — none for
Free, BYOL or open-source listings (PRC-17). Infrastructure lines (PRC-14 `bill` items) are passed through:
never paid to the seller and never charged a listing fee; the statement shows their sum apart (LST-10).
The fee is computed exactly per line and rounded once per line; the statement lists every invoice line it
covers, and no line is ever paid twice. Lines of ML products in preview, and the credit notes that refunded
them, are recorded at 0.00 with a note saying why (BIL-05).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from agora import jobs
from agora.billing.automatic import PREVIEW
from agora.billing.rating import INFRASTRUCTURE, SOFTWARE, month_bounds
from agora.bulk import AnyRow, among, insert_rows
from agora.models import (
    Disbursement,
    DisbursementLine,
    Invoice,
    InvoiceLine,
    Product,
    Refund,
    Seller,
    Subscription,
    UsageRecord,
)
from agora.money import from_cents, to_cents
from agora.pricing.service import fee_percent

PAID_STATES = ("finalized", "paid")
PREVIEW_NOTE = (
    "{amount} not paid out: the ML product is in preview, so its charges are refunded to the buyer and no "
    "disbursement is made for them [BIL-05]"
)
STATEMENT_LINES: Table = DisbursementLine.__table__  # type: ignore[assignment]
PASS_THROUGH_NOTE = (
    "pays software charges only: infrastructure charges billed with your products are passed through to the "
    "marketplace, are not paid to you and carry no listing fee [LST-10]"
)


def disburse(session: Session, period: str) -> list[Disbursement]:
    """Create the period's disbursements for every seller with billed lines not yet paid out."""
    paid_out = select(DisbursementLine.invoice_line_id)
    rows = session.execute(  # rows, not objects: a month has a line or more per buyer
        select(
            InvoiceLine.id,
            InvoiceLine.invoice_id,
            InvoiceLine.seller_id,
            InvoiceLine.amount_cents,
            InvoiceLine.product_id,
        )
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            Invoice.period == period,
            Invoice.state.in_(PAID_STATES),
            InvoiceLine.category == SOFTWARE,
            InvoiceLine.id.not_in(paid_out),
        )
        .order_by(InvoiceLine.seller_id, InvoiceLine.id)
    ).all()
    by_seller: dict[int, list[AnyRow]] = defaultdict(list)
    for row in rows:
        by_seller[row.seller_id].append(row)
    # What the listing fee depends on, read once per product rather than with every line (a listing is JSON).
    products = {
        product_id: (kind, family or "", bool((listing or {}).get("open_source")))
        for product_id, kind, family, listing in session.execute(
            select(Product.id, Product.kind, Product.pricing_family, Product.listing).where(
                among(session, Product.id, {row.product_id for row in rows})
            )
        )
    }
    withheld_lines, withheld_notes = _preview_refunds(session, period)
    made = []
    rates: dict[tuple[str, str, bool], Decimal] = {}
    for seller_id, lines in sorted(by_seller.items()):
        existing = session.scalar(
            select(Disbursement).where(Disbursement.seller_id == seller_id, Disbursement.period == period)
        )
        if existing is not None:
            continue  # a period is disbursed once; later corrections go on credit notes
        disbursement = Disbursement(seller_id=seller_id, period=period, gross_cents=0, fee_cents=0, net_cents=0)
        session.add(disbursement)
        session.flush()
        statement: list[dict[str, Any]] = []  # a month's lines: written in one statement, not one object each
        for line in lines:
            if line.id in withheld_lines or line.invoice_id in withheld_notes:
                statement.append(
                    {
                        "disbursement_id": disbursement.id,
                        "invoice_line_id": line.id,
                        "fee_percent": "0",
                        "amount_cents": 0,
                        "fee_cents": 0,
                        "note": PREVIEW_NOTE.format(amount=f"{from_cents(line.amount_cents):.2f}"),
                    }
                )
                continue
            key = products[line.product_id]
            if key not in rates:
                rates[key] = fee_percent(session, key[0], key[1], open_source=key[2])
            percent = rates[key]
            fee = to_cents(from_cents(line.amount_cents) * percent / Decimal(100))
            statement.append(
                {
                    "disbursement_id": disbursement.id,
                    "invoice_line_id": line.id,
                    "fee_percent": format(percent, "f"),
                    "amount_cents": line.amount_cents,
                    "fee_cents": fee,
                    "note": None,
                }
            )
            disbursement.gross_cents += line.amount_cents
            disbursement.fee_cents += fee
        disbursement.net_cents = disbursement.gross_cents - disbursement.fee_cents
        insert_rows(session.connection(), STATEMENT_LINES, statement)
        made.append(disbursement)
    session.flush()
    return made


def _preview_refunds(session: Session, period: str) -> tuple[set[int], set[int]]:
    """The invoice lines refunded because their ML product is in preview, and the credit notes that
    refunded them: the month's close dates those notes with the invoice's period (BIL-05)."""
    rows = session.execute(
        select(Refund.invoice_line_id, Refund.credit_note_id)
        .join(Invoice, Invoice.id == Refund.credit_note_id)
        .where(Refund.kind == PREVIEW, Invoice.period == period)
    ).all()
    return {line_id for line_id, _ in rows}, {note_id for _, note_id in rows}


@jobs.handler("billing.disburse")
def disburse_job(session: Session, payload: dict[str, Any]) -> None:
    disburse(session, payload["period"])


def statement(session: Session, disbursement: Disbursement) -> dict[str, Any]:
    seller = session.get_one(Seller, disbursement.seller_id)
    rows = session.execute(
        select(DisbursementLine, InvoiceLine, Invoice, Product.code)
        .join(InvoiceLine, InvoiceLine.id == DisbursementLine.invoice_line_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .join(Product, Product.id == InvoiceLine.product_id)
        .where(DisbursementLine.disbursement_id == disbursement.id)
        .order_by(DisbursementLine.id)
    ).all()
    infrastructure = session.scalar(
        select(func.sum(InvoiceLine.amount_cents))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            InvoiceLine.seller_id == disbursement.seller_id,
            InvoiceLine.category == INFRASTRUCTURE,
            Invoice.period == disbursement.period,
            Invoice.state.in_(PAID_STATES),
        )
    )
    notes = [PASS_THROUGH_NOTE]
    if any(paid.note for paid, *_ in rows):
        notes.append("lines paid at 0.00 say why in their note (ML products in preview pay nothing) [BIL-05]")
    return {
        "id": disbursement.id,
        "seller": seller.handle,
        "period": disbursement.period,
        "gross": f"{from_cents(disbursement.gross_cents):.2f}",
        "listing_fee": f"{from_cents(disbursement.fee_cents):.2f}",
        "net": f"{from_cents(disbursement.net_cents):.2f}",
        "infrastructure_passed_through": f"{from_cents(int(infrastructure or 0)):.2f}",
        "notes": notes,
        "lines": [
            {
                "invoice": invoice.id,
                "invoice_kind": invoice.kind,
                "product": code,
                "charge": line.charge,
                "billed": f"{from_cents(line.amount_cents):.2f}",
                "amount": f"{from_cents(paid.amount_cents):.2f}",
                "fee_percent": paid.fee_percent,
                "fee": f"{from_cents(paid.fee_cents):.2f}",
                "note": paid.note,
            }
            for paid, line, invoice, code in rows
        ],
    }


def report(session: Session, seller_id: int, period: str) -> dict[str, Any]:
    """A seller's month: billed revenue per product, charge and category (software or infrastructure,
    LST-10), subscribers, usage by dimension."""
    revenue = session.execute(
        select(Product.code, InvoiceLine.charge, InvoiceLine.category, func.sum(InvoiceLine.amount_cents))
        .join(Product, Product.id == InvoiceLine.product_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.seller_id == seller_id, Invoice.period == period)
        .group_by(Product.code, InvoiceLine.charge, InvoiceLine.category)
        .order_by(Product.code, InvoiceLine.charge, InvoiceLine.category)
    ).all()
    subscribers = session.execute(
        select(Product.code, func.count(Subscription.id))
        .join(Subscription, Subscription.product_id == Product.id)
        .where(Product.seller_id == seller_id, Subscription.ended_at.is_(None))
        .group_by(Product.code)
        .order_by(Product.code)
    ).all()
    start, end = month_bounds(period)
    usage = session.execute(
        select(Product.code, UsageRecord.dimension, func.sum(UsageRecord.quantity))
        .join(Product, Product.id == UsageRecord.product_id)
        .where(
            Product.seller_id == seller_id,
            UsageRecord.period_start >= int(start.timestamp()),
            UsageRecord.period_start < int(end.timestamp()),
        )
        .group_by(Product.code, UsageRecord.dimension)
        .order_by(Product.code, UsageRecord.dimension)
    ).all()
    return {
        "period": period,
        "revenue": [
            {"product": code, "charge": charge, "category": category, "amount": f"{from_cents(int(cents)):.2f}"}
            for code, charge, category, cents in revenue
        ],
        "subscribers": [{"product": code, "active": count} for code, count in subscribers],
        "usage": [{"product": code, "dimension": dim, "quantity": int(q)} for code, dim, q in usage],
    }
