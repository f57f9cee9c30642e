from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.models import Buyer, Product, Subscription
from agora.money import format_amount, format_price, to_cents
from agora.notifications.service import notify
from agora.subscriptions import annual


def _active_trial(session: Session, payload: dict[str, Any]) -> tuple[Subscription, Product, Buyer] | None:
    subscription = session.get(Subscription, payload["subscription_id"])
    if subscription is None or subscription.trial_ends_at is None or subscription.ended_at is not None:
        return None  # cancelled: no reminder, no conversion
    return (
        subscription,
        session.get_one(Product, subscription.product_id),
        session.get_one(Buyer, subscription.buyer_id),
    )


@jobs.handler("subscriptions.trial_reminder")
def trial_reminder(session: Session, payload: dict[str, Any]) -> None:
    """SUB-02: three days before the trial ends, the buyer is reminded."""
    found = _active_trial(session, payload)
    if found is None:
        return
    subscription, product, buyer = found
    assert subscription.trial_ends_at is not None
    notify(
        session,
        to=buyer.email,
        kind="trial_reminder",
        subject=f"Your free trial of {product.title} ends on {subscription.trial_ends_at:%Y-%m-%d}",
        body=(
            f"Your free trial of {product.title} ends on {subscription.trial_ends_at:%Y-%m-%d %H:%M} UTC; hourly "
            f"software charges begin then. To stop, cancel subscription {subscription.id} before that time."
        ),
    )


@jobs.handler("subscriptions.trial_end")
def trial_end(session: Session, payload: dict[str, Any]) -> None:
    """SUB-02: when the trial ends, hourly charges begin (billing reads the trial window); the buyer is told."""
    found = _active_trial(session, payload)
    if found is None or clock.now() < found[0].trial_ends_at:  # type: ignore[operator]
        return
    subscription, product, buyer = found
    notify(
        session,
        to=buyer.email,
        kind="trial_ended",
        subject=f"Your free trial of {product.title} has ended",
        body=f"Subscription {subscription.id} now pays the listed hourly software charges of {product.title}.",
    )


@jobs.handler("subscriptions.annual_renewal_notice")
def annual_renewal_notice(session: Session, payload: dict[str, Any]) -> None:
    """CHG-03: before an annual subscription auto-renews, the buyer is told the price that will apply."""
    found = annual.due_renewal(session, payload["annual_purchase_id"])
    if found is None:
        return
    purchase, subscription, product, buyer = found
    price = annual.renewal_price(session, purchase)
    if price is None:
        detail = f"{purchase.instance_type} is no longer sold annually, so it will not renew; usage becomes hourly."
    else:
        total = format_amount(to_cents(price * purchase.quantity))
        detail = (
            f"It renews for 12 months at {format_price(price.normalize())} per {purchase.instance_type} instance, "
            f"{total} for {purchase.quantity}, invoiced on renewal. Turn off auto-renewal to let it end."
        )
    notify(
        session,
        to=buyer.email,
        kind="renewal_notice",
        subject=f"Your annual {product.title} subscription renews on {purchase.ends_at:%Y-%m-%d}",
        body=f"Annual purchase {purchase.id} of {product.title} (subscription {subscription.id}) ends on "
        f"{purchase.ends_at:%Y-%m-%d %H:%M} UTC. {detail}",
    )


@jobs.handler("subscriptions.annual_renew")
def annual_renew(session: Session, payload: dict[str, Any]) -> None:
    """SUB-03: at the end of the 12 months an auto-renewing purchase renews (at the CHG-03 price);
    otherwise the instances are billed hourly again."""
    found = annual.due_renewal(session, payload["annual_purchase_id"])
    if found is None:
        return
    purchase, subscription, _, _ = found
    price = annual.renewal_price(session, purchase)
    if price is None:
        return
    annual.record(
        session,
        subscription,
        purchase.instance_type,
        purchase.quantity,
        price,
        auto_renew=True,
        actor="system:renewals",
        at=purchase.ends_at,
        renews=purchase,
    )
