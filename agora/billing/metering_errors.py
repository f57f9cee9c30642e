"""Metering errors (RFD-02): the seller confirms a set of its usage records as wrong, and the marketplace
refunds the charges they caused without anyone else's approval. Usage is never deleted:

- a record whose month is still open (its close is due 24 hours after the month ends, BIL-03, and the
  buyer's invoice for it does not exist yet) is voided: the close leaves it out of billing;
- a record of a month already closed stays billed, and the buyer gets a credit note against that month's
  invoice for the difference between re-rating the month with and without the set's records. Re-rating
  with the rating core (pure) keeps tiers, trials and annual coverage exact. A month closed after the
  confirmation but before its invoice was written is credited right after the invoice is written.

Each credit note's source names the error and the invoice, and a record belongs to one error set, so
confirming the same records again refunds nothing twice. Errors of one month are credited in the order
they were confirmed, each against the month without the earlier ones, so the credits add up exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.billing import automatic, rating
from agora.billing.rating import month_bounds, period_of
from agora.billing.service import CLOSE_DELAY, Issued, invoice_json, rating_terms
from agora.bulk import among
from agora.errors import Forbidden, Invalid, NotFound
from agora.metering.records import from_epoch
from agora.metering.service import touch_days
from agora.models import Invoice, InvoiceLine, MeteringError, Product, Role, Subscription, UsageRecord

METERING_ERROR = "metering_error"
PLATFORM = "platform"


@dataclass
class Confirmation:
    error: MeteringError | None  # None when every record was confirmed before
    confirmed: list[int] = field(default_factory=list)
    already_confirmed: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)  # voided: their open month will not bill them
    credit_notes: list[Invoice] = field(default_factory=list)


def confirm(session: Session, principal: Principal, record_ids: Sequence[int], reason: str) -> Confirmation:
    """RFD-02: the seller confirms these records (the `id`s GET /api/v1/usage lists) as metering errors."""
    if principal.role is not Role.SELLER:
        raise Forbidden("metering errors are confirmed by the product's seller [RFD-02]")
    if not reason.strip():
        raise Invalid.at("reason", "say what went wrong with the metering")
    wanted = list(dict.fromkeys(record_ids))
    found = {
        record.id: (record, seller_id)
        for record, seller_id in session.execute(
            select(UsageRecord, Product.seller_id)
            .join(Product, Product.id == UsageRecord.product_id)
            .where(UsageRecord.id.in_(wanted))
        )
    }
    for n, record_id in enumerate(record_ids):
        record, seller_id = found.get(record_id, (None, None))
        if record is None or seller_id != principal.id:
            raise NotFound(f"record_ids[{n}]: no usage record {record_id} of your products")
        if record.source == PLATFORM:
            raise Invalid.at(
                f"record_ids[{n}]",
                f"record {record_id} was measured by the marketplace, not by your metering; only records your "
                "software sent can be confirmed as metering errors [RFD-02]",
            )
    records = [found[record_id][0] for record_id in wanted]
    result = Confirmation(None, already_confirmed=[r.id for r in records if r.error_id is not None])
    fresh = [r for r in records if r.error_id is None]
    if not fresh:
        return result
    now = clock.now()
    error = MeteringError(seller_id=principal.id, actor=principal.actor, reason=reason.strip(), confirmed_at=now)
    session.add(error)
    session.flush()
    result.error = error
    invoiced = _invoiced(session, {(r.buyer_id, _period(r)) for r in fresh})
    voided = []
    for record in fresh:
        record.error_id = error.id
        result.confirmed.append(record.id)
        key = (record.buyer_id, _period(record))
        if key not in invoiced and now < month_bounds(key[1])[1] + CLOSE_DELAY:
            record.voided_at = int(now.timestamp())
            result.excluded.append(record.id)
            voided.append(record.period_start)
    session.flush()
    touch_days(session, voided, now)  # a day already summed for the close no longer holds what it should
    for invoice in sorted(invoiced.values(), key=lambda i: i.id):
        note = _credit(session, error, invoice)
        if note is not None:
            result.credit_notes.append(note)
    audit.record(
        session,
        actor=principal.actor,
        action="usage.metering_error",
        target_type="metering_error",
        target_id=error.id,
        before=None,
        after={
            "records": result.confirmed,
            "excluded": result.excluded,
            "credit_notes": [n.id for n in result.credit_notes],
        },
    )
    return result


def credit_new_invoices(session: Session, invoices: Sequence[Invoice | Issued]) -> list[Invoice]:
    """Right after a month's invoices are written: errors confirmed once the month could no longer leave
    their records out (its close was due) but before the buyer's invoice existed are credited now."""
    periods = {invoice.period for invoice in invoices}
    by_buyer = {(invoice.buyer_id, invoice.period): invoice for invoice in invoices}
    c = UsageRecord.__table__.c
    # `error_id IS NOT NULL` lets the partial index answer this without touching the month's records.
    rows = session.execute(
        select(c.error_id, c.buyer_id, c.period_start).where(
            c.error_id.is_not(None), c.voided_at.is_(None), among(session, c.buyer_id, {i.buyer_id for i in invoices})
        )
    )
    pending: set[tuple[int, int]] = set()
    for error_id, buyer_id, period_start in rows:
        period = period_of(from_epoch(period_start))
        if period in periods and (buyer_id, period) in by_buyer:
            pending.add((error_id, by_buyer[(buyer_id, period)].id))
    notes = []
    for error_id, invoice_id in sorted(pending):
        note = _credit(session, session.get_one(MeteringError, error_id), session.get_one(Invoice, invoice_id))
        if note is not None:
            notes.append(note)
    return notes


