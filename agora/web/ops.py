"""The operator console: what waits, reviews, change requests, billing runs, invoices, refunds, audit, jobs,
outbox, accounts (issue 19)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from agora.models import Role
from agora.web.core import page_router, render, require
from agora.web.sessions import Viewer

router = page_router()


@router.get("/ops", response_class=HTMLResponse)
def ops(request: Request, viewer: Viewer = Depends(require(Role.OPERATOR))) -> HTMLResponse:
    return render(request, "console.html", {"heading": "Marketplace operations", "console": "operator"})
