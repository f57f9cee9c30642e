from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.models import Buyer, Product, Subscription
from agora.notifications.service import notify


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
