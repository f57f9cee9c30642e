"""The seller portal's private offers (issue 18, item 3): `/seller/offers` lists them with their state and
acceptance; `/seller/offers/new?product=…` makes one for one buyer (its prices, duration, acceptance
deadline, a payment schedule that must sum to the total, its own EULA as a PDF); **Extend offer** sends a
draft to its buyer, after which it can no longer change (OFR-02). Every rule is `agora.offers.service`'s,
and its errors are shown next to the fields they name."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from agora.catalog import assets
from agora.catalog.assets import AssetKind
from agora.catalog.storage import Incoming, LocalAssetStorage
from agora.errors import AgoraError, Invalid, NotFound
from agora.models import Role
from agora.offers import service
from agora.offers import views as offers
from agora.pricing import preview as prices
from agora.web.core import page_router, redirect, render, require
from agora.web.sessions import Viewer

router = page_router()
seller = require(Role.SELLER)
STATES = {"draft": "Draft", "extended": "Extended", "accepted": "Accepted", "cancelled": "Cancelled"}
CHUNK = 1024 * 1024


@router.get("/seller/offers", response_class=HTMLResponse)
def offer_list(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        found = offers.seller_offers(session, viewer.principal)
        products = offers.offerable(session, viewer.principal)
    return render(request, "seller/offers.html", {"offers": found, "products": products, "states": STATES})


def _new_page(
    request: Request,
    viewer: Viewer,
    code: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        product = offers.offerable_one(session, viewer.principal, code)
    context: dict[str, Any] = {
        "product": product,
        "groups": prices.price_inputs(product.pricing),
        "values": values or {},
        "errors": errors or {},
        "rows": range(offers.INSTALMENT_ROWS),
    }
    return render(request, "seller/offers_new.html", context, status)


@router.get("/seller/offers/new", response_model=None)
def new_offer(request: Request, product: str = "", viewer: Viewer = Depends(seller)) -> Response:
    if not product:
        return redirect(request, "/seller/offers", flash=("error", "Choose the product the offer is for."))
    return _new_page(request, viewer, product)


@router.post("/seller/offers", response_model=None)
async def create_offer(request: Request, viewer: Viewer = Depends(seller)) -> Response:
    """A draft offer, with its EULA if one is given. The form is multipart (the EULA upload); the PDF is
    checked by content, as the API checks it."""
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    upload = form.get("eula")
    eula = upload if isinstance(upload, UploadFile) and upload.filename else None
    code = values.get("product", "")
    with request.app.state.db.reader() as session:
        product = offers.offerable_one(session, viewer.principal, code)
    data, errors = offers.read_terms(product, values)
    if data is None:
        return _new_page(request, viewer, code, values, errors, 422)
    try:
        public_id = await _create(request, viewer, data, eula)
    except NotFound:
        raise
    except Invalid as exc:
        return _new_page(request, viewer, code, values, offers.field_errors(exc), exc.status_code)
    except assets.TooLarge as exc:  # LST-03: a EULA is at most 10 MB
        return _new_page(request, viewer, code, values, {"file": exc.detail.removeprefix("file: ")}, exc.status_code)
    except AgoraError as exc:
        return _new_page(request, viewer, code, values, {"form": exc.detail}, exc.status_code)
    message = f"Offer {public_id} is saved as a draft. Check it, then choose Extend offer to send it to the buyer."
    return redirect(request, "/seller/offers", flash=("success", message))


async def _create(request: Request, viewer: Viewer, data: dict[str, Any], eula: UploadFile | None) -> str:
    storage = LocalAssetStorage()
    with storage.incoming() as incoming:
        if eula is not None:
            assets.check_size(AssetKind.EULA, eula.size or 0)
            while chunk := await eula.read(CHUNK):
                incoming.write(chunk)
                assets.check_size(AssetKind.EULA, incoming.size)
        name = eula.filename if eula is not None and eula.filename else "eula.pdf"
        return await run_in_threadpool(_store, request, viewer, data, storage, incoming if eula else None, name)


def _store(
    request: Request,
    viewer: Viewer,
    data: dict[str, Any],
    storage: LocalAssetStorage,
    eula: Incoming | None,
    filename: str,
) -> str:
    if eula is not None:
        eula.finish()
        assets.check_content(AssetKind.EULA, eula.path, filename)
    with request.app.state.db.unit_of_work() as session:
        offer = service.create(session, viewer.principal, data)
        if eula is not None:
            service.attach_eula(session, viewer.principal, offer.public_id, storage.keep(eula))
        return offer.public_id


@router.post("/seller/offers/{public_id}/extend", response_model=None)
def extend_offer(request: Request, public_id: str, viewer: Viewer = Depends(seller)) -> Response:
    """**Extend offer**: the draft goes to its buyer and is frozen (OFR-02, OFR-03)."""
    try:
        with request.app.state.db.unit_of_work() as session:
            offer = service.extend(session, viewer.principal, public_id)
            buyer, when = service.out(session, offer)["buyer"], offer.accept_by
    except NotFound:
        raise
    except AgoraError as exc:
        return redirect(request, "/seller/offers", flash=("error", exc.detail))
    message = (
        f"Offer {public_id} is extended to buyer {buyer}: they can accept it until "
        f"{when.day} {when:%B %Y}, {when:%H:%M} UTC. It can no longer be changed."
    )
    return redirect(request, "/seller/offers", flash=("success", message))
