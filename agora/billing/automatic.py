"""Refunds the marketplace makes by itself, each on a credit note that corrects the invoice it refunds and
has a unique source, so a repeated or resumed run issues it once:

- BIL-05: an ML product in preview pays its seller nothing and its buyers are refunded all its charges; the
  month's close refunds them right after it writes the buyer's invoice, dated with that invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.billing import refunds
from agora.catalog.schemas import ML_KINDS
from agora.models import Invoice, InvoiceLine, Product

MARKETPLACE = "marketplace"  # the actor of refunds nobody had to approve
PREVIEW = "preview"
PREVIEW_REASON = (
    "ML product in preview: all algorithm and model package charges are refunded to buyers, and its seller "
    "receives no disbursement for them [BIL-05]"
)


def after_monthly_invoices(session: Session, invoices: Sequence[Invoice]) -> None:
    """What the month's close does right after it writes these monthly invoices, in the same transaction."""
    if invoices:
        refund_preview_charges(session, invoices)


# --- ML products in preview (BIL-05) ---------------------------------------------------------------------


def in_preview(product: Product) -> bool:
    return product.kind in ML_KINDS and bool(((product.listing or {}).get("ml") or {}).get("preview"))


def refund_preview_charges(session: Session, invoices: Sequence[Invoice]) -> list[Invoice]:
    """One credit note per invoice refunding, in full, its lines of products in preview."""
    previews = [p.id for p in session.scalars(select(Product).where(Product.kind.in_(ML_KINDS))) if in_preview(p)]
    if not previews:
        return []
    lines: dict[int, list[InvoiceLine]] = defaultdict(list)
    for line in session.scalars(
        select(InvoiceLine)
        .where(
            InvoiceLine.invoice_id.in_([invoice.id for invoice in invoices]),
            InvoiceLine.product_id.in_(previews),
            InvoiceLine.amount_cents > 0,
        )
        .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
    ):
        lines[line.invoice_id].append(line)
    notes = [
        credit(
            session,
            PREVIEW,
            PREVIEW_REASON,
            [(line, line.amount_cents) for line in lines[invoice.id]],
            source=f"credit:preview:{invoice.id}",
            period=invoice.period,
            issued_at=invoice.issued_at,
        )
        for invoice in invoices
        if lines[invoice.id]
    ]
    return [note for note in notes if note is not None]


def credit(
    session: Session,
    kind: str,
    reason: str,
    amounts: Iterable[tuple[InvoiceLine, int]],
    *,
    source: str,
    period: str | None = None,
    issued_at: datetime | None = None,
) -> Invoice | None:
    """The credit note of `source`: what is still left to refund of each line, never more (RFD-05). None
    when nothing is left and no such note was issued before."""
    existing = session.scalar(select(Invoice).where(Invoice.source == source))
    if existing is not None:
        return existing
    left = [(line, min(cents, line.amount_cents - refunds.refunded_cents(session, line.id))) for line, cents in amounts]
    left = [(line, cents) for line, cents in left if cents > 0]
    if not left:
        return None
    return refunds.issue(session, MARKETPLACE, kind, reason, left, source=source, period=period, issued_at=issued_at)
