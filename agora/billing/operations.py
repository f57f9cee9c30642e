"""The operator's view of money: billing periods and their runs, invoice search, refunds with the rule that
allowed each, annual refund windows still open, and payouts per seller and month. The operator console
reads here; the acts themselves (close, mark paid, void) are `runs.request_close` and `refunds`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.billing import refunds, runs, service
from agora.billing.rating import month_bounds, next_period, period_of
from agora.errors import Forbidden, Invalid
from agora.models import (
    AnnualPurchase,
    BillingPeriod,
    Buyer,
    Disbursement,
    Invoice,
    InvoiceLine,
    Job,
    JobState,
    Product,
    Refund,
    Role,
    Seller,
    Subscription,
)
from agora.money import from_cents

PAGE = 100
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
INVOICE_STATES = ("finalized", "paid", "void")
INVOICE_KINDS = ("monthly", "upfront", "credit_note")

# Which rule allowed each kind of refund, in words an operator can check against RULES.md.
RULE_OF_KIND = {
    "seller": ("RFD-01", "approved by the seller"),
    "annual_full": ("RFD-03", "full refund within 48 hours of an annual purchase"),
    "annual_prorata": ("RFD-03", "pro-rata refund within 14 days of an annual purchase (seller only)"),
    "annual_renewal": ("RFD-03", "full refund within 14 days of an auto-renewal"),
    "trial_conversion": ("RFD-02", "software charges within 7 days after a free trial converted"),
    "metering_error": ("RFD-02", "charges caused by usage the seller confirmed as metering errors"),
    "preview": ("BIL-05", "ML product in preview: the buyer is refunded"),
    "void": ("Void", "the invoice was voided by the operator"),
}


@dataclass
class PeriodRow:
    period: str
    state: str  # open | closing | closed
    ends_at: datetime
    closes_at: datetime  # when the scheduled run is due (BIL-03: 24 hours after the month ends)
    invoiced: int
    to_invoice: int
    invoices: int
    total_cents: int
    closed_at: datetime | None

    @property
    def ended(self) -> bool:
        return clock.now() >= self.ends_at

    @property
    def overdue(self) -> bool:
        return clock.now() >= self.closes_at

    @property
    def total(self) -> str:
        return f"{from_cents(self.total_cents):.2f}"


def _months(first: str, last: str) -> list[str]:
    months = [first]
    while months[-1] < last:
        months.append(next_period(months[-1]))
    return months


def _running(session: Session, months: list[str]) -> set[str]:
    """The months whose run is queued and due, or being worked, right now."""
    now = clock.now()
    rows = session.execute(
        select(Job.state, Job.run_at, Job.payload).where(
            Job.name.in_(runs.BILLING_JOBS), Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value])
        )
    )
    return {
        payload.get("period")
        for state, run_at, payload in rows
        if payload.get("period") in months and (state == JobState.RUNNING.value or run_at <= now)
    }


def _rows(session: Session, months: list[str]) -> list[PeriodRow]:
    """Each month's state and progress, read with a handful of queries whatever the number of months."""
    closed = {p.period: p for p in session.scalars(select(BillingPeriod).where(BillingPeriod.period.in_(months)))}
    invoices = {
        period: (count, int(cents))
        for period, count, cents in session.execute(
            select(Invoice.period, func.count(), func.coalesce(func.sum(Invoice.total_cents), 0))
            .where(Invoice.period.in_(months), Invoice.kind == "monthly")
            .group_by(Invoice.period)
        )
    }
    running = _running(session, months)
    out = []
    for period in months:
        _, end = month_bounds(period)
        done, total = runs.invoiced_in(session, period) if period in closed or period in running else (0, 0)
        if period in running or (period in closed and done < total):
            state = "closing"
        elif period in closed:
            state = "closed"
        else:
            state = "open"
        count, cents = invoices.get(period, (0, 0))
        closed_at = closed[period].closed_at if period in closed else None
        out.append(PeriodRow(period, state, end, end + service.CLOSE_DELAY, done, total, count, cents, closed_at))
    return out


