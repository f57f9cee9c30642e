from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from agora import clock, jobs, outbound
from agora.models import Seller, WebhookDelivery
from agora.webhooks.service import body_of, secret_of

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class DeliveryFailed(Exception):
    pass


@jobs.handler("webhooks.deliver")
def deliver(session: Session, payload: dict[str, Any]) -> None:
    """POST the signed event; anything but a 2xx is a failure the job retries with backoff. The HTTP call
    happens before any write, so a slow endpoint never holds a database lock."""
    delivery = session.get(WebhookDelivery, payload["delivery_id"])
    if delivery is None or delivery.state == "delivered":
        return
    seller = session.get_one(Seller, delivery.seller_id)
    secret = secret_of(seller)
    if secret is None:
        raise DeliveryFailed("the seller has no webhook signing secret yet (POST /api/v1/webhooks/secret)")
    body = body_of(delivery)
    now = clock.now()
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.message_id, now, body),
    }
    try:
        response = outbound.request("POST", delivery.url, content=body, headers=headers, timeout=TIMEOUT)
    except outbound.RefusedUrl as exc:
        raise DeliveryFailed(str(exc)) from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code} from {delivery.url}")
    delivery.state = "delivered"
    delivery.last_status = response.status_code
    delivery.delivered_at = clock.now()
