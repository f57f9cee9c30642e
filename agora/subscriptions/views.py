"""What the buyer's console reads about subscriptions: the list with states and dates, one subscription's
terms, purchases and usage per day, and what cancelling it would cost (SUB-04, RFD-02, RFD-03). Reads
only; the web pages call these so that no route or template queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.billing import rating
from agora.billing.refunds import FULL_WINDOW, PRORATA_WINDOW
from agora.billing.service import rating_terms
from agora.metering.platform import runs_between
from agora.metering.records import USAGE, from_epoch
from agora.models import AnnualPurchase, Buyer, Contract, InstanceRun, Offer, Product, Subscription, TrialUse
from agora.money import from_cents
from agora.pricing import service as pricing
from agora.subscriptions import contracts
from agora.subscriptions.service import visible

DAY = 86_400
USAGE_DAYS = 30


@dataclass(frozen=True)
class Summary:
    id: int
    product_code: str
    product_title: str
    state: str  # trial | active | ended
    started_at: datetime
    ended_at: datetime | None
    trial_ends_at: datetime | None
    renewals: list[tuple[str, datetime]]  # ("1 × m5.large annual renews", when), ("Contract ends", when)
    offer: str | None


def _renewals(session: Session, subscription: Subscription) -> list[tuple[str, datetime]]:
    now = clock.now()
    out: list[tuple[str, datetime]] = []
    for purchase in session.scalars(
        select(AnnualPurchase)
        .where(AnnualPurchase.subscription_id == subscription.id, AnnualPurchase.ends_at > now)
        .order_by(AnnualPurchase.ends_at)
    ):
        verb = "renews" if purchase.auto_renew and subscription.ended_at is None else "ends"
        out.append((f"{purchase.quantity} × {purchase.instance_type} annual {verb}", purchase.ends_at))
    contract = contracts.active_contract(session, subscription)
    if contract is not None:
        out.append(("Contract ends", contract.ends_at))
    if subscription.offer_id is not None:
        offer = session.get_one(Offer, subscription.offer_id)
        if offer.accepted_at is not None:
            out.append(("Private offer terms end", offer.accepted_at + timedelta(days=offer.duration_days)))
    return out


def state_of(subscription: Subscription, now: datetime | None = None) -> str:
    now = now or clock.now()
    if subscription.ended_at is not None:
        return "ended"
    if subscription.trial_ends_at is not None and now < subscription.trial_ends_at:
        return "trial"
    return "active"


def summaries(session: Session, principal: Principal) -> list[Summary]:
    """The buyer's subscriptions, active ones first, newest first within each."""
    rows = session.execute(
        select(Subscription, Product)
        .join(Product, Product.id == Subscription.product_id)
        .where(Subscription.buyer_id == principal.id)
        .order_by(Subscription.ended_at.is_not(None), Subscription.started_at.desc(), Subscription.id.desc())
    ).all()
    out = []
    for subscription, product in rows:
        offer = session.get(Offer, subscription.offer_id) if subscription.offer_id else None
        out.append(
            Summary(
                id=subscription.id,
                product_code=product.code,
                product_title=product.title,
                state=state_of(subscription),
                started_at=subscription.started_at,
                ended_at=subscription.ended_at,
                trial_ends_at=subscription.trial_ends_at,
                renewals=_renewals(session, subscription),
                offer=offer.public_id if offer else None,
            )
        )
    return out