def period_row(session: Session, period: str) -> PeriodRow:
    return _rows(session, [period])[0]


def periods(session: Session) -> list[PeriodRow]:
    """Every month from the first subscription's to the current one (at most two years), newest first."""
    now = clock.now()
    first = session.scalar(select(func.min(Subscription.started_at)))
    closed_first = session.scalar(select(func.min(BillingPeriod.period)))
    start = min(p for p in (period_of(first) if first else None, closed_first, period_of(now)) if p)
    months = _months(start, period_of(now))[-24:]
    return _rows(session, list(reversed(months)))


def start_close(session: Session, principal: Principal, period: str) -> bool:
    """The operator closes `period` now instead of waiting for its scheduled run. Safe to repeat (BIL-03):
    a second request finds the first run, and a run only writes what is not there yet."""
    if principal.role is not Role.OPERATOR:
        raise Forbidden("billing runs are started by the marketplace operator")
    if not MONTH.fullmatch(period):
        raise Invalid.at("period", "is a month, YYYY-MM")
    try:
        queued = runs.request_close(session, period)
    except runs.PeriodOpen:
        raise Invalid.at("period", f"{period} has not ended yet: a month is closed after it ends") from None
    audit.record(
        session,
        actor=principal.actor,
        action="billing.close",
        target_type="period",
        target_id=period,
        after={"period": period, "run": "queued" if queued else "already requested"},
    )
    return queued


# --- invoices ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceSearch:
    buyer: str | None = None  # account id
    seller: str | None = None  # handle: invoices with a line of its products
    period: str | None = None
    state: str | None = None
    kind: str | None = None


def search_invoices(session: Session, f: InvoiceSearch, limit: int = PAGE) -> list[dict[str, Any]]:
    """Newest first, each in the API's invoice shape, with the credit notes that correct it."""
    query = select(Invoice)
    if f.buyer:
        query = query.where(Invoice.buyer_id.in_(select(Buyer.id).where(Buyer.account == f.buyer)))
    if f.seller:
        sellers = select(Seller.id).where(Seller.handle == f.seller)
        query = query.where(Invoice.id.in_(select(InvoiceLine.invoice_id).where(InvoiceLine.seller_id.in_(sellers))))
    if f.period:
        query = query.where(Invoice.period == f.period)
    if f.state:
        query = query.where(Invoice.state == f.state)
    if f.kind:
        query = query.where(Invoice.kind == f.kind)
    found = list(session.scalars(query.order_by(Invoice.id.desc()).limit(limit)))
    documents = service.invoices_json(session, found)
    notes: dict[int, list[int]] = {}
    ids = [i.id for i in found]
    for note_id, corrects in session.execute(
        select(Invoice.id, Invoice.corrects_id).where(Invoice.corrects_id.in_(ids)).order_by(Invoice.id)
    ):
        if corrects is not None:
            notes.setdefault(corrects, []).append(note_id)
    for document in documents:
        document["credit_notes"] = notes.get(document["id"], [])
    return documents


def invoice_choices(session: Session) -> dict[str, list[str]]:
    return {
        "periods": list(session.scalars(select(Invoice.period).distinct().order_by(Invoice.period.desc()))),
        "sellers": list(session.scalars(select(Seller.handle).order_by(Seller.handle))),
        "buyers": list(session.scalars(select(Buyer.account).order_by(Buyer.account))),
    }


# --- refunds and payouts -------------------------------------------------------------------------------------


@dataclass
class RefundRow:
    id: int
    at: datetime
    credit_note: int
    invoice: int
    buyer: str
    product: str
    charge: str
    amount_cents: int
    kind: str
    rule: str
    rule_words: str
    actor: str
    reason: str

    @property
    def amount(self) -> str:
        return f"{from_cents(self.amount_cents):.2f}"


