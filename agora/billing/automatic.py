"""Refunds the marketplace makes by itself, each on a credit note that corrects the invoice it refunds and
has a unique source, so a repeated or resumed run issues it once:

- BIL-05: an ML product in preview pays its seller nothing and its buyers are refunded all its charges; the
  month's close refunds them right after it writes the buyer's invoice, dated with that invoice.
- RFD-02: software charges after a free trial converts are refunded when the buyer cancels within 7 days.
  The rating core waives them on any invoice rated after the cancellation; an invoice closed before it
  (converted in March, cancelled on 2 April) is corrected by the `billing.refund_after_trial` job the
  cancellation enqueues: the invoice's hourly lines less what re-rating that month now gives.
- RFD-02: charges caused by metering errors the seller confirmed (`agora.billing.metering_errors`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import jobs
from agora.billing import rating, refunds
from agora.billing.rating import month_bounds, next_period, period_of
from agora.billing.service import CLOSE_DELAY, Issued, rating_terms
from agora.bulk import among
from agora.catalog.schemas import ML_KINDS
from agora.metering.records import from_epoch
from agora.models import Invoice, InvoiceLine, Product, Subscription, UsageRecord
from agora.money import to_cents

MARKETPLACE = "marketplace"  # the actor of refunds nobody had to approve
PREVIEW = "preview"
TRIAL_CONVERSION = "trial_conversion"
REFUND_AFTER_TRIAL = "billing.refund_after_trial"
SETTLE = timedelta(hours=1)  # what a close's invoice jobs are given to finish (as payouts are, BIL-05)
PREVIEW_REASON = (
    "ML product in preview: all algorithm and model package charges are refunded to buyers, and its seller "
    "receives no disbursement for them [BIL-05]"
)


def after_monthly_invoices(session: Session, invoices: Sequence[Invoice | Issued]) -> None:
    """What the month's close does right after it writes these monthly invoices, in the same transaction."""
    if invoices:
        refund_preview_charges(session, invoices)
        from agora.billing import metering_errors  # imports this module

        metering_errors.credit_new_invoices(session, invoices)


# --- ML products in preview (BIL-05) ---------------------------------------------------------------------


def in_preview(product: Product) -> bool:
    return product.kind in ML_KINDS and bool(((product.listing or {}).get("ml") or {}).get("preview"))


