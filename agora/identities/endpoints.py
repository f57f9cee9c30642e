from __future__ import annotations

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from agora.auth import ANY_ROLE, Principal, require
from agora.deps import Uow
from agora.identities import service
from agora.identities.schemas import AccessKeyOut, BuyerOut, Me, NewCredentialsOut, SellerOut
from agora.models import Buyer, Role, Seller
from agora.paging import Page, Paging

router = APIRouter(prefix="/api/v1", tags=["identities"])

anyone = require(*ANY_ROLE)


@router.get("/me", response_model=Me)
def whoami(principal: Principal = Depends(anyone)) -> Me:
    return Me(role=principal.role.value, handle=principal.handle)


@router.get("/keys", response_model=list[AccessKeyOut])
def list_keys(session: Uow, principal: Principal = Depends(anyone)) -> list[AccessKeyOut]:
    return [
        AccessKeyOut(access_key_id=k.access_key_id, created_at=k.created_at, revoked_at=k.revoked_at)
        for k in service.list_access_keys(session, principal)
    ]


@router.post("/keys", response_model=NewCredentialsOut, status_code=status.HTTP_201_CREATED)
def create_keys(session: Uow, principal: Principal = Depends(anyone)) -> NewCredentialsOut:
    """A new API token and SDK key pair for the caller's own account, shown once."""
    created = service.create_credentials(session, principal.role, principal.id, actor=principal.actor)
    return NewCredentialsOut(token=created.token, access_key_id=created.access_key_id, secret=created.secret)


@router.delete("/keys/{access_key_id}", response_model=AccessKeyOut)
def revoke_key(access_key_id: str, session: Uow, principal: Principal = Depends(anyone)) -> AccessKeyOut:
    key = service.revoke_access_key(session, principal, access_key_id)
    return AccessKeyOut(access_key_id=key.access_key_id, created_at=key.created_at, revoked_at=key.revoked_at)


def _seller_out(seller: Seller) -> SellerOut:
    return SellerOut(
        handle=seller.handle,
        name=seller.name,
        tax_form=seller.tax_form,
        data_sharing=seller.data_sharing,
        created_at=seller.created_at,
    )


def _buyer_out(buyer: Buyer) -> BuyerOut:
    return BuyerOut(account=buyer.account, email=buyer.email, enterprise=buyer.enterprise, created_at=buyer.created_at)


@router.get("/sellers", response_model=list[SellerOut])
def list_sellers(
    session: Uow, _: Principal = Depends(require(Role.OPERATOR)), page: Page = Depends(Paging)
) -> list[SellerOut]:
    rows = page.scalars(session, select(Seller), [Seller.handle, Seller.id], key=lambda r: (r[0].handle, r[0].id))
    return [_seller_out(s) for s in rows]


@router.get("/sellers/{handle}", response_model=SellerOut)
def get_seller(
    handle: str, session: Uow, principal: Principal = Depends(require(Role.OPERATOR, Role.SELLER))
) -> SellerOut:
    return _seller_out(service.get_seller(session, principal, handle))


@router.get("/buyers/{account}", response_model=BuyerOut)
def get_buyer(
    account: str, session: Uow, principal: Principal = Depends(require(Role.OPERATOR, Role.BUYER))
) -> BuyerOut:
    return _buyer_out(service.get_buyer(session, principal, account))
