"""The seller portal's webhook page reads: each product's endpoint, whether a signing secret is set, and the
delivery log (SUB-06) with each delivery's attempts and last error — only the calling seller's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.errors import Forbidden
from agora.models import Job, JobState, Product, Role, Seller, WebhookDelivery

LOG_SIZE = 50


def _seller(principal: Principal) -> int:
    if principal.role is not Role.SELLER:
        raise Forbidden("webhooks are the seller's")
    return principal.id


def endpoints(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Each of the seller's products with the URL its lifecycle events go to (none: no events sent)."""
    rows = session.scalars(select(Product).where(Product.seller_id == _seller(principal)).order_by(Product.title))
    return [
        {"code": p.code, "title": p.title, "state": p.state, "url": (p.listing or {}).get("webhook_url")} for p in rows
    ]


def has_secret(session: Session, principal: Principal) -> bool:
    return session.get_one(Seller, _seller(principal)).webhook_secret_encrypted is not None


def deliveries(session: Session, principal: Principal, limit: int = LOG_SIZE) -> list[dict[str, Any]]:
    """The newest deliveries, each `failed` once its job gave up (as the API reports it)."""
    rows = session.execute(
        select(WebhookDelivery, Product.code, Job)
        .join(Product, Product.id == WebhookDelivery.product_id)
        .outerjoin(Job, Job.id == WebhookDelivery.job_id)
        .where(WebhookDelivery.seller_id == _seller(principal))
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
    out = []
    for delivery, code, job in rows:
        failed = delivery.state != "delivered" and job is not None and job.state == JobState.FAILED
        out.append(
            {
                "id": delivery.id,
                "message_id": delivery.message_id,
                "product": code,
                "event_type": delivery.event_type,
                "url": delivery.url,
                "state": "failed" if failed else delivery.state,
                "attempts": job.attempts if job else 0,
                "last_error": job.last_error if job else None,
                "last_status": delivery.last_status,
                "created_at": delivery.created_at,
                "delivered_at": delivery.delivered_at,
            }
        )
    return out