def open_offers(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Private offers extended to the buyer and still open (OFR-03)."""
    rows = session.execute(
        select(Offer, Product)
        .join(Product, Product.id == Offer.product_id)
        .where(Offer.buyer_id == principal.id, Offer.state == "extended", Offer.accept_by > clock.now())
        .order_by(Offer.accept_by)
    )
    return [{"id": o.public_id, "product": p.title, "accept_by": o.accept_by} for o, p in rows]


# --- subscribing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    """What the subscribe page tells a buyer before they choose: refused (and why), or the trial they get."""

    refused: str | None
    active_subscription: int | None
    trial_days: int | None
    trial_ends_at: datetime | None
    had_trial: bool


def eligibility(session: Session, principal: Principal, product: Product) -> Eligibility:
    buyer = session.get_one(Buyer, principal.id)
    refused = None
    if product.enterprise_only and not buyer.enterprise:
        refused = "enterprise"  # LST-09
    active = session.scalar(
        select(Subscription.id).where(
            Subscription.buyer_id == buyer.id, Subscription.product_id == product.id, Subscription.ended_at.is_(None)
        )
    )
    days = (product.pricing or {}).get("free_trial_days")
    had = (
        session.scalar(select(TrialUse.id).where(TrialUse.buyer_id == buyer.id, TrialUse.product_id == product.id))
        is not None
    )
    ends = clock.now() + timedelta(days=days) if days and not had else None
    return Eligibility(refused, active, days, ends, had)


# --- one subscription -----------------------------------------------------------------------------------------


@dataclass
class Detail:
    subscription: Subscription
    product: Product
    state: str
    pricing: dict[str, Any]
    offer: Offer | None
    entitlements: list[dict[str, Any]]
    contract: Contract | None
    annual: list[AnnualPurchase]
    renewals: list[tuple[str, datetime]]
    runs: list[InstanceRun]
    usage: dict[str, Any] = field(default_factory=dict)


def detail(session: Session, principal: Principal, subscription_id: int) -> Detail:
    subscription = visible(session, principal, subscription_id)
    product = session.get_one(Product, subscription.product_id)
    now = clock.now()
    contract = session.scalar(
        select(Contract).where(Contract.subscription_id == subscription.id).order_by(Contract.id.desc())
    )
    annual = list(
        session.scalars(
            select(AnnualPurchase).where(AnnualPurchase.subscription_id == subscription.id).order_by(AnnualPurchase.id)
        )
    )
    return Detail(
        subscription=subscription,
        product=product,
        state=state_of(subscription, now),
        pricing=pricing.price_for(session, subscription, now).pricing,
        offer=session.get(Offer, subscription.offer_id) if subscription.offer_id else None,
        entitlements=[
            {"dimension": d, "quantity": q, "expires_at": contract.ends_at}
            for d, q in sorted(contracts.entitlements_of(session, contract).items())
        ]
        if contract
        else [],
        contract=contract,
        annual=annual,
        renewals=_renewals(session, subscription),
        runs=runs_between(session, subscription.started_at, now + timedelta(days=1), subscription_id=subscription.id),
        usage=daily_usage(session, subscription, now),
    )


def daily_usage(session: Session, subscription: Subscription, now: datetime, days: int = USAGE_DAYS) -> dict[str, Any]:
    """Usage of each dimension per UTC day over the last `days` days (today included), zero-filled: the
    chart's data and its table."""
    first = (now - timedelta(days=days - 1)).date()
    start = int(datetime(first.year, first.month, first.day, tzinfo=now.tzinfo).timestamp())
    c = USAGE.c
    day = (c.period_start - c.period_start % DAY).label("day")
    rows = session.execute(
        select(day, c.dimension, func.sum(c.quantity))
        .where(c.subscription_id == subscription.id, c.period_start >= start)
        .group_by(day, c.dimension)
    )
    totals: dict[str, dict[date, int]] = defaultdict(dict)
    for epoch_day, dimension, quantity in rows:
        totals[dimension][from_epoch(int(epoch_day)).date()] = int(quantity)
    dates = [first + timedelta(days=n) for n in range(days)]
    dimensions = sorted(totals)
    return {
        "days": [d.isoformat() for d in dates],
        "series": [{"dimension": name, "values": [totals[name].get(d, 0) for d in dates]} for name in dimensions],
        "rows": [
            {"day": d, "values": [totals[name].get(d, 0) for name in dimensions]}
            for d in dates
            if any(totals[name].get(d) for name in dimensions)
        ],
        "dimensions": dimensions,
    }


# --- what cancelling costs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelPoint:
    title: str
    text: str
    amount: str | None = None


def cancellation(session: Session, principal: Principal, subscription_id: int) -> list[CancelPoint]:
    """What cancelling now would cost or give back, in the buyer's words, from the same rating core and
    refund windows billing uses. Changes nothing."""
    subscription = visible(session, principal, subscription_id)
    if subscription.ended_at is not None:
        return []
    now = clock.now()
    document = pricing.price_for(session, subscription, now).pricing
    points: list[CancelPoint] = []
    terms = replace(rating_terms(session, [subscription])[subscription.id], ended_at=now)
    period = rating.period_of(now)
    fee = [line for line in rating.rate(terms, [], period) if line.charge == "monthly"]
    if fee:
        line = fee[0]
        points.append(
            CancelPoint(
                "Monthly fee",
                f"This month's fee is pro-rated to the days you were subscribed ({line.quantity} day"
                f"{'s' if line.quantity != 1 else ''} at 1/30 of the fee each, today included) and billed on this"
                " month's invoice. No monthly fee after that. [SUB-04]",
                f"{line.amount:.2f}",
            )
        )
    trial_end = subscription.trial_ends_at
    if trial_end is not None and now < trial_end:
        points.append(
            CancelPoint(
                "Free trial",
                f"Your free trial runs until {trial_end:%-d %B %Y, %H:%M} UTC. Cancelling now costs nothing for the"
                " software; infrastructure already used is still charged.",
            )
        )
    elif trial_end is not None and now <= trial_end + rating.REFUND_AFTER_TRIAL:
        until = trial_end + rating.REFUND_AFTER_TRIAL
        points.append(
            CancelPoint(
                "Trial converted to paid",
                f"Your trial ended on {trial_end:%-d %B %Y}. Cancelling before {until:%-d %B %Y, %H:%M} UTC refunds"
                " the hourly software charges since then automatically. [RFD-02]",
            )
        )
    if document.get("hourly") or document.get("ml"):
        points.append(
            CancelPoint(
                "Hourly charges",
                "Your running instances stop being metered the moment you cancel; hours already run are billed on"
                " this month's invoice.",
            )
        )
    if document.get("usage") or document.get("tiered"):
        points.append(
            CancelPoint(
                "Usage",
                "Usage reported up to now is billed on this month's invoice; nothing is metered after you cancel.",
            )
        )
    for purchase in session.scalars(
        select(AnnualPurchase).where(AnnualPurchase.subscription_id == subscription.id, AnnualPurchase.ends_at > now)
    ):
        full_until = purchase.starts_at + FULL_WINDOW
        prorata_until = purchase.starts_at + PRORATA_WINDOW
        if now <= full_until:
            window = (
                f"You bought it less than 48 hours ago: until {full_until:%-d %B %Y, %H:%M} UTC the seller or"
                " marketplace support can refund it in full."
            )
        elif now <= prorata_until:
            window = (
                f"Until {prorata_until:%-d %B %Y} the seller can refund the unused part pro rata; after that it is"
                " not refundable."
            )
        else:
            window = "Its refund windows (48 hours in full, 14 days pro rata) have passed."
        points.append(
            CancelPoint(
                f"Annual subscription: {purchase.quantity} × {purchase.instance_type}",
                f"Paid up front until {purchase.ends_at:%-d %B %Y}; cancelling does not refund it by itself and it"
                f" will not renew. {window} Ask through the seller's refund contact. [RFD-03]",
                f"{from_cents(purchase.amount_cents):.2f}",
            )
        )
    contract = contracts.active_contract(session, subscription)
    if contract is not None:
        points.append(
            CancelPoint(
                "Contract",
                f"The contract was paid up front until {contract.ends_at:%-d %B %Y}. Cancelling ends your entitlements"
                " and license now and does not refund the contract; refunds follow the seller's refund policy.",
            )
        )
    if subscription.offer_id is not None:
        offer = session.get_one(Offer, subscription.offer_id)
        if offer.schedule:
            points.append(
                CancelPoint(
                    "Private offer",
                    "You accepted a private offer with a payment schedule: instalments stay due as agreed.",
                )
            )
    if not points:
        points.append(CancelPoint("Nothing to pay", "This subscription has no charges: cancelling costs nothing."))
    return points