def refunds_issued(session: Session, limit: int = PAGE) -> list[RefundRow]:
    rows = session.execute(
        select(Refund, InvoiceLine, Product.code, Buyer.account)
        .join(InvoiceLine, InvoiceLine.id == Refund.invoice_line_id)
        .join(Product, Product.id == InvoiceLine.product_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .order_by(Refund.id.desc())
        .limit(limit)
    )
    out = []
    for refund, line, code, account in rows:
        rule, words = RULE_OF_KIND.get(refund.kind, ("—", refund.kind))
        out.append(
            RefundRow(
                refund.id,
                refund.created_at,
                refund.credit_note_id,
                line.invoice_id,
                account,
                code,
                line.charge,
                refund.amount_cents,
                refund.kind,
                rule,
                words,
                refund.actor,
                refund.reason,
            )
        )
    return out


@dataclass
class Window:
    purchase: int
    buyer: str
    product: str
    instance_type: str
    quantity: int
    amount_cents: int
    starts_at: datetime
    renewal: bool
    windows: list[tuple[str, datetime]]  # (what may still be refunded, until when), still open
    refunded_cents: int

    @property
    def amount(self) -> str:
        return f"{from_cents(self.amount_cents):.2f}"

    @property
    def refunded(self) -> str:
        return f"{from_cents(self.refunded_cents):.2f}"


def open_windows(session: Session) -> list[Window]:
    """Annual purchases whose refund windows (RFD-03) are still open: what may still be refunded, and by
    when. Nothing here is owed until the seller (or support, for a full refund) asks for it."""
    now = clock.now()
    horizon = now - max(refunds.PRORATA_WINDOW, refunds.RENEWAL_WINDOW, refunds.FULL_WINDOW)
    rows = session.execute(
        select(AnnualPurchase, Subscription.buyer_id, Product.code, Buyer.account)
        .join(Subscription, Subscription.id == AnnualPurchase.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(AnnualPurchase.starts_at > horizon)
        .order_by(AnnualPurchase.starts_at.desc())
    )
    out = []
    for purchase, _, code, account in rows:
        windows: list[tuple[str, datetime]] = []
        if purchase.renews_id is not None:
            windows.append(
                ("full refund of the renewal (support or seller)", purchase.starts_at + refunds.RENEWAL_WINDOW)
            )
        else:
            windows.append(("full refund (support or seller)", purchase.starts_at + refunds.FULL_WINDOW))
            windows.append(("pro-rata refund (seller only)", purchase.starts_at + refunds.PRORATA_WINDOW))
        windows.append(("downgrade (seller only)", purchase.starts_at + timedelta(days=30)))
        still = [(what, until) for what, until in windows if until > now]
        if not still:
            continue
        lines = select(InvoiceLine.id).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        lines = lines.where(Invoice.source == f"upfront:annual:{purchase.id}")
        refunded = session.scalar(
            select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(Refund.invoice_line_id.in_(lines))
        )
        out.append(
            Window(
                purchase.id,
                account,
                code,
                purchase.instance_type,
                purchase.quantity,
                purchase.amount_cents,
                purchase.starts_at,
                purchase.renews_id is not None,
                still,
                int(refunded or 0),
            )
        )
    return out


@dataclass
class PayoutRow:
    period: str
    seller: str
    seller_name: str
    gross: str
    fee: str
    net: str


def disbursements(session: Session, limit: int = 240) -> list[PayoutRow]:
    rows = session.execute(
        select(Disbursement, Seller.handle, Seller.name)
        .join(Seller, Seller.id == Disbursement.seller_id)
        .order_by(Disbursement.period.desc(), Seller.handle)
        .limit(limit)
    )
    return [
        PayoutRow(d.period, handle, name, *(f"{from_cents(c):.2f}" for c in (d.gross_cents, d.fee_cents, d.net_cents)))
        for d, handle, name in rows
    ]
