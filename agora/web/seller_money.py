"""The seller portal's dashboard, usage, revenue, disbursements and refunds, and its SDK keys and webhooks
(issue 18, items 4 and 5)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from agora.models import Role
from agora.web.core import page_router, render, require
from agora.web.sessions import Viewer

router = page_router()


@router.get("/seller", response_class=HTMLResponse)
def seller(request: Request, viewer: Viewer = Depends(require(Role.SELLER))) -> HTMLResponse:
    return render(request, "console.html", {"heading": "Seller dashboard", "console": "seller"})
