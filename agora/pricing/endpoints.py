from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from agora.auth import Principal, require
from agora.catalog import service as catalog
from agora.catalog.schemas import ProductKind
from agora.deps import Uow
from agora.errors import Invalid
from agora.models import FeeRate, InfrastructurePrice, PriceVersion, PricingModelRequest, Product, Role
from agora.paging import Page, Paging
from agora.pricing import service
from agora.pricing.rules import FAMILIES
from agora.pricing.schema import Price, PricingDocument
from agora.validation import Id

router = APIRouter(prefix="/api/v1", tags=["pricing"])
seller_only = require(Role.SELLER)
manager = require(Role.SELLER, Role.OPERATOR)
operator_only = require(Role.OPERATOR)


class VersionOut(BaseModel):
    number: int
    family: str
    pricing: dict[str, Any]
    noticed_at: datetime
    new_subscriptions_from: datetime
    existing_subscriptions_from: datetime | None
    created_by: str


def _version_out(v: PriceVersion) -> VersionOut:
    return VersionOut(
        number=v.number,
        family=v.family,
        pricing=v.pricing,
        noticed_at=v.noticed_at,
        new_subscriptions_from=v.noticed_at,
        existing_subscriptions_from=v.existing_from,
        created_by=v.created_by,
    )


@router.get("/products/{code}/prices", response_model=list[VersionOut])
def price_schedule(
    code: str, session: Uow, principal: Principal = Depends(manager), page: Page = Depends(Paging)
) -> list[VersionOut]:
    """Every price version of the product with the dates it reaches new and existing subscribers."""
    product = catalog.get_managed(session, principal, code)
    query = select(PriceVersion).where(PriceVersion.product_id == product.id)
    rows = page.scalars(session, query, [PriceVersion.number, PriceVersion.id], key=lambda r: (r[0].number, r[0].id))
    return [_version_out(v) for v in rows]


@router.put("/products/{code}/pricing", response_model=VersionOut, status_code=status.HTTP_201_CREATED)
def change_price(
    code: str, document: PricingDocument, session: Uow, principal: Principal = Depends(seller_only)
) -> VersionOut:
    """New prices for a published product (CHG-01/02). A different pricing model is 409 (PRC-16)."""
    product = catalog.get_managed(session, principal, code)
    return _version_out(service.change_price(session, principal, product, document))


class RequestOut(BaseModel):
    id: int
    product: str
    from_family: str
    to_family: str
    pricing: dict[str, Any]
    state: str
    reason: str | None
    requested_by: str
    created_at: datetime


def _request_out(session: Uow, r: PricingModelRequest) -> RequestOut:
    product = session.get_one(Product, r.product_id)
    return RequestOut(
        id=r.id,
        product=product.code,
        from_family=r.from_family,
        to_family=r.to_family,
        pricing=r.pricing,
        state=r.state,
        reason=r.reason,
        requested_by=r.requested_by,
        created_at=r.created_at,
    )


@router.post("/products/{code}/pricing-model-requests", response_model=RequestOut, status_code=status.HTTP_201_CREATED)
def request_model_change(
    code: str, document: PricingDocument, session: Uow, principal: Principal = Depends(seller_only)
) -> RequestOut:
    """Ask the operator to change the product's pricing model (PRC-16)."""
    product = catalog.get_managed(session, principal, code)
    return _request_out(session, service.request_model_change(session, principal, product, document))


@router.get("/pricing-model-requests", response_model=list[RequestOut])
def list_model_requests(
    session: Uow, principal: Principal = Depends(manager), state: str | None = "pending", page: Page = Depends(Paging)
) -> list[RequestOut]:
    query = select(PricingModelRequest)
    if state:
        query = query.where(PricingModelRequest.state == state)
    if principal.role is Role.SELLER:
        query = query.join(Product, Product.id == PricingModelRequest.product_id).where(
            Product.seller_id == principal.id
        )
    order = [PricingModelRequest.created_at, PricingModelRequest.id]
    rows = page.scalars(session, query, order, key=lambda r: (r[0].created_at, r[0].id))
    return [_request_out(session, r) for r in rows]


class Decision(BaseModel):
    reason: str | None = None


@router.post("/pricing-model-requests/{request_id}/approve", response_model=RequestOut)
def approve_model_change(
    request_id: Id, session: Uow, principal: Principal = Depends(operator_only), body: Decision | None = None
) -> RequestOut:
    reason = body.reason if body else None
    return _request_out(
        session, service.decide_model_change(session, principal, request_id, approve=True, reason=reason)
    )


@router.post("/pricing-model-requests/{request_id}/reject", response_model=RequestOut)
def reject_model_change(
    request_id: Id, body: Decision, session: Uow, principal: Principal = Depends(operator_only)
) -> RequestOut:
    return _request_out(
        session, service.decide_model_change(session, principal, request_id, approve=False, reason=body.reason)
    )


class FeeIn(BaseModel):
    kind: ProductKind | None = Field(None, description="product kind, or omit for any kind")
    family: str = Field("*", description=f"one of {', '.join(FAMILIES)}, or '*' for any")
    percent: Annotated[Price, Field(max_digits=5, decimal_places=2)]


class FeeOut(BaseModel):
    kind: str
    family: str
    percent: Decimal


@router.get("/fees", response_model=list[FeeOut])
def list_fees(session: Uow, _: Principal = Depends(operator_only), page: Page = Depends(Paging)) -> list[FeeOut]:
    """Listing fees by kind and pricing family (PRC-17: free, BYOL and open-source products pay none)."""
    order = [FeeRate.kind, FeeRate.family, FeeRate.id]
    rows = page.scalars(session, select(FeeRate), order, key=lambda r: (r[0].kind, r[0].family, r[0].id))
    return [FeeOut(kind=r.kind, family=r.family, percent=r.percent) for r in rows]


@router.put("/fees", response_model=FeeOut)
def set_fee(body: FeeIn, session: Uow, principal: Principal = Depends(operator_only)) -> FeeOut:
    if body.family != "*" and body.family not in FAMILIES:
        raise Invalid.at("family", f"must be one of {', '.join(FAMILIES)} or '*'", "unknown")
    kind = body.kind.value if body.kind else "*"
    rate = service.set_fee(session, principal, kind, body.family, body.percent)
    return FeeOut(kind=rate.kind, family=rate.family, percent=rate.percent)


class InfraIn(BaseModel):
    instance_type: str = Field(min_length=1, max_length=64)
    region: str = Field(min_length=1, max_length=32)
    hourly: Annotated[Price, Field(max_digits=12, decimal_places=6)]


class InfraOut(BaseModel):
    instance_type: str
    region: str
    hourly: Decimal


@router.get("/infrastructure-prices", response_model=list[InfraOut])
def list_infrastructure(
    session: Uow, _: Principal = Depends(operator_only), page: Page = Depends(Paging)
) -> list[InfraOut]:
    order = [InfrastructurePrice.instance_type, InfrastructurePrice.id]
    rows = page.scalars(session, select(InfrastructurePrice), order, key=lambda r: (r[0].instance_type, r[0].id))
    return [InfraOut(instance_type=r.instance_type, region=r.region, hourly=r.hourly) for r in rows]


@router.put("/infrastructure-prices", response_model=InfraOut)
def set_infrastructure(body: InfraIn, session: Uow, principal: Principal = Depends(operator_only)) -> InfraOut:
    """The operator's price table for infrastructure, shown beside software prices (LST-10)."""
    row = service.set_infrastructure_price(session, principal, body.instance_type, body.region, body.hourly)
    return InfraOut(instance_type=row.instance_type, region=row.region, hourly=row.hourly)
