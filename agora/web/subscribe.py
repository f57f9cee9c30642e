"""Subscribing: `/products/{code}/subscribe`, through the same services as `POST /api/v1/subscriptions` and the
contract and annual purchases (LST-08 EULA, LST-09 enterprise, PRC-10 contracts, SUB-03 annual, PRC-11 BYOL,
SUB-06 SaaS fulfillment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from agora.catalog import service as catalog
from agora.catalog import storefront
from agora.errors import AgoraError, Forbidden, Invalid, NotFound
from agora.models import Role
from agora.subscriptions import annual, contracts, service, views
from agora.web import present
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
buyer = require(Role.BUYER)

FIELD_LABELS = {
    "accept_eula": "I accept the EULA",
    "license_reference": "License reference",
    "duration_months": "Contract length",
    "quantities": "Quantities",
}


# The service speaks of "the buyer"; the form speaks to them.
PLAIN_WORDS = {"accept_eula": "tick the box to accept the license agreement before subscribing [LST-08]"}


@dataclass
class Choice:
    """What the buyer chose on the form, as typed: kept to show the form again."""

    accept_eula: bool = False
    license_reference: str = ""
    duration_months: str = ""
    quantities: dict[str, str] = field(default_factory=dict)
    annual: dict[str, str] = field(default_factory=dict)
    auto_renew: bool = False


def _choice(form: FormData) -> Choice:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip()[:200] if isinstance(value, str) else ""

    return Choice(
        accept_eula=text("accept_eula") != "",
        license_reference=text("license_reference"),
        duration_months=text("duration_months"),
        quantities={k[4:]: text(k) for k in form if k.startswith("qty-")},
        annual={k[7:]: text(k) for k in form if k.startswith("annual-")},
        auto_renew=text("auto_renew") != "",
    )


def _whole(value: str, loc: str) -> int:
    if value == "":
        return 0
    if not value.isdigit() or len(value) > 9:
        raise Invalid.at(loc, "must be a whole number of units, 0 or more", "whole number")
    return int(value)


def _counts(values: dict[str, str], prefix: str) -> dict[str, int]:
    counts = {name: _whole(value, f"{prefix}.{name}") for name, value in values.items()}
    return {name: n for name, n in counts.items() if n > 0}


def _page(session: Any, viewer: Viewer, code: str) -> dict[str, Any]:
    page = storefront.product_page(session, code, viewer.principal)
    product = catalog.get_by_code(session, code)
    if product is None or page["state"] != "public":
        raise NotFound(f"no product {code!r}")
    document = product.pricing or {}
    dimensions = (document.get("contract") or {}).get("dimensions") or []
    return {
        "p": page,
        "doc": document,
        "pricing": present.explain(document, [], product.kind),
        "eligible": views.eligibility(session, viewer.principal, product),
        "contract_dimensions": dimensions,
        "durations": sorted(
            {int(m) for d in (document.get("contract") or {}).get("dimensions") or [] for m in d["prices"]}
        ),
        "annual_prices": document.get("annual") or {},
        "kind_label": present.kind_label,
        "months_label": present.months_label,
    }


def _quote(data: dict[str, Any], choice: Choice) -> dict[str, Any] | None:
    """The contract's price as chosen, or None while nothing is chosen; a bad number gives no price."""
    if not data["contract_dimensions"] or not choice.duration_months.isdigit():
        return None
    try:
        quantities = _counts(choice.quantities, "quantities")
    except Invalid:
        return None
    rows, total = contracts.quote(data["doc"], int(choice.duration_months), quantities)
    return {"rows": rows, "total": total, "months": int(choice.duration_months)} if rows else None


def _form(
    request: Request,
    data: dict[str, Any],
    choice: Choice,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        **data,
        "labels": FIELD_LABELS,
        "choice": choice,
        "errors": errors or {},
        "refusal": refusal,
        "quote": _quote(data, choice),
    }
    return render(request, "subscribe.html", context, status)