def _period(record: UsageRecord) -> str:
    return period_of(from_epoch(record.period_start))


def _invoiced(session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Invoice]:
    sources = {f"monthly:{buyer_id}:{period}": (buyer_id, period) for buyer_id, period in keys}
    found = session.scalars(select(Invoice).where(Invoice.source.in_(list(sources))))
    return {sources[invoice.source]: invoice for invoice in found}


def _credit(session: Session, error: MeteringError, invoice: Invoice) -> Invoice | None:
    """The invoice's charges the error's records caused: the month re-rated with them (and later errors,
    not refunded yet) less the month re-rated without them, line by line, never more than is left."""
    start, end = month_bounds(invoice.period)
    c = UsageRecord.__table__.c
    subscription_ids = sorted(
        set(
            session.scalars(
                select(c.subscription_id).where(
                    c.error_id == error.id,
                    c.buyer_id == invoice.buyer_id,
                    c.voided_at.is_(None),
                    c.period_start >= int(start.timestamp()),
                    c.period_start < int(end.timestamp()),
                )
            )
        )
    )
    if not subscription_ids:
        return None
    subscriptions = session.scalars(select(Subscription).where(Subscription.id.in_(subscription_ids))).all()
    terms = rating_terms(session, subscriptions)
    with_error = automatic.period_usage(session, subscription_ids, invoice.period, errors_from=error.id)
    without = automatic.period_usage(session, subscription_ids, invoice.period, errors_from=error.id + 1)
    caused: dict[automatic.LineKey, int] = defaultdict(int)
    for subscription_id in subscription_ids:
        rated = terms[subscription_id]
        before = automatic.cents_of(rating.rate(rated, with_error.get(subscription_id, []), invoice.period))
        after = automatic.cents_of(rating.rate(rated, without.get(subscription_id, []), invoice.period))
        for key, cents in before.items():
            caused[key] += max(0, cents - after.get(key, 0))
    billed = session.scalars(
        select(InvoiceLine)
        .where(InvoiceLine.invoice_id == invoice.id, InvoiceLine.subscription_id.in_(subscription_ids))
        .order_by(InvoiceLine.position)
    ).all()
    return automatic.credit(
        session,
        METERING_ERROR,
        f"metering error {error.id} confirmed by the seller on {error.confirmed_at:%Y-%m-%d}: {error.reason} [RFD-02]",
        [(line, caused.get(automatic.key_of(line), 0)) for line in billed],
        source=f"credit:metering_error:{error.id}:{invoice.id}",
    )


def confirmation_json(session: Session, result: Confirmation, seller_id: int) -> dict[str, Any]:
    error = result.error
    return {
        "id": error.id if error else None,
        "reason": error.reason if error else None,
        "confirmed_at": error.confirmed_at.isoformat().replace("+00:00", "Z") if error else None,
        "records": result.confirmed,
        "already_confirmed": result.already_confirmed,
        "excluded_from_billing": result.excluded,
        "credit_notes": [invoice_json(session, note, seller_id=seller_id) for note in result.credit_notes],
    }
