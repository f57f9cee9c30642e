from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.auth import Principal, require
from agora.deps import Uow
from agora.models import JobState, Product, Role, WebhookDelivery
from agora.paging import Page, Paging
from agora.validation import Id
from agora.webhooks import service

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
seller_only = require(Role.SELLER)
manager = require(Role.SELLER, Role.OPERATOR)


class SecretOut(BaseModel):
    secret: str
    note: str = "Verify deliveries with this Standard Webhooks secret. It is shown once; rotating replaces it."


@router.post("/secret", response_model=SecretOut)
def rotate_secret(session: Uow, principal: Principal = Depends(seller_only)) -> SecretOut:
    return SecretOut(secret=service.rotate_secret(session, principal))


class DeliveryOut(BaseModel):
    id: int
    message_id: str
    product: str
    event_type: str
    url: str
    payload: dict[str, Any]
    state: str
    attempts: int
    last_error: str | None
    last_status: int | None
    created_at: datetime
    delivered_at: datetime | None


def _out(session: Session, delivery: WebhookDelivery) -> DeliveryOut:
    attempts, job_state, last_error = service.attempts_of(session, delivery)
    state = "failed" if delivery.state != "delivered" and job_state == JobState.FAILED else delivery.state
    return DeliveryOut(
        id=delivery.id,
        message_id=delivery.message_id,
        product=session.get_one(Product, delivery.product_id).code,
        event_type=delivery.event_type,
        url=delivery.url,
        payload=delivery.payload,
        state=state,
        attempts=attempts,
        last_error=last_error,
        last_status=delivery.last_status,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@router.get("/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    session: Uow, principal: Principal = Depends(manager), page: Page = Depends(Paging)
) -> list[DeliveryOut]:
    """The delivery log: the seller's own deliveries (operators see all), newest first."""
    query = select(WebhookDelivery)
    if principal.role is Role.SELLER:
        query = query.where(WebhookDelivery.seller_id == principal.id)
    return [_out(session, d) for d in page.scalars(session, query, [WebhookDelivery.id], newest_first=True)]


@router.post("/deliveries/{delivery_id}/replay", response_model=DeliveryOut)
def replay(delivery_id: Id, session: Uow, principal: Principal = Depends(seller_only)) -> DeliveryOut:
    return _out(session, service.replay(session, principal, delivery_id))
