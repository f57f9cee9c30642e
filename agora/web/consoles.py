"""The home page of each signed-in role. The buyer's console, the seller portal and the operator console
grow from these (issues 18 and 19); for now each is the landing page after sign-in, guarded by its role. The
buyer's console is `agora.web.account`."""

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


@router.get("/ops", response_class=HTMLResponse)
def ops(request: Request, viewer: Viewer = Depends(require(Role.OPERATOR))) -> HTMLResponse:
    return render(request, "console.html", {"heading": "Marketplace operations", "console": "operator"})
