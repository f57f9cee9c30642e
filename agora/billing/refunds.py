"""Refunds (RFD-01…05): money given back on credit notes, never by editing an invoice.

- A seller approves a software refund by naming the buyer's e-mail and account, the product and the
  billing periods; the marketplace issues it (RFD-01).
- Annual subscriptions have their windows (RFD-03): a full refund within 48 hours of purchase (support
  or the seller), a pro-rata refund within 14 days (the seller only), a full refund of an auto-renewal
  within 14 days of it. A refunded annual subscription ends when it is refunded.
- No tax is calculated here, so a tax-only refund is refused with that reason (RFD-04).
- A refund never exceeds what was charged for the line, less what was refunded before (RFD-05).
The automatic refund of charges within 7 days after a trial converts (RFD-02) is made by the rating core on
invoices rated after the cancellation, and on a credit note for a month already invoiced; that and the other
refunds nobody approves (BIL-05 preview, RFD-02 metering errors) are in `agora.billing.automatic`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.billing.rating import period_of
from agora.errors import Forbidden, Invalid, InvalidTransition, NotFound
from agora.models import AnnualPurchase, Buyer, Invoice, InvoiceLine, Product, Refund, Role, Subscription
from agora.money import from_cents, round_cents, to_cents

FULL_WINDOW = timedelta(hours=48)
PRORATA_WINDOW = timedelta(days=14)
RENEWAL_WINDOW = timedelta(days=14)


def refunded_cents(session: Session, line_id: int) -> int:
    return int(session.scalar(select(func.sum(Refund.amount_cents)).where(Refund.invoice_line_id == line_id)) or 0)


def issue(
    session: Session,
    actor: str,
    kind: str,
    reason: str,
    amounts: Sequence[tuple[InvoiceLine, int]],
    *,
    source: str | None = None,
    period: str | None = None,
    issued_at: datetime | None = None,
) -> Invoice:
    """One credit note refunding `amounts` (line, cents) of one buyer's invoice lines. An automatic refund
    names its `source`, unique like every invoice's, so asking again answers the credit note already issued;
    it may also date the note (a refund made by a month's close belongs to that month)."""
    if source is not None:
        existing = session.scalar(select(Invoice).where(Invoice.source == source))
        if existing is not None:
            return existing
    if not amounts or all(cents == 0 for _, cents in amounts):
        raise Invalid.at("amount", "nothing to refund")
    invoices = {session.get_one(Invoice, line.invoice_id) for line, _ in amounts}
    buyers = {invoice.buyer_id for invoice in invoices}
    assert len(buyers) == 1, "a credit note refunds one buyer"
    for line, cents in amounts:
        left = line.amount_cents - refunded_cents(session, line.id)
        if cents < 0 or cents > left:
            raise Invalid.at(
                "amount",
                f"{from_cents(cents)} exceeds what is left to refund on the {line.charge} line "
                f"({from_cents(left)} of {from_cents(line.amount_cents)}) [RFD-05]",
            )
    now = issued_at or clock.now()
    first = min(invoices, key=lambda i: i.id)
    note = Invoice(
        source=source or f"credit:{first.id}:{uuid.uuid4().hex}",  # a seller's refunds are each their own note
        buyer_id=buyers.pop(),
        kind="credit_note",
        period=period or period_of(now),
        state="finalized",
        currency="USD",
        total_cents=-sum(cents for _, cents in amounts),
        issued_at=now,
        corrects_id=first.id,
    )
    session.add(note)
    session.flush()
    for position, (line, cents) in enumerate(amounts):
        session.add(
            InvoiceLine(
                invoice_id=note.id,
                position=position,
                subscription_id=line.subscription_id,
                product_id=line.product_id,
                seller_id=line.seller_id,
                category=line.category,
                charge="refund",
                instance_type=line.instance_type,
                dimension=line.dimension,
                quantity="1",
                unit_price=format(-from_cents(cents), "f"),
                amount_cents=-cents,
                explain=f"refund of invoice {line.invoice_id} {line.charge} line ({kind}): {reason}",
            )
        )
        session.add(
            Refund(
                invoice_line_id=line.id,
                credit_note_id=note.id,
                amount_cents=cents,
                kind=kind,
                actor=actor,
                reason=reason,
            )
        )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="refund.issue",
        target_type="invoice",
        target_id=note.id,
        before=None,
        after={"kind": kind, "total": str(from_cents(note.total_cents)), "corrects": first.id},
    )
    return note


