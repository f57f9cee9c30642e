"""The seller portal's integration pages (issue 18, item 5): SDK access keys — created with their secret
shown once, in the answer to the creating POST and never again — and revoked; webhooks — each product's
endpoint, signing secret rotation (shown once too), the delivery log and **Replay** (SUB-06)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from agora.errors import AgoraError
from agora.identities import service as identities
from agora.models import Role
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer
from agora.webhooks import service as webhooks
from agora.webhooks import views as webhook_views

router = page_router()
seller = require(Role.SELLER)


def _keys_page(request: Request, viewer: Viewer, created: Any = None, status: int = 200) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        keys = identities.list_access_keys(session, viewer.principal)
        found = [{"id": k.access_key_id, "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys]
    found.sort(key=lambda k: (k["revoked_at"] is not None, k["id"]))
    return render(request, "seller/keys.html", {"keys": found, "created": created}, status)


@router.get("/seller/keys", response_class=HTMLResponse)
def keys(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    return _keys_page(request, viewer)


@router.post("/seller/keys", response_class=HTMLResponse)
def create_key(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    """A new key pair (and API token): this answer is the only place their secrets ever appear."""
    with request.app.state.db.unit_of_work() as session:
        created = identities.create_credentials(session, Role.SELLER, viewer.principal.id, actor=viewer.principal.actor)
    return _keys_page(request, viewer, created, 201)


@router.post("/seller/keys/{access_key_id}/revoke", response_model=None)
def revoke_key(request: Request, access_key_id: str, viewer: Viewer = Depends(seller)) -> Response:
    try:
        with request.app.state.db.unit_of_work() as session:
            identities.revoke_access_key(session, viewer.principal, access_key_id)
    except AgoraError as exc:
        return redirect(request, "/seller/keys", flash=("error", exc.detail))
    text = f"Access key {access_key_id} is revoked: requests signed with it are refused from now on."
    return redirect(request, "/seller/keys", flash=("success", text))


def _webhooks_page(request: Request, viewer: Viewer, secret: str | None = None, status: int = 200) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        context = {
            "endpoints": webhook_views.endpoints(session, viewer.principal),
            "has_secret": webhook_views.has_secret(session, viewer.principal),
            "deliveries": webhook_views.deliveries(session, viewer.principal),
            "secret": secret,
            "log_size": webhook_views.LOG_SIZE,
        }
    return render(request, "seller/webhooks.html", context, status)


@router.get("/seller/webhooks", response_class=HTMLResponse)
def webhook_page(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    return _webhooks_page(request, viewer)


@router.post("/seller/webhooks/secret", response_class=HTMLResponse)
def rotate_secret(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    with request.app.state.db.unit_of_work() as session:
        secret = webhooks.rotate_secret(session, viewer.principal)
    return _webhooks_page(request, viewer, secret)


@router.post("/seller/webhooks/deliveries/{delivery_id}/replay", response_model=None)
def replay(request: Request, delivery_id: int, viewer: Viewer = Depends(seller)) -> Response:
    """Send a delivery again with the same message id (receivers deduplicate by it)."""
    with request.app.state.db.unit_of_work() as session:
        delivery = webhooks.replay(session, viewer.principal, delivery_id)
        words = f"Delivery {delivery.message_id} ({delivery.event_type}) is queued to be sent again."
    return redirect(request, "/seller/webhooks", flash=("success", words))
