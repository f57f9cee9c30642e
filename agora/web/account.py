"""The buyer's console: `/account`, one subscription with its usage chart and cancellation, invoices with
their PDF and CSV, private offers. Every page reads through the services the API uses; another buyer's
subscription, invoice or offer is 404, as in the API."""

from __future__ import annotations

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from agora.billing import pdf
from agora.billing import views as invoices
from agora.catalog.storage import LocalAssetStorage
from agora.errors import AgoraError, NotFound
from agora.models import Product, Role
from agora.money import from_cents
from agora.offers import service as offers
from agora.subscriptions import service as subscriptions
from agora.subscriptions import views
from agora.web import present
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
buyer = require(Role.BUYER)
CHARGES = {
    "hourly": "Hourly",
    "monthly": "Monthly fee",
    "annual": "Annual subscription",
    "usage": "Usage",
    "contract": "Contract",
    "training": "ML training",
    "realtime_inference": "Real-time inference",
    "batch_inference": "Batch inference",
    "tiered": "Tiered usage",
    "refund": "Refund",
}
STATES = {"trial": "Free trial", "active": "Active", "ended": "Ended"}


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = views.summaries(session, viewer.principal)
        open_offers = views.open_offers(session, viewer.principal)
    active = [s for s in found if s.state != "ended"]
    ended = [s for s in found if s.state == "ended"]
    return render(request, "account.html", {"active": active, "ended": ended, "offers": open_offers, "states": STATES})


@router.get("/account/subscriptions/{subscription_id}", response_class=HTMLResponse)
def subscription(request: Request, subscription_id: int, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = views.detail(session, viewer.principal, subscription_id)
        costs = views.cancellation(session, viewer.principal, subscription_id)
    context = {
        "d": found,
        "costs": costs,
        "states": STATES,
        "explained": present.explain(found.pricing, [], found.product.kind),
        "chart": {"days": found.usage["days"], "series": found.usage["series"]},
        "cents": from_cents,
    }
    return render(request, "subscription.html", context)


@router.get("/account/subscriptions/{subscription_id}/cancel", response_class=HTMLResponse)
def confirm_cancel(request: Request, subscription_id: int, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = views.detail(session, viewer.principal, subscription_id)
        costs = views.cancellation(session, viewer.principal, subscription_id)
    return render(request, "cancel.html", {"d": found, "costs": costs})


@router.post("/account/subscriptions/{subscription_id}/cancel")
def cancel(request: Request, subscription_id: int, viewer: Viewer = Depends(buyer)) -> Response:
    with request.app.state.db.unit_of_work() as session:
        done = subscriptions.cancel(session, viewer.principal, subscription_id)
        title = session.get_one(Product, done.product_id).title
    message = f"Your subscription to {title} is cancelled. Nothing more is charged for it after today's usage."
    return redirect(request, f"/account/subscriptions/{subscription_id}", flash=("success", message))


@router.get("/account/invoices", response_class=HTMLResponse)
def invoice_list(request: Request, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = list(reversed(invoices.listing(session, viewer.principal)))
    return render(request, "invoices.html", {"invoices": found, "charges": CHARGES})


@router.get("/account/invoices.csv")
def invoices_csv(request: Request, viewer: Viewer = Depends(buyer)) -> Response:
    with request.app.state.db.reader() as session:
        text = invoices.to_csv(invoices.listing(session, viewer.principal))
    return Response(text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="invoices.csv"'})


@router.get("/account/invoices/{invoice_id}.pdf")
def invoice_pdf(request: Request, invoice_id: int, viewer: Viewer = Depends(buyer)) -> Response:
    with request.app.state.db.reader() as session:
        document = invoices.one(session, viewer.principal, invoice_id)
    return Response(
        pdf.render(document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{invoice_id}.pdf"', "Cache-Control": "private"},
    )


@router.get("/account/invoices/{invoice_id}.csv")
def invoice_csv(request: Request, invoice_id: int, viewer: Viewer = Depends(buyer)) -> Response:
    with request.app.state.db.reader() as session:
        document = invoices.one(session, viewer.principal, invoice_id)
    return Response(
        invoices.to_csv([document]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="invoice-{invoice_id}.csv"'},
    )


def _offer_page(
    request: Request, viewer: Viewer, public_id: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        offer = offers.visible(session, viewer.principal, public_id)
        data = offers.out(session, offer)
        product = session.get_one(Product, offer.product_id)
        title, kind, code = product.title, product.kind, product.code
    context = {
        "o": data,
        "offer": offer,
        "title": title,
        "code": code,
        "explained": present.explain(data["pricing"], [], kind),
        "open": offer.state == "extended" and not offers.expired(offer),
        "error": error,
    }
    return render(request, "offer.html", context, status)


@router.get("/account/offers/{public_id}", response_class=HTMLResponse)
def offer(request: Request, public_id: str, viewer: Viewer = Depends(buyer)) -> HTMLResponse:
    return _offer_page(request, viewer, public_id)


@router.post("/account/offers/{public_id}/accept", response_model=None)
def accept_offer(
    request: Request, public_id: str, accept_eula: str = Form(""), viewer: Viewer = Depends(buyer)
) -> Response:
    try:
        with request.app.state.db.unit_of_work() as session:
            done = offers.accept(session, viewer.principal, public_id, accept_eula=accept_eula != "")
            subscription_id = offers.out(session, done)["subscription_id"]
    except NotFound:
        raise
    except AgoraError as exc:
        message = "You must accept the EULA to accept the offer." if "accept_eula" in exc.detail else exc.detail
        return _offer_page(request, viewer, public_id, message, exc.status_code)
    message = "You accepted the private offer. Its prices now apply to your subscription."
    return redirect(request, f"/account/subscriptions/{subscription_id}", flash=("success", message))


@router.get("/account/offers/{public_id}/eula")
def offer_eula(request: Request, public_id: str, viewer: Viewer = Depends(buyer)) -> Response:
    with request.app.state.db.reader() as session:
        offer = offers.visible(session, viewer.principal, public_id)
    data = LocalAssetStorage().get(offer.eula_digest) if offer.eula_digest else None
    if data is None:
        raise NotFound(f"offer {public_id} uses the standard EULA")
    return Response(data, media_type="application/pdf", headers={"Cache-Control": "private"})
