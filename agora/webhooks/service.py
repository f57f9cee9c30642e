"""Subscription lifecycle events to sellers (SUB-06), signed per the Standard Webhooks specification and
delivered by durable jobs with backoff; every delivery is logged and can be replayed."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.config import fernet_key
from agora.errors import NotFound
from agora.models import Job, Product, Role, Seller, WebhookDelivery

EVENTS = ("subscribe-success", "unsubscribe-pending", "unsubscribe-success", "entitlement-updated")
# 2 s, 4 s … capped at 1 h between tries: 16 attempts keep trying for about five hours.
MAX_ATTEMPTS = 16


def _fernet() -> Fernet:
    return Fernet(fernet_key("webhook-secrets"))


def rotate_secret(session: Session, principal: Principal) -> str:
    """A new signing secret for the seller's endpoints, shown once."""
    seller = session.get_one(Seller, principal.id)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    seller.webhook_secret_encrypted = _fernet().encrypt(secret.encode()).decode()
    audit.record(
        session, actor=principal.actor, action="webhook_secret.rotate", target_type="seller", target_id=seller.handle
    )
    return secret


def secret_of(seller: Seller) -> str | None:
    if seller.webhook_secret_encrypted is None:
        return None
    return _fernet().decrypt(seller.webhook_secret_encrypted.encode()).decode()


def emit(
    session: Session, product: Product, event_type: str, data: dict[str, Any], *, at: datetime | None = None
) -> WebhookDelivery | None:
    """Queue `event_type` for the product's webhook endpoint, if it has one (in the caller's transaction)."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    url = product.listing.get("webhook_url")
    if not url:
        return None
    when = at or clock.now()
    delivery = WebhookDelivery(
        message_id=f"msg_{secrets.token_hex(12)}",
        seller_id=product.seller_id,
        product_id=product.id,
        event_type=event_type,
        url=url,
        payload={"type": event_type, "timestamp": when.isoformat(), "data": data},
        state="pending",
    )
    session.add(delivery)
    session.flush()
    _schedule(session, delivery, when)
    return delivery


def _schedule(session: Session, delivery: WebhookDelivery, when: datetime) -> None:
    job = jobs.enqueue(
        session, "webhooks.deliver", {"delivery_id": delivery.id}, run_at=when, max_attempts=MAX_ATTEMPTS
    )
    delivery.job_id = job.id if job else None


def visible(session: Session, principal: Principal, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or (principal.role is Role.SELLER and delivery.seller_id != principal.id):
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery


def replay(session: Session, principal: Principal, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again (same message id, so receivers can deduplicate), whatever its state."""
    delivery = visible(session, principal, delivery_id)
    delivery.state = "pending"
    _schedule(session, delivery, clock.now())
    audit.record(
        session, actor=principal.actor, action="webhook.replay", target_type="webhook_delivery", target_id=delivery.id
    )
    return delivery


def attempts_of(session: Session, delivery: WebhookDelivery) -> tuple[int, str | None, str | None]:
    """(attempts, job state, last error) of the delivery's current job."""
    job = session.get(Job, delivery.job_id) if delivery.job_id else None
    return (job.attempts, job.state, job.last_error) if job else (0, None, None)


def body_of(delivery: WebhookDelivery) -> str:
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
