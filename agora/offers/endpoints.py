from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from agora.auth import ANY_ROLE, Principal, require
from agora.catalog import assets, uploads
from agora.catalog.assets import AssetKind
from agora.catalog.storage import LocalAssetStorage
from agora.db import Database
from agora.deps import Uow, get_db
from agora.errors import Invalid, NotFound
from agora.models import Offer, Product, Role
from agora.offers import service
from agora.offers.schemas import OfferOut
from agora.paging import Page, Paging
from agora.pricing.schema import Price, PricingDocument
from agora.validation import Instant

router = APIRouter(prefix="/api/v1/offers", tags=["offers"])
anyone = require(*ANY_ROLE)
seller_only = require(Role.SELLER)
buyer_only = require(Role.BUYER)


class Instalment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Instant
    amount: Price


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str
    buyer: str = Field(pattern=r"^[0-9]{12}$", description="the one buyer account the offer is for")
    pricing: PricingDocument
    duration_days: int = Field(description="how long the terms run once accepted (up to 3 years)")
    accept_by: Instant
    total: Price | None = Field(None, description="the offer's total, required with a payment schedule")
    schedule: list[Instalment] = Field(default=[], description="flexible payments; they must sum to `total`")


class AcceptIn(BaseModel):
    accept_eula: bool


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OfferOut)
def create_offer(body: OfferIn, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    data = body.model_dump(exclude={"pricing", "total", "schedule"})
    data["pricing"] = body.pricing
    data["total"] = Decimal(body.total) if body.total is not None else None
    data["schedule"] = [{"at": i.at.isoformat(), "amount": i.amount} for i in body.schedule]
    return service.out(session, service.create(session, principal, data))


@router.get("", response_model=list[OfferOut])
def list_offers(
    session: Uow, principal: Principal = Depends(anyone), page: Page = Depends(Paging)
) -> list[dict[str, Any]]:
    """A seller's offers, the offers extended to a buyer, or (operators) all."""
    query = select(Offer)
    if principal.role is Role.SELLER:
        query = query.join(Product, Product.id == Offer.product_id).where(Product.seller_id == principal.id)
    elif principal.role is Role.BUYER:
        query = query.where(Offer.buyer_id == principal.id, Offer.state != "draft")
    return [service.out(session, o) for o in page.scalars(session, query, [Offer.id])]


@router.get("/{public_id}", response_model=OfferOut)
def get_offer(public_id: str, session: Uow, principal: Principal = Depends(anyone)) -> dict[str, Any]:
    return service.out(session, service.visible(session, principal, public_id))


@router.post("/{public_id}/eula", response_model=OfferOut, openapi_extra=uploads.openapi_body(kind=False))
async def upload_eula(public_id: str, request: Request, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    """The offer's own EULA, a PDF (OFR-01), in the multipart field `file`. The caller's right to the offer
    is checked before the body is read; the file streams to disk."""
    db = get_db(request)
    await run_in_threadpool(_check_visible, db, principal, public_id)
    storage = LocalAssetStorage()
    with storage.incoming() as incoming:
        received = await uploads.receive(request, incoming, lambda _, size: assets.check_size(AssetKind.EULA, size))
        return await run_in_threadpool(_store_eula, request, db, principal, public_id, received, storage)


def _check_visible(db: Database, principal: Principal, public_id: str) -> None:
    with db.reader() as session:
        service.visible(session, principal, public_id)


def _store_eula(
    request: Request,
    db: Database,
    principal: Principal,
    public_id: str,
    received: uploads.Received,
    storage: LocalAssetStorage,
) -> dict[str, Any]:
    if received.file is None:
        raise Invalid.at("file", "give the EULA, a PDF, in the multipart field named file")
    received.file.finish()
    assets.check_content(AssetKind.EULA, received.file.path, received.filename or "eula.pdf")
    with db.unit_of_work() as session:
        session.info["request_id"] = getattr(request.state, "request_id", None)
        service.visible(session, principal, public_id)
        digest = storage.keep(received.file)
        return service.out(session, service.attach_eula(session, principal, public_id, digest))


@router.get("/{public_id}/eula")
def get_eula(public_id: str, session: Uow, principal: Principal = Depends(anyone)) -> Response:
    offer = service.visible(session, principal, public_id)
    data = LocalAssetStorage().get(offer.eula_digest) if offer.eula_digest else None
    if data is None:
        raise NotFound(f"offer {public_id} uses the standard EULA")
    headers = {"Cache-Control": "private", **assets.served_headers("application/pdf", f"eula-{public_id}.pdf")}
    return Response(data, media_type="application/pdf", headers=headers)


@router.post("/{public_id}/extend", response_model=OfferOut)
def extend(public_id: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return service.out(session, service.extend(session, principal, public_id))


@router.post("/{public_id}/cancel", response_model=OfferOut)
def cancel(public_id: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return service.out(session, service.cancel(session, principal, public_id))


@router.post("/{public_id}/accept", response_model=OfferOut)
def accept(public_id: str, body: AcceptIn, session: Uow, principal: Principal = Depends(buyer_only)) -> dict[str, Any]:
    return service.out(session, service.accept(session, principal, public_id, accept_eula=body.accept_eula))