def refund_preview_charges(session: Session, invoices: Sequence[Invoice | Issued]) -> list[Invoice]:
    """One credit note per invoice refunding, in full, its lines of products in preview."""
    previews = [p.id for p in session.scalars(select(Product).where(Product.kind.in_(ML_KINDS))) if in_preview(p)]
    if not previews:
        return []
    lines: dict[int, list[InvoiceLine]] = defaultdict(list)
    for line in session.scalars(
        select(InvoiceLine)
        .where(
            among(session, InvoiceLine.invoice_id, [invoice.id for invoice in invoices]),
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


# --- re-rating a closed month ------------------------------------------------------------------------------


def period_usage(
    session: Session, subscription_ids: Sequence[int], period: str, *, errors_from: int | None = None
) -> dict[int, list[rating.Usage]]:
    """The subscriptions' usage in `period` as the month's close rates it: summed per clock hour, dimension
    and resource, without records confirmed as metering errors — except, with `errors_from`, those of the
    errors numbered from it on (still billed, not yet refunded). Read from `usage_records` by the month's
    time range (the leading column of its unique index); corrections are rare, not the close's bulk path.
    Records carried into a later month (BIL-03) are that month's, and usage carried into this one is not
    re-rated here."""
    start, end = month_bounds(period)
    c = UsageRecord.__table__.c
    hour = c.period_start - c.period_start % 3600
    statement = (
        select(c.subscription_id, hour, c.dimension, c.resource, c.quantity, c.error_id, c.voided_at)
        .where(c.period_start >= int(start.timestamp()), c.period_start < int(end.timestamp()))
        .where(c.subscription_id.in_(list(subscription_ids)), c.billed_in.is_(None))  # not carried later
    )
    sums: dict[tuple[int, int, str, str], int] = defaultdict(int)
    for subscription_id, at, dimension, resource, quantity, error_id, voided_at in session.execute(statement):
        if error_id is not None and (voided_at is not None or errors_from is None or error_id < errors_from):
            continue
        sums[(subscription_id, at, dimension, resource)] += quantity
    usage: dict[int, list[rating.Usage]] = defaultdict(list)
    for (subscription_id, at, dimension, resource), quantity in sorted(sums.items()):
        usage[subscription_id].append(rating.Usage(from_epoch(at), dimension, quantity, resource))
    return usage


LineKey = tuple[int | None, str, str | None, str | None, Decimal]


def key_of(line: rating.Line | InvoiceLine) -> LineKey:
    """What identifies a line within a buyer's month: the subscription, charge, type or dimension, price."""
    return (line.subscription_id, line.charge, line.instance_type, line.dimension, Decimal(line.unit_price))


def cents_of(lines: Iterable[rating.Line]) -> dict[LineKey, int]:
    found: dict[LineKey, int] = defaultdict(int)
    for line in lines:
        found[key_of(line)] += to_cents(line.amount)
    return found


def overcharged(billed: Sequence[InvoiceLine], should: dict[LineKey, int]) -> list[tuple[InvoiceLine, int]]:
    """Each billed line's cents beyond what it should have been (a line is never refunded below zero)."""
    return [(line, line.amount_cents - should.get(key_of(line), 0)) for line in billed]


# --- refunds after a trial converts, across months (RFD-02) ----------------------------------------------


def enqueue_refund_after_trial(session: Session, subscription: Subscription) -> None:
    """Called as a subscription ends. When it ends within 7 days after its trial converted, in a later
    month than the conversion, the months already invoiced are corrected by a job, run once the last of
    them has closed so that it finds every invoice (a month still open rates the refund itself)."""
    converted, ended = subscription.trial_ends_at, subscription.ended_at
    if converted is None or ended is None or not converted <= ended <= converted + rating.REFUND_AFTER_TRIAL:
        return
    if period_of(converted) == period_of(ended):
        return
    last_close = month_bounds(period_of(ended))[0] + CLOSE_DELAY + SETTLE
    jobs.enqueue(
        session,
        REFUND_AFTER_TRIAL,
        {"subscription_id": subscription.id},
        run_at=max(ended, last_close),
        dedupe_key=f"{REFUND_AFTER_TRIAL}:{subscription.id}",
    )


@jobs.handler(REFUND_AFTER_TRIAL)
def refund_after_trial_job(session: Session, payload: dict[str, Any]) -> None:
    refund_after_trial(session, session.get_one(Subscription, payload["subscription_id"]))


def refund_after_trial(session: Session, subscription: Subscription) -> list[Invoice]:
    """Credit notes for the hourly charges after the conversion on the monthly invoices rated before the
    cancellation: each invoice's hourly lines of this subscription less what re-rating the month now gives
    (the rating core waives the hours after the conversion of a subscription cancelled within 7 days)."""
    converted, ended = subscription.trial_ends_at, subscription.ended_at
    if converted is None or ended is None:
        return []
    rated = rating_terms(session, [subscription])[subscription.id]
    notes = []
    period = period_of(converted)
    while period < period_of(ended):
        invoice = session.scalar(select(Invoice).where(Invoice.source == f"monthly:{subscription.buyer_id}:{period}"))
        if invoice is not None:
            billed = session.scalars(
                select(InvoiceLine)
                .where(
                    InvoiceLine.invoice_id == invoice.id,
                    InvoiceLine.subscription_id == subscription.id,
                    InvoiceLine.charge == "hourly",
                )
                .order_by(InvoiceLine.position)
            ).all()
            usage = period_usage(session, [subscription.id], period).get(subscription.id, [])
            note = credit(
                session,
                TRIAL_CONVERSION,
                f"cancelled {ended:%Y-%m-%d %H:%M} UTC, within 7 days after the free trial converted to paid on "
                f"{converted:%Y-%m-%d %H:%M} UTC: the hours since are refunded automatically [RFD-02]",
                overcharged(billed, cents_of(rating.rate(rated, usage, period))),
                source=f"credit:trial:{subscription.id}:{invoice.id}",
            )
            if note is not None:
                notes.append(note)
        period = next_period(period)
    return notes
