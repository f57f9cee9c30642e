from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, status
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from agora.auth import Principal, require, viewer
from agora.catalog import assets as asset_rules
from agora.catalog import portal, search, service, uploads
from agora.catalog.responses import (
    AssetOut,
    CatalogPage,
    CatalogProduct,
    ChangeRequestOut,
    ProductOut,
    ReviewQueueOut,
    WizardOut,
)
from agora.catalog.schemas import ProductCreate
from agora.catalog.storage import LocalAssetStorage
from agora.catalog.views import STEPS, asset_out, catalog_page, product_out, queue_out, wizard_out
from agora.deps import Uow, get_db
from agora.errors import Invalid, NotFound
from agora.models import ChangeRequest, Product, ProductAsset, Role
from agora.paging import Page, Paging
from agora.validation import Id

router = APIRouter(prefix="/api/v1", tags=["catalog"])
seller_only = require(Role.SELLER)
manager = require(Role.SELLER, Role.OPERATOR)
operator_only = require(Role.OPERATOR)


class Reason(BaseModel):
    reason: str | None = None


@router.post("/products", status_code=status.HTTP_201_CREATED, response_model=ProductOut)
def create_product(data: ProductCreate, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    """Create a draft listing (one manifest product entry without `seller` and `state`). SEL-01."""
    product = service.create_product(session, principal, data)
    return product_out(session, product)


@router.get("/products", response_model=list[ProductOut])
def list_products(
    session: Uow, principal: Principal = Depends(manager), state: str | None = None, page: Page = Depends(Paging)
) -> list[dict[str, Any]]:
    """The caller's own products (a seller), or every product (an operator), by code."""
    query = select(Product)
    if principal.role is Role.SELLER:
        query = query.where(Product.seller_id == principal.id)
    if state:
        query = query.where(Product.state == state)
    rows = page.scalars(session, query, [Product.code, Product.id], key=lambda r: (r[0].code, r[0].id))
    return [product_out(session, p, brief=True) for p in rows]


@router.get("/products/{code}", response_model=ProductOut)
def get_product(code: str, session: Uow, principal: Principal = Depends(manager)) -> dict[str, Any]:
    return product_out(session, service.get_managed(session, principal, code))


@router.patch("/products/{code}", response_model=ProductOut)
def patch_product(
    code: str,
    session: Uow,
    principal: Principal = Depends(seller_only),
    body: dict[str, Any] = Body(..., description="any subset of the listing fields"),
) -> dict[str, Any]:
    """Edit a draft in place; on a published listing the edit becomes a change request for the operator."""
    product, request = service.update_product(session, principal, code, service.validate_patch(body))
    out = product_out(session, product)
    if request is not None:
        out["change_request"] = {"id": request.id, "state": request.state, "changes": request.changes}
    return out


@router.post("/products/{code}/submit", response_model=ProductOut)
def submit(code: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return product_out(session, service.submit(session, principal, code))


@router.post("/products/{code}/sign-off", response_model=ProductOut)
def sign_off(code: str, session: Uow, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    return product_out(session, service.sign_off(session, principal, code))


@router.post("/products/{code}/restrict", response_model=ProductOut)
def restrict(
    code: str, session: Uow, principal: Principal = Depends(manager), body: Reason | None = None
) -> dict[str, Any]:
    return product_out(session, service.restrict(session, principal, code, body.reason if body else None))


@router.post("/products/{code}/reinstate", response_model=ProductOut)
def reinstate(code: str, session: Uow, principal: Principal = Depends(operator_only)) -> dict[str, Any]:
    return product_out(session, service.reinstate(session, principal, code))


@router.post(
    "/products/{code}/assets", status_code=201, response_model=AssetOut, openapi_extra=uploads.openapi_body(kind=True)
)
async def upload_asset(code: str, request: Request, principal: Principal = Depends(seller_only)) -> dict[str, Any]:
    """LST-03: the bytes are checked (a PNG must be a PNG), limits are per kind, nothing partial is kept.
    Multipart fields `kind` and `file`. The caller's token and its right to change the listing are checked
    before the body is read; the file streams to disk, refused as soon as it passes its kind's limit."""
    db = get_db(request)
    await run_in_threadpool(portal.check_editable, db, principal, code)
    storage = LocalAssetStorage()
    with storage.incoming() as incoming:
        received = await uploads.receive(request, incoming, portal.within_limit)
        # The database is written only now: a unit of work opened before the upload would hold SQLite's
        # write lock for as long as the client takes to send the file.
        asset = await run_in_threadpool(
            portal.store_asset,
            db,
            principal,
            code,
            received.fields,
            received.filename,
            received.file,
            storage,
            getattr(request.state, "request_id", None),
        )
        return asset_out(asset)


@router.get("/products/{code}/wizard", response_model=WizardOut)
def wizard(code: str, session: Uow, principal: Principal = Depends(manager)) -> dict[str, Any]:
    """The seller wizard: each step's saved fields and what is still missing for submission."""
    return wizard_out(session, service.get_managed(session, principal, code))


@router.put("/products/{code}/wizard/{step}", response_model=WizardOut)
def save_step(
    code: str,
    step: str,
    session: Uow,
    principal: Principal = Depends(seller_only),
    body: dict[str, Any] = Body(...),
) -> dict[str, Any]:
    """Save one wizard step as a draft (access, general, category, pricing, agreement)."""
    fields = STEPS.get(step)
    if fields is None:
        raise NotFound(f"no wizard step {step!r}; steps are {', '.join(STEPS)}")
    stray = sorted(set(body) - set(fields))
    if stray:
        raise Invalid(
            f"{', '.join(stray)}: not part of the {step} step (its fields: {', '.join(fields)})",
            [{"loc": name, "msg": f"not part of the {step} step"} for name in stray],
        )
    service.update_product(session, principal, code, service.validate_patch(body))
    return wizard_out(session, service.get_managed(session, principal, code))


@router.get("/reviews", response_model=ReviewQueueOut)
def review_queue(session: Uow, _: Principal = Depends(operator_only)) -> dict[str, Any]:
    """Submitted products and pending change requests, oldest first, with their age."""
    return queue_out(session)


@router.post("/reviews/{code}/approve", response_model=ProductOut)
def approve(
    code: str, session: Uow, principal: Principal = Depends(operator_only), body: Reason | None = None
) -> dict[str, Any]:
    return product_out(session, service.approve(session, principal, code, body.reason if body else None))


@router.post("/reviews/{code}/reject", response_model=ProductOut)
def reject(code: str, session: Uow, body: Reason, principal: Principal = Depends(operator_only)) -> dict[str, Any]:
    return product_out(session, service.reject(session, principal, code, body.reason or ""))


@router.post("/change-requests/{request_id}/approve", response_model=ChangeRequestOut)
def approve_change(
    request_id: Id, session: Uow, principal: Principal = Depends(operator_only), body: Reason | None = None
) -> dict[str, Any]:
    request = service.decide_change(session, principal, request_id, approve=True, reason=body.reason if body else None)
    return _change_out(request)


@router.post("/change-requests/{request_id}/reject", response_model=ChangeRequestOut)
def reject_change(
    request_id: Id, session: Uow, body: Reason, principal: Principal = Depends(operator_only)
) -> dict[str, Any]:
    return _change_out(service.decide_change(session, principal, request_id, approve=False, reason=body.reason))


def _change_out(request: ChangeRequest) -> dict[str, Any]:
    return {"id": request.id, "state": request.state, "changes": request.changes, "reason": request.reason}


@router.get("/catalog", response_model=CatalogPage)
def catalog_search(
    session: Uow,
    request: Request,
    response: Response,
    who: Principal | None = Depends(viewer),
    q: str = Query("", max_length=200),
    kind: str | None = None,
    category: str | None = None,
    pricing_family: str | None = None,
    region: str | None = None,
    free_trial: bool | None = None,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=10_000),
) -> dict[str, Any]:
    """Public search over title, descriptions, highlights, tags and SEO keywords."""
    filters = search.Filters(kind, category, pricing_family, region, free_trial)
    products, total = search.search(session, q, filters, limit=limit, offset=offset)
    if offset + limit < total and offset + limit <= 10_000:
        # Ranked results page by offset (relevance has no keyset); announced the same way as every list.
        response.headers["Link"] = f'<{request.url.include_query_params(offset=offset + limit)}>; rel="next"'
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "results": [catalog_page(session, p, who, brief=True) for p in products],
    }


@router.get("/catalog/{code}", response_model=CatalogProduct)
def catalog_product(code: str, session: Uow, who: Principal | None = Depends(viewer)) -> dict[str, Any]:
    """A product detail page's data; 404 wherever the caller may not see the product (LST-06)."""
    product = service.get_by_code(session, code)
    if product is None or not service.visible_to(product, who):
        raise NotFound(f"no product {code!r}")
    return catalog_page(session, product, who)


def _audience(product: Product) -> str:
    return "public" if product.state == "public" else "private"


@router.get("/assets/{digest}")
def get_asset(digest: str, session: Uow, who: Principal | None = Depends(viewer)) -> Response:
    """An uploaded file, served with its content type, to whoever may see a product that uses it."""
    rows = session.execute(
        select(ProductAsset, Product)
        .join(Product, Product.id == ProductAsset.product_id)
        .where(ProductAsset.digest == digest)
    )
    for asset, product in rows:
        if service.visible_to(product, who):
            path = LocalAssetStorage().file(digest)
            if path is None:
                break
            return FileResponse(
                path,
                media_type=asset.content_type,
                headers={
                    # content-addressed, so never stale; but a draft's file must not sit in shared caches
                    "Cache-Control": f"{_audience(product)}, max-age=31536000, immutable",
                    **asset_rules.served_headers(asset.content_type, asset.filename),
                },
            )
    raise NotFound(f"no asset {digest}")