def seller_refund(
    session: Session,
    principal: Principal,
    *,
    buyer_account: str,
    buyer_email: str,
    product_code: str,
    periods: Sequence[str],
    amount: Decimal | None,
    reason: str,
) -> Invoice:
    """RFD-01: the seller approves; the marketplace refunds the product's software lines of those periods —
    in full, or `amount` spread over them oldest first."""
    if principal.role is not Role.SELLER:
        raise Forbidden("software refunds are approved by the product's seller [RFD-01]")
    product = session.scalar(select(Product).where(Product.code == product_code))
    if product is None or product.seller_id != principal.id:
        raise NotFound(f"no product {product_code!r}")
    buyer = session.scalar(select(Buyer).where(Buyer.account == buyer_account))
    # The relationship first, and one answer for an unknown account and a stranger: a seller learns nothing,
    # not even whether an e-mail is theirs, about buyers of the marketplace that never bought its product.
    customer = buyer is not None and session.scalar(
        select(Subscription.id).where(Subscription.buyer_id == buyer.id, Subscription.product_id == product.id).limit(1)
    )
    if buyer is None or not customer:
        raise Invalid.at("buyer_account", f"is not a customer of {product_code} [RFD-01]")
    if buyer.email.lower() != buyer_email.strip().lower():
        raise Invalid.at("buyer_email", "does not match the buyer account's e-mail [RFD-01]")
    if not periods:
        raise Invalid.at("periods", "name at least one billing period [RFD-01]")
    lines = session.scalars(
        select(InvoiceLine)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            Invoice.buyer_id == buyer.id,
            Invoice.period.in_(list(periods)),
            Invoice.kind != "credit_note",
            InvoiceLine.product_id == product.id,
            InvoiceLine.category == "software",
        )
        .order_by(Invoice.period, InvoiceLine.id)
    ).all()
    if not lines:
        raise Invalid.at("periods", f"no charges for {product_code} to {buyer_account} in {', '.join(periods)}")
    left = [(line, line.amount_cents - refunded_cents(session, line.id)) for line in lines]
    wanted = sum(cents for _, cents in left) if amount is None else to_cents(amount)
    available = sum(cents for _, cents in left)
    if wanted > available:
        raise Invalid.at("amount", f"{from_cents(wanted)} exceeds the {from_cents(available)} left to refund [RFD-05]")
    amounts = []
    for line, cents in left:
        take = min(cents, wanted)
        if take > 0:
            amounts.append((line, take))
            wanted -= take
    return issue(session, principal.actor, "seller", reason, amounts)


def annual_refund(session: Session, principal: Principal, purchase_id: int, mode: str, reason: str) -> Invoice:
    """RFD-03: the windows of an annual subscription; the refunded purchase ends now."""
    purchase = session.get(AnnualPurchase, purchase_id)
    if purchase is None:
        raise NotFound(f"no annual purchase {purchase_id}")
    subscription = session.get_one(Subscription, purchase.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    if principal.role is Role.SELLER and product.seller_id != principal.id:
        raise NotFound(f"no annual purchase {purchase_id}")
    if principal.role not in (Role.SELLER, Role.OPERATOR):
        raise Forbidden("annual refunds are made by the seller or marketplace support [RFD-03]")
    now = clock.now()
    age = now - purchase.starts_at
    line = session.scalar(
        select(InvoiceLine)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.source == f"upfront:annual:{purchase.id}")
    )
    if line is None:
        raise Invalid.at("purchase", "this annual purchase has no invoice to refund")
    if mode == "full":
        renewal = purchase.renews_id is not None
        window = RENEWAL_WINDOW if renewal else FULL_WINDOW
        if age > window:
            what = "14 days of an auto-renewal" if renewal else "48 hours of purchase"
            raise Invalid.at("mode", f"a full refund is given within {what} [RFD-03]")
        cents, kind = (
            line.amount_cents - refunded_cents(session, line.id),
            "annual_renewal" if renewal else "annual_full",
        )
    elif mode == "prorata":
        if principal.role is not Role.SELLER:
            raise Forbidden("a pro-rata annual refund is the seller's decision [RFD-03]")
        if age > PRORATA_WINDOW:
            raise Invalid.at("mode", "a pro-rata refund is given within 14 days of purchase [RFD-03]")
        term = purchase.ends_at - purchase.starts_at
        unused = (
            from_cents(line.amount_cents)
            * Decimal((purchase.ends_at - now).total_seconds())
            / Decimal(term.total_seconds())
        )
        cents, kind = to_cents(round_cents(unused)), "annual_prorata"
    else:
        raise Invalid.at("mode", "must be full or prorata")
    note = issue(session, principal.actor, kind, reason, [(line, cents)])
    purchase.ends_at = now  # RFD-03: a cancellation moves the end date; hours from now on are billed hourly
    purchase.auto_renew = False
    return note


def tax_refund(session: Session, principal: Principal) -> None:
    """RFD-04 needs a tax to refund; this marketplace calculates none."""
    raise Invalid.at("kind", "no tax was calculated on these charges, so there is no tax to refund [RFD-04]")


def mark_paid(session: Session, principal: Principal, invoice_id: int) -> Invoice:
    """The operator records that the buyer paid: finalized → paid."""
    invoice = _operator_invoice(session, principal, invoice_id)
    if invoice.state != "finalized" or invoice.kind == "credit_note":
        raise InvalidTransition(f"invoice {invoice_id} is {invoice.state}; only a finalized invoice is paid")
    invoice.state = "paid"
    audit.record(session, actor=principal.actor, action="invoice.pay", target_type="invoice", target_id=invoice.id,
                 before={"state": "finalized"}, after={"state": "paid"})  # fmt: skip
    return invoice


def void(session: Session, principal: Principal, invoice_id: int, reason: str) -> Invoice:
    """An unpaid invoice issued in error: finalized → void, reversed in full by a credit note (invoices are
    append-only; a paid one is refunded instead)."""
    invoice = _operator_invoice(session, principal, invoice_id)
    if invoice.state != "finalized" or invoice.kind == "credit_note":
        raise InvalidTransition(f"invoice {invoice_id} is {invoice.state}; a paid invoice is refunded, not voided")
    lines = session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)).all()
    amounts = [(line, line.amount_cents - refunded_cents(session, line.id)) for line in lines]
    note = issue(session, principal.actor, "void", reason, [(line, cents) for line, cents in amounts if cents > 0])
    invoice.state = "void"
    audit.record(session, actor=principal.actor, action="invoice.void", target_type="invoice", target_id=invoice.id,
                 before={"state": "finalized"}, after={"state": "void", "credit_note": note.id})  # fmt: skip
    return note


def _operator_invoice(session: Session, principal: Principal, invoice_id: int) -> Invoice:
    if principal.role is not Role.OPERATOR:
        raise Forbidden("invoice states are changed by the marketplace operator")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    return invoice
