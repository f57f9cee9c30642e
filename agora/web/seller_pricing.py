"""The seller portal's pricing page with its preview of a price change, and private offers (issue 18,
items 2 and 3).

`/seller/products/{code}/pricing` shows the prices and their versions, a change form with one input per
price, the **Preview** of what each current subscriber's last billed month would cost at the new prices
(re-rated by the billing's rating core; nothing is written), **Publish change** (the API's
`pricing.service.change_price`), and pricing-model change requests (PRC-16). Another seller's product is
404, a buyer gets 403.
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from agora.errors import AgoraError, Forbidden, NotFound
from agora.models import Role
from agora.money import from_cents
from agora.pricing import preview as prices
from agora.pricing import service
from agora.pricing.schema import PricingDocument
from agora.web import present
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
seller = require(Role.SELLER)
REQUEST_STATES = {"pending": "Waiting for the operator", "approved": "Approved", "rejected": "Rejected"}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _page(
    request: Request,
    viewer: Viewer,
    code: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    preview: prices.Preview | None = None,
    request_text: str = "",
    request_error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        page = prices.pricing_page(session, viewer.principal, code)
    context: dict[str, Any] = {
        "p": page,
        "groups": prices.price_inputs(page.pricing or {}) if page.changeable else [],
        "values": values or {},
        "errors": errors or {},
        "refusal": refusal,
        "preview": preview,
        "family": present.pricing_label,
        "request_states": REQUEST_STATES,
        "request_text": request_text or _as_yaml(page.pricing),
        "request_error": request_error,
        "cents": from_cents,
    }
    return render(request, "seller/pricing.html", context, status)


def _as_yaml(pricing: dict[str, Any] | None) -> str:
    return yaml.safe_dump(pricing or {}, sort_keys=False, allow_unicode=True) if pricing else ""


@router.get("/seller/products/{code}/pricing", response_class=HTMLResponse)
def pricing(request: Request, code: str, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    return _page(request, viewer, code)


def _proposal(request: Request, viewer: Viewer, code: str, values: dict[str, str]) -> tuple[Any, dict[str, str]]:
    with request.app.state.db.reader() as session:
        page = prices.pricing_page(session, viewer.principal, code)
    if not page.changeable:
        raise NotFound(f"product {code!r} has no published prices")
    return prices.apply_inputs(page.pricing or {}, values)


@router.post("/seller/products/{code}/pricing/preview", response_class=HTMLResponse)
async def preview(request: Request, code: str, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    """The preview reads and writes nothing (CHG-01/02): the same page, with the table of subscribers."""
    values = await _form(request)
    proposed, errors = _proposal(request, viewer, code, values)
    if errors:
        return _page(request, viewer, code, values=values, errors=errors, status=422)
    with request.app.state.db.reader() as session:
        shown = prices.preview(session, viewer.principal, code, proposed)
    return _page(request, viewer, code, values=values, preview=shown)


@router.post("/seller/products/{code}/pricing", response_model=None)
async def publish(request: Request, code: str, viewer: Viewer = Depends(seller)) -> Response:
    """**Publish change**: the API's price change (`PUT /api/v1/products/{code}/pricing`)."""
    values = await _form(request)
    proposed, errors = _proposal(request, viewer, code, values)
    if errors:
        return _page(request, viewer, code, values=values, errors=errors, status=422)
    try:
        with request.app.state.db.unit_of_work() as session:
            product = prices.product_of(session, viewer.principal, code)
            before = service.versions(session, product)[-1].number
            version = service.change_price(session, viewer.principal, product, proposed)
            number, existing_from = version.number, version.existing_from
    except (NotFound, Forbidden):
        raise
    except AgoraError as exc:
        return _page(request, viewer, code, values=values, refusal=exc.detail, status=exc.status_code)
    if number == before:
        return redirect(request, request.url.path, flash=("error", "These are the current prices: nothing changed."))
    reached = f"{existing_from.day} {existing_from:%B %Y}" if existing_from else "now"
    message = (
        f"Version {number} is published. New subscriptions pay the new prices from now; existing subscribers "
        f"from {reached}, and each of them is told."
    )
    return redirect(request, request.url.path, flash=("success", message))


@router.post("/seller/products/{code}/pricing-model-requests", response_model=None)
async def request_model_change(request: Request, code: str, viewer: Viewer = Depends(seller)) -> Response:
    """PRC-16: a different pricing model waits for the operator's approval."""
    text = (await _form(request)).get("pricing", "")
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        return _page(
            request, viewer, code, request_text=text, request_error=f"not valid YAML or JSON: {exc}", status=422
        )
    if not isinstance(data, dict):
        message = "give the new pricing as a YAML or JSON mapping, as in the manifest's pricing:"
        return _page(request, viewer, code, request_text=text, request_error=message, status=422)
    try:
        document = PricingDocument.model_validate(data)
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _page(request, viewer, code, request_text=text, request_error=message, status=422)
    try:
        with request.app.state.db.unit_of_work() as session:
            product = prices.product_of(session, viewer.principal, code)
            made = service.request_model_change(session, viewer.principal, product, document)
            moving = f"“{present.pricing_label(made.from_family)}” to “{present.pricing_label(made.to_family)}”"
    except (NotFound, Forbidden):
        raise
    except AgoraError as exc:
        return _page(request, viewer, code, request_text=text, request_error=exc.detail, status=exc.status_code)
    message = (
        f"Your request to change the pricing model from {moving} is sent. The operator approves or rejects it [PRC-16]."
    )
    return redirect(request, f"/seller/products/{code}/pricing", flash=("success", message))
