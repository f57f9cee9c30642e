from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agora.auth import ANY_ROLE, Principal, require
from agora.catalog import assets
from agora.catalog.assets import AssetKind
from agora.catalog.storage import LocalAssetStorage
from agora.deps import Uow
from agora.errors import NotFound
from agora.models import Offer, Product, Role
from agora.offers import service
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


@router.post("", status_code=status.HTTP_201_CREATED)
def create_offer(body: OfferIn, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    data = body.model_dump(exclude={"pricing", "total", "schedule"})
    data["pricing"] = body.pricing
    data["total"] = Decimal(body.total) if body.total is not None else None
    data["schedule"] = [{"at": i.at.isoformat(), "amount": i.amount} for i in body.schedule]
    return service.out(session, service.create(session, principal, data))


@router.get("")
def list_offers(session: Uow, principal: Principal = Depends(anyone)) -> list[dict[str, Any]]:
    """A seller's offers, the offers extended to a buyer, or (operators) all."""
    query = select(Offer).order_by(Offer.id)
    if principal.role is Role.SELLER:
        query = query.join(Product, Product.id == Offer.product_id).where(Product.seller_id == principal.id)
    elif principal.role is Role.BUYER:
        query = query.where(Offer.buyer_id == principal.id, Offer.state != "draft")
    return [service.out(session, o) for o in session.scalars(query)]


@router.get("/{public_id}")
def get_offer(public_id: str, session: Uow, principal: Principal = Depends(anyone)) -> dict[str, Any]:
    return service.out(session, service.visible(session, principal, public_id))


@router.post("/{public_id}/eula")
def upload_eula(
    public_id: str, session: Uow, file: Annotated[UploadFile, File()], principal: Principal = Depends(seller_only)
) -> dict[str, Any]:
    """The offer's own EULA, a PDF (OFR-01)."""
    data = file.file.read(assets.RULES[AssetKind.EULA].max_bytes + 1)
    assets.check_content(AssetKind.EULA, data, file.filename or "eula.pdf")
    service.visible(session, principal, public_id)
    digest = LocalAssetStorage().put(data)
    return service.out(session, service.attach_eula(session, principal, public_id, digest))


@router.get("/{public_id}/eula")
def get_eula(public_id: str, session: Uow, principal: Principal = Depends(anyone)) -> Response:
    offer = service.visible(session, principal, public_id)
    data = LocalAssetStorage().get(offer.eula_digest) if offer.eula_digest else None
    if data is None:
        raise NotFound(f"offer {public_id} uses the standard EULA")
    return Response(data, media_type="application/pdf", headers={"Cache-Control": "private"})


@router.post("/{public_id}/extend")
def extend(public_id: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return service.out(session, service.extend(session, principal, public_id))


@router.post("/{public_id}/cancel")
def cancel(public_id: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return service.out(session, service.cancel(session, principal, public_id))


@router.post("/{public_id}/accept")
def accept(public_id: str, body: AcceptIn, session: Uow, principal: Principal = Depends(buyer_only)) -> dict[str, Any]:
    return service.out(session, service.accept(session, principal, public_id, accept_eula=body.accept_eula))
