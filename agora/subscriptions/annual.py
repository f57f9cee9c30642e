"""Annual purchases (SUB-03) and their renewals (CHG-03): bought per instance type for 12 months and
invoiced in full at purchase; an auto-renewal takes a new price only if it was set at least 90 days
before the renewal date, and the buyer is told the price that will apply before it renews."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.billing import service as billing
from agora.errors import Conflict, Forbidden, Invalid, NotFound
from agora.models import AnnualPurchase, Buyer, PriceVersion, Product, Role, Subscription
from agora.money import format_amount, format_price
from agora.pricing import service as pricing
from agora.pricing.changes import renewal_takes_new_price
from agora.subscriptions.contracts import add_months
from agora.subscriptions.service import visible
from agora.validation import charge_cents

RENEWAL_NOTICE_BEFORE = timedelta(days=30)


def _annual_price(pricing_document: dict[str, Any], instance_type: str) -> Decimal | None:
    value = (pricing_document.get("annual") or {}).get(instance_type)
    return Decimal(value) if value is not None else None


def buy(
    session: Session,
    principal: Principal,
    subscription_id: int,
    instance_type: str,
    quantity: int,
    *,
    auto_renew: bool,
) -> AnnualPurchase:
    subscription = visible(session, principal, subscription_id)
    if principal.role is not Role.BUYER:
        raise Forbidden("annual subscriptions are bought by the subscription's buyer")
    if subscription.ended_at is not None:
        raise Conflict(f"subscription {subscription_id} is cancelled")
    if quantity <= 0:
        raise Invalid.at("quantity", "must be a positive whole number", "positive")
    price = _annual_price(pricing.price_for(session, subscription, clock.now()).pricing, instance_type)
    if price is None:
        raise Invalid.at(
            "instance_type", f"{instance_type!r} has no annual price on this product [SUB-03]", "no annual price"
        )
    return record(session, subscription, instance_type, quantity, price, auto_renew=auto_renew, actor=principal.actor)


def record(
    session: Session,
    subscription: Subscription,
    instance_type: str,
    quantity: int,
    unit_price: Decimal,
    *,
    auto_renew: bool,
    actor: str,
    at: datetime | None = None,
    renews: AnnualPurchase | None = None,
) -> AnnualPurchase:
    start = at or clock.now()
    purchase = AnnualPurchase(
        subscription_id=subscription.id,
        instance_type=instance_type,
        quantity=quantity,
        unit_price=unit_price,
        amount_cents=charge_cents(unit_price * quantity, "quantity"),
        starts_at=start,
        ends_at=add_months(start, 12),
        auto_renew=auto_renew,
        renews_id=renews.id if renews else None,
    )
    session.add(purchase)
    session.flush()
    billing.invoice_annual_purchase(session, purchase)  # BIL-02: invoiced in full at purchase
    _schedule_renewal(session, purchase)
    audit.record(
        session,
        actor=actor,
        action="annual.renew" if renews else "annual.purchase",
        target_type="subscription",
        target_id=subscription.id,
        after={
            "annual_purchase": purchase.id,
            "instance_type": instance_type,
            "quantity": quantity,
            "unit_price": format_price(unit_price),
            "amount_cents": purchase.amount_cents,
            "ends_at": purchase.ends_at.isoformat(),
            "auto_renew": auto_renew,
        },
    )
    return purchase


def _schedule_renewal(session: Session, purchase: AnnualPurchase) -> None:
    if not purchase.auto_renew:
        return
    payload = {"annual_purchase_id": purchase.id}
    notice_at = max(clock.now(), purchase.ends_at - RENEWAL_NOTICE_BEFORE)
    jobs.enqueue(
        session,
        "subscriptions.annual_renewal_notice",
        payload,
        run_at=notice_at,
        dedupe_key=f"annual-notice:{purchase.id}",
    )
    jobs.enqueue(
        session,
        "subscriptions.annual_renew",
        payload,
        run_at=purchase.ends_at,
        dedupe_key=f"annual-renew:{purchase.id}",
    )


def set_auto_renew(session: Session, principal: Principal, purchase_id: int, auto_renew: bool) -> AnnualPurchase:
    purchase = session.get(AnnualPurchase, purchase_id)
    if purchase is None:
        raise NotFound(f"no annual purchase {purchase_id}")
    visible(session, principal, purchase.subscription_id)
    if principal.role is not Role.BUYER:
        raise Forbidden("auto-renewal is the buyer's choice")
    before = purchase.auto_renew
    purchase.auto_renew = auto_renew
    if auto_renew and not before:
        _schedule_renewal(session, purchase)
    audit.record(
        session,
        actor=principal.actor,
        action="annual.auto_renew",
        target_type="annual_purchase",
        target_id=purchase.id,
        before={"auto_renew": before},
        after={"auto_renew": auto_renew},
    )
    return purchase


def renewal_price(session: Session, purchase: AnnualPurchase) -> Decimal | None:
    """CHG-03: the price a renewal on `purchase.ends_at` takes — the newest annual price set at least 90 days
    before it, or else the price the purchase was bought at. None if the type is no longer sold annually."""
    subscription = session.get_one(Subscription, purchase.subscription_id)
    versions = list(
        session.scalars(
            select(PriceVersion)
            .where(PriceVersion.product_id == subscription.product_id, PriceVersion.noticed_at > purchase.starts_at)
            .order_by(PriceVersion.number.desc())
        )
    )
    renewal_on = purchase.ends_at.date()
    for version in versions:
        if renewal_takes_new_price(version.noticed_at.date(), renewal_on):
            return _annual_price(version.pricing, purchase.instance_type)
    return purchase.unit_price


def due_renewal(session: Session, purchase_id: int) -> tuple[AnnualPurchase, Subscription, Product, Buyer] | None:
    purchase = session.get(AnnualPurchase, purchase_id)
    if purchase is None or not purchase.auto_renew:
        return None
    subscription = session.get_one(Subscription, purchase.subscription_id)
    if subscription.ended_at is not None:
        return None
    renewed = session.scalar(select(AnnualPurchase.id).where(AnnualPurchase.renews_id == purchase.id))
    if renewed is not None:
        return None
    return (
        purchase,
        subscription,
        session.get_one(Product, subscription.product_id),
        session.get_one(Buyer, subscription.buyer_id),
    )


def purchase_out(purchase: AnnualPurchase) -> dict[str, Any]:
    return {
        "id": purchase.id,
        "subscription_id": purchase.subscription_id,
        "instance_type": purchase.instance_type,
        "quantity": purchase.quantity,
        "unit_price": format_price(purchase.unit_price.normalize()),
        "amount": format_amount(purchase.amount_cents),
        "starts_at": purchase.starts_at.isoformat(),
        "ends_at": purchase.ends_at.isoformat(),
        "auto_renew": purchase.auto_renew,
        "renews": purchase.renews_id,
    }
