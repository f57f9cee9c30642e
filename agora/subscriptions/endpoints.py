from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agora.auth import ANY_ROLE, Principal, require
from agora.deps import Uow
from agora.models import AnnualPurchase, Buyer, Contract, ContractCharge, Product, Role, Subscription
from agora.money import format_amount
from agora.paging import Page, Paging
from agora.subscriptions import annual, contracts, service
from agora.subscriptions.schemas import (
    AnnualPurchaseOut,
    ContractOut,
    EntitlementOut,
    LicenseOut,
    SubscriptionOut,
)
from agora.validation import Id, Quantity

router = APIRouter(prefix="/api/v1", tags=["subscriptions"])
anyone = require(*ANY_ROLE)
buyer_only = require(Role.BUYER)
seller_only = require(Role.SELLER)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str
    accept_eula: bool = Field(description="the buyer accepts the product's EULA (required, LST-08)")
    license_reference: str | None = Field(
        None, min_length=1, max_length=200, description="BYOL: the license the buyer brings"
    )


def subscription_out(session: Uow, subscription: Subscription) -> dict[str, Any]:
    product = session.get_one(Product, subscription.product_id)
    buyer = session.get_one(Buyer, subscription.buyer_id)
    return {
        "id": subscription.id,
        "product": product.code,
        "buyer": buyer.account,
        "customer_identifier": subscription.customer_identifier,
        "state": "active" if subscription.ended_at is None else "cancelled",
        "started_at": subscription.started_at.isoformat(),
        "ended_at": subscription.ended_at.isoformat() if subscription.ended_at else None,
        "eula": subscription.eula,
        "eula_accepted_at": subscription.eula_accepted_at.isoformat() if subscription.eula_accepted_at else None,
        "license_reference": subscription.license_reference,
        "trial": (
            {"starts_at": subscription.started_at.isoformat(), "ends_at": subscription.trial_ends_at.isoformat()}
            if subscription.trial_ends_at
            else None
        ),
    }


@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionOut,
    response_model_exclude_unset=True,
)
def subscribe(body: SubscribeIn, session: Uow, principal: Principal = Depends(buyer_only)) -> dict[str, Any]:
    """Subscribe to a public product. SaaS products answer with the registration token and the redirect to
    the seller's fulfillment URL (SUB-06)."""
    subscription, fulfillment = service.subscribe(
        session, principal, body.product, accept_eula=body.accept_eula, license_reference=body.license_reference
    )
    out = subscription_out(session, subscription)
    if fulfillment is not None:
        out["fulfillment"] = {
            "registration_token": fulfillment.registration_token,
            "redirect_url": fulfillment.redirect_url,
        }
    return out


@router.get("/subscriptions", response_model=list[SubscriptionOut], response_model_exclude_unset=True)
def list_subscriptions(
    session: Uow, principal: Principal = Depends(anyone), page: Page = Depends(Paging)
) -> list[dict[str, Any]]:
    """A buyer's own subscriptions, a seller's subscribers, or (operators) all."""
    return [subscription_out(session, s) for s in page.scalars(session, service.listing(principal), [Subscription.id])]


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut, response_model_exclude_unset=True)
def get_subscription(subscription_id: Id, session: Uow, principal: Principal = Depends(anyone)) -> dict[str, Any]:
    return subscription_out(session, service.visible(session, principal, subscription_id))


@router.post(
    "/subscriptions/{subscription_id}/cancel", response_model=SubscriptionOut, response_model_exclude_unset=True
)
def cancel(subscription_id: Id, session: Uow, principal: Principal = Depends(buyer_only)) -> dict[str, Any]:
    return subscription_out(session, service.cancel(session, principal, subscription_id))


class ResolveIn(BaseModel):
    registration_token: str = Field(min_length=1)


class ResolveOut(BaseModel):
    customer_identifier: str
    product_code: str
    customer_account: str


@router.post("/fulfillment/resolve", response_model=ResolveOut)
def resolve(body: ResolveIn, session: Uow, principal: Principal = Depends(seller_only)) -> ResolveOut:
    """SUB-06: the seller turns the registration token of the redirect into the customer it stands for."""
    return ResolveOut(**service.resolve(session, principal, body.registration_token))


class ContractIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_months: int = Field(description="1, 12, 24 or 36 (PRC-10)")
    quantities: dict[str, Quantity] = Field(description="dimension → units bought")


class UpgradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantities: dict[str, Quantity] = Field(description="dimension → new total units (never lower)")


def contract_out(session: Uow, contract: Contract) -> dict[str, Any]:
    charges = session.scalars(
        select(ContractCharge).where(ContractCharge.contract_id == contract.id).order_by(ContractCharge.id)
    )
    return {
        "id": contract.id,
        "subscription_id": contract.subscription_id,
        "duration_months": contract.duration_months,
        "starts_at": contract.starts_at.isoformat(),
        "ends_at": contract.ends_at.isoformat(),
        "license": contract.license_key,
        "entitlements": contracts.entitlements_of(session, contract),
        "charges": [
            {"reason": c.reason, "amount": format_amount(c.amount_cents), "at": c.at.isoformat()} for c in charges
        ],
    }


@router.post(
    "/subscriptions/{subscription_id}/contract", status_code=status.HTTP_201_CREATED, response_model=ContractOut
)
def buy_contract(
    subscription_id: Id, body: ContractIn, session: Uow, principal: Principal = Depends(buyer_only)
) -> dict[str, Any]:
    """Buy contract quantities upfront (PRC-10); entitlements and a license follow (SUB-07)."""
    contract = contracts.buy(session, principal, subscription_id, body.duration_months, body.quantities)
    return contract_out(session, contract)


@router.post("/subscriptions/{subscription_id}/contract/upgrade", response_model=ContractOut)
def upgrade_contract(
    subscription_id: Id, body: UpgradeIn, session: Uow, principal: Principal = Depends(buyer_only)
) -> dict[str, Any]:
    return contract_out(session, contracts.upgrade(session, principal, subscription_id, body.quantities))


@router.get("/entitlements", response_model=list[EntitlementOut])
def list_entitlements(
    session: Uow,
    principal: Principal = Depends(anyone),
    product: str | None = None,
    customer_identifier: str | None = None,
    dimension: str | None = None,
    page: Page = Depends(Paging),
) -> list[dict[str, Any]]:
    """SUB-07: what each customer is entitled to (a seller sees its products', a buyer its own)."""
    statement = contracts.entitlements(
        principal, product_code=product, customer_identifier=customer_identifier, dimension=dimension
    )
    rows = page.rows(session, statement, contracts.ENTITLEMENT_ORDER, contracts.entitlement_key)
    return [contracts.entitlement_out(row) for row in rows]


@router.get("/licenses/{license_key}", response_model=LicenseOut)
def check_license(license_key: str, session: Uow, principal: Principal = Depends(anyone)) -> dict[str, Any]:
    """SUB-07: the license record the buyer's software checks."""
    return contracts.check_license(session, principal, license_key)


class AnnualIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_type: str = Field(min_length=1, max_length=64)
    quantity: Quantity = Field(gt=0)
    auto_renew: bool = False


class AutoRenewIn(BaseModel):
    auto_renew: bool


@router.post(
    "/subscriptions/{subscription_id}/annual", status_code=status.HTTP_201_CREATED, response_model=AnnualPurchaseOut
)
def buy_annual(
    subscription_id: Id, body: AnnualIn, session: Uow, principal: Principal = Depends(buyer_only)
) -> dict[str, Any]:
    """SUB-03: annual subscriptions for `quantity` instances of one type, 12 months, paid in full now."""
    purchase = annual.buy(
        session, principal, subscription_id, body.instance_type, body.quantity, auto_renew=body.auto_renew
    )
    return annual.purchase_out(purchase)


@router.get("/subscriptions/{subscription_id}/annual", response_model=list[AnnualPurchaseOut])
def list_annual(
    subscription_id: Id, session: Uow, principal: Principal = Depends(anyone), page: Page = Depends(Paging)
) -> list[dict[str, Any]]:
    subscription = service.visible(session, principal, subscription_id)
    query = select(AnnualPurchase).where(AnnualPurchase.subscription_id == subscription.id)
    rows = page.scalars(session, query, [AnnualPurchase.id])
    return [annual.purchase_out(p) for p in rows]


@router.post("/annual-purchases/{purchase_id}/auto-renew", response_model=AnnualPurchaseOut)
def set_auto_renew(
    purchase_id: Id, body: AutoRenewIn, session: Uow, principal: Principal = Depends(buyer_only)
) -> dict[str, Any]:
    return annual.purchase_out(annual.set_auto_renew(session, principal, purchase_id, body.auto_renew))