@router.get("/products/{code}/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, code: str, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        data = _page(session, viewer, code)
    durations = data["durations"]
    choice = Choice(duration_months=str(12 if 12 in durations else durations[0]) if durations else "")
    return _form(request, data, choice)


@router.post("/products/{code}/subscribe/price", response_class=HTMLResponse)
async def contract_price(request: Request, code: str, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    """The htmx partial: the contract's price as the quantities and length are chosen."""
    choice = _choice(await request.form())

    def work() -> HTMLResponse:
        with request.app.state.db.reader() as session:
            data = _page(session, viewer, code)
        return render(request, "_contract_price.html", {"quote": _quote(data, choice), "money": Decimal})

    return await run_in_threadpool(work)


def _errors_of(exc: AgoraError) -> tuple[dict[str, str], str | None]:
    """Field → message for the form, or a refusal that is about the whole purchase."""
    if isinstance(exc, Invalid) and exc.problems:
        errors: dict[str, str] = {}
        for problem in exc.problems:
            loc = problem["loc"]
            message = exc.detail.split(": ", 1)[1] if len(exc.problems) == 1 and ": " in exc.detail else problem["msg"]
            errors[loc] = PLAIN_WORDS.get(loc, message)
        return errors, None
    return {}, exc.detail


def _buy(request: Request, viewer: Viewer, code: str, choice: Choice) -> Response:
    db = request.app.state.db
    with db.unit_of_work() as session:
        subscription, fulfillment = service.subscribe(
            session,
            viewer.principal,
            code,
            accept_eula=choice.accept_eula,
            license_reference=choice.license_reference or None,
        )
        document = catalog.get_by_code(session, code).pricing or {}  # type: ignore[union-attr]
        if (document.get("contract") or {}).get("dimensions"):
            if not choice.duration_months.isdigit():
                raise Invalid.at("duration_months", "choose how long the contract runs [PRC-10]")
            contracts.buy(
                session,
                viewer.principal,
                subscription.id,
                int(choice.duration_months),
                _counts(choice.quantities, "quantities"),
            )
        for instance_type, quantity in sorted(_counts(choice.annual, "annual").items()):
            if instance_type not in (document.get("annual") or {}):
                raise Invalid.at(f"annual.{instance_type}", "has no annual price on this product [SUB-03]")
            annual.buy(
                session, viewer.principal, subscription.id, instance_type, quantity, auto_renew=choice.auto_renew
            )
        subscription_id, trial_ends = subscription.id, subscription.trial_ends_at
        title = catalog.get_by_code(session, code).title  # type: ignore[union-attr]
    if fulfillment is not None and fulfillment.redirect_url:
        return render(
            request,
            "subscribed.html",
            {"title": title, "subscription_id": subscription_id, "redirect_url": fulfillment.redirect_url},
        )
    message = f"You are subscribed to {title}."
    if trial_ends is not None:
        message += f" Your free trial ends on {trial_ends:%-d %B %Y} at {trial_ends:%H:%M} UTC."
    return redirect(request, f"/account/subscriptions/{subscription_id}", flash=("success", message))


@router.post("/products/{code}/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request, code: str, viewer: Viewer = Depends(buyer)) -> Response:
    form = await request.form()
    choice = _choice(form)
    only_price = form.get("action") == "price"

    def work() -> Response:
        if only_price:  # without JavaScript, "Calculate price" shows the form again with its price
            with request.app.state.db.reader() as session:
                return _form(request, _page(session, viewer, code), choice)
        try:
            return _buy(request, viewer, code, choice)
        except NotFound:
            raise
        except AgoraError as exc:
            errors, refusal = _errors_of(exc)
            if isinstance(exc, Forbidden):
                refusal = exc.detail
            with request.app.state.db.reader() as session:
                data = _page(session, viewer, code)
            return _form(request, data, choice, errors, refusal, exc.status_code)

    return await run_in_threadpool(work)
