"""Alibaba Cloud Marketplace (`market` 2015-11-01) seller checks: DescribeLicense and ActivateLicense (the
software confirms its buyer's license from inside), DescribeInstanceForIsv and DescribeOrderForIsv
(api-surface.md §6), called with the seller's access key.

How Agora's objects answer to Alibaba's:

* A license code is a contract's license key (SUB-07: contracts create a license the software can check) or the
  license a BYOL buyer named when subscribing (PRC-11). Only the product's seller can look one up; anyone else's
  is not found, never forbidden.
* An instance is a subscription, named by its customer identifier (as PushMeteringData names it); its order is
  the purchase that made it, with the subscription's id as `OrderId`. An order's prices are Agora's, in USD
  (Alibaba's are CNY): what was charged upfront (contracts, annual purchases, a private offer's total).
* Times: DescribeLicense's are `YYYY-MM-DD HH:MM:SS` in UTC; the instance's and order's are epoch
  milliseconds (api-surface.md §9 lists both formats as unverified).
* ActivateLicense binds a license to the `Identification` the software sends (the user's account; Agora checks
  it is the buyer's 12-digit account when given). Activating again with the same identification succeeds and
  changes nothing; a license activated by another identification, or one that has expired (its contract's end,
  or the subscription's), is refused.
* An order's `OrderStatus` is NORMAL and `PayStatus` PAID: Agora invoices upfront purchases when they are made
  (BIL-02); whether the invoice was collected is billing's, not reported here.
* Error codes (Alibaba documents none for these operations): `InvalidLicenseCode.NotFound`,
  `InvalidInstance.NotFound`, `InvalidOrder.NotFound` (404), `InvalidLicense.Expired`,
  `InvalidLicense.Activated`, `InvalidParameter.Identification`, `MissingParameter.<name>` (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.compat.alibaba.protocol import AlibabaError, Operation, _seller
from agora.db import Database
from agora.models import (
    AnnualPurchase,
    Buyer,
    Contract,
    ContractCharge,
    Entitlement,
    LicenseActivation,
    Offer,
    Product,
    Seller,
    Subscription,
)
from agora.money import from_cents

PRODUCT_TYPES = {
    "saas": "APP",
    "ami": "MIRROR",
    "container": "DOCKER",
    "managed_service": "SERVICE",
    "ml_algorithm": "API_SERVICE",
    "ml_model": "API_SERVICE",
}
PERIOD_TYPES = {1: "MONTH", 12: "YEAR", 24: "TWOYEARS"}  # Alibaba has no three-year period


@dataclass(frozen=True)
class _License:
    code: str
    subscription: Subscription
    product: Product
    seller: Seller
    buyer: Buyer
    contract: Contract | None  # None for a BYOL license

    @property
    def expires_at(self) -> datetime | None:
        ends = [t for t in (self.subscription.ended_at, self.contract.ends_at if self.contract else None) if t]
        return min(ends) if ends else None


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise AlibabaError(f"MissingParameter.{name}", f'The input parameter "{name}" is mandatory; it is missing.')
    return value


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _text(instant: datetime | None) -> str | None:
    return _aware(instant).strftime("%Y-%m-%d %H:%M:%S") if instant else None


def _millis(instant: datetime | None) -> int | None:
    return int(_aware(instant).timestamp() * 1000) if instant else None


def _number(value: str) -> int | str:
    """Alibaba's ids are numbers; Agora's customer identifiers may be any text, answered as given."""
    return int(value) if value.isdigit() and len(value) < 19 else value


def _license(session: Session, seller: Principal, code: str) -> _License:
    base = (
        select(Subscription, Product, Seller, Buyer)
        .join(Product, Product.id == Subscription.product_id)
        .join(Seller, Seller.id == Product.seller_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(Product.seller_id == seller.id)
    )
    found = session.execute(
        base.add_columns(Contract)
        .join(Contract, Contract.subscription_id == Subscription.id)
        .where(Contract.license_key == code)
    ).first()
    if found is not None:
        sub, product, owner, buyer, contract = found
        return _License(code, sub, product, owner, buyer, contract)
    byol = session.execute(base.where(Subscription.license_reference == code).order_by(Subscription.id.desc())).first()
    if byol is None:
        raise AlibabaError("InvalidLicenseCode.NotFound", f"There is no license '{code}' of your products.", 404)
    sub, product, owner, buyer = byol
    return _License(code, sub, product, owner, buyer, None)


def describe_license(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    """SUB-07/PRC-11: what the license entitles, whose it is, and whether it was activated."""
    _seller(principal, "DescribeLicense")
    code = _required(params, "LicenseCode")
    with db.reader() as session:
        found = _license(session, principal, code)
        activation = session.scalar(select(LicenseActivation).where(LicenseActivation.license_code == code))
        attributes = []
        if found.contract is not None:
            attributes = [
                {"Code": name, "Value": str(quantity)}
                for name, quantity in session.execute(
                    select(Entitlement.dimension, Entitlement.quantity)
                    .where(Entitlement.contract_id == found.contract.id)
                    .order_by(Entitlement.dimension)
                )
            ]
    license_: dict[str, Any] = {
        "LicenseCode": code,
        "LicenseStatus": "ACTIVATED" if activation is not None else "INACTIVATED",
        "InstanceId": found.subscription.customer_identifier,
        "ProductCode": found.product.code,
        "ProductName": found.product.title,
        "SupplierName": found.seller.name,
        "CreateTime": _text(found.contract.starts_at if found.contract else found.subscription.started_at),
        "ActivateTime": _text(activation.activated_at) if activation else None,
        "ExpiredTime": _text(found.expires_at),
        "ExtendInfo": {"AliUid": found.buyer.account},
        "ExtendArray": {"LicenseAttribute": attributes},
    }
    return {"License": {k: v for k, v in license_.items() if v is not None}}


def activate_license(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    """The software confirms the license it was given: once, for its buyer, before the license expires."""
    _seller(principal, "ActivateLicense")
    code = _required(params, "LicenseCode")
    identification = params.get("Identification") or None
    with db.unit_of_work() as session:
        found = _license(session, principal, code)
        if identification is not None and identification != found.buyer.account:
            raise AlibabaError(
                "InvalidParameter.Identification",
                f"License '{code}' is not the license of user '{identification}'.",
            )
        expires = found.expires_at
        now = clock.now()
        if expires is not None and _aware(expires) <= now:
            raise AlibabaError(
                "InvalidLicense.Expired", f"License '{code}' expired at {_text(expires)} UTC; it cannot be activated."
            )
        done = session.scalar(select(LicenseActivation).where(LicenseActivation.license_code == code))
        if done is None:
            try:
                with session.begin_nested():
                    session.add(
                        LicenseActivation(
                            license_code=code,
                            subscription_id=found.subscription.id,
                            identification=identification,
                            activated_at=now,
                        )
                    )
            except IntegrityError:  # activated meanwhile by another request: judge against that one
                done = session.scalar(select(LicenseActivation).where(LicenseActivation.license_code == code))
            else:
                audit.record(
                    session,
                    actor=principal.actor,
                    action="license.activate",
                    target_type="subscription",
                    target_id=found.subscription.id,
                    after={"license": code, "identification": identification},
                )
        if done is not None and done.identification != identification:
            raise AlibabaError(
                "InvalidLicense.Activated",
                f"License '{code}' was activated at {_text(done.activated_at)} UTC "
                f"{'by ' + repr(done.identification) if done.identification else 'without an identification'}.",
            )
    return {"Success": True}


def _subscription_of(
    session: Session, seller: Principal, *where: ColumnElement[bool]
) -> tuple[Subscription, Product, Seller, Buyer]:
    query = (
        select(Subscription, Product, Seller, Buyer)
        .join(Product, Product.id == Subscription.product_id)
        .join(Seller, Seller.id == Product.seller_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(Product.seller_id == seller.id, *where)
        .order_by(Subscription.id.desc())
    )
    row = session.execute(query).first()
    if row is None:
        raise LookupError
    return row[0], row[1], row[2], row[3]


def _license_code(session: Session, subscription: Subscription) -> str | None:
    key = session.scalar(
        select(Contract.license_key).where(Contract.subscription_id == subscription.id).order_by(Contract.id.desc())
    )
    return key or subscription.license_reference


def _term_end(session: Session, subscription: Subscription) -> datetime | None:
    if subscription.ended_at is not None:
        return subscription.ended_at
    ends = list(session.scalars(select(Contract.ends_at).where(Contract.subscription_id == subscription.id)))
    annual = select(AnnualPurchase.ends_at).where(AnnualPurchase.subscription_id == subscription.id)
    ends += list(session.scalars(annual))
    return max(ends) if ends else None


def describe_instance_for_isv(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    _seller(principal, "DescribeInstanceForIsv")
    instance = _required(params, "InstanceId")
    with db.reader() as session:
        try:
            sub, product, seller, _ = _subscription_of(session, principal, Subscription.customer_identifier == instance)
        except LookupError:
            raise AlibabaError(
                "InvalidInstance.NotFound", f"There is no instance of your products with id '{instance}'.", 404
            ) from None
        end = _term_end(session, sub)
        code = _license_code(session, sub)
    now = clock.now()
    if sub.ended_at is not None:
        status = "CLOSED"
    elif end is not None and _aware(end) <= now:
        status = "EXPIRED"
    else:
        status = "STARTED"
    answer: dict[str, Any] = {
        "InstanceId": _number(sub.customer_identifier),
        "OrderId": sub.id,
        "ProductCode": product.code,
        "ProductName": product.title,
        "ProductType": PRODUCT_TYPES.get(product.kind, product.kind),
        "Status": {"STARTED": "NORMAL", "CLOSED": "CLOSED", "EXPIRED": "EXPIRED"}[status],
        "RelationalData": {"ServiceStatus": status},
        "CreatedOn": _millis(sub.started_at),
        "BeganOn": _millis(sub.started_at),
        "EndOn": _millis(end),
        "IsTrial": sub.trial_ends_at is not None and _aware(sub.trial_ends_at) > now,
        "LicenseCode": code,
        "SupplierName": seller.name,
    }
    return {k: v for k, v in answer.items() if v is not None}


def describe_order_for_isv(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    _seller(principal, "DescribeOrderForIsv")
    order = _required(params, "OrderId")
    if not order.isdigit() or len(order) > 18:
        raise AlibabaError("InvalidParameter.OrderId", f"OrderId must be a whole number, got '{order}'.")
    with db.reader() as session:
        try:
            sub, product, _, buyer = _subscription_of(session, principal, Subscription.id == int(order))
        except LookupError:
            raise AlibabaError(
                "InvalidOrder.NotFound", f"There is no order of your products with id {order}.", 404
            ) from None
        contract = session.scalar(
            select(Contract).where(Contract.subscription_id == sub.id).order_by(Contract.id).limit(1)
        )
        cents = sum(
            session.scalars(
                select(ContractCharge.amount_cents)
                .join(Contract, Contract.id == ContractCharge.contract_id)
                .where(Contract.subscription_id == sub.id, ContractCharge.reason == "purchase")
            )
        )
        annual = list(session.scalars(select(AnnualPurchase).where(AnnualPurchase.subscription_id == sub.id)))
        cents += sum(a.amount_cents for a in annual if a.renews_id is None)
        offer = session.get(Offer, sub.offer_id) if sub.offer_id is not None else None
        if offer is not None and offer.total_cents is not None:
            cents += offer.total_cents
    price = float(from_cents(cents))  # the wire's prices are floats; whole cents print exactly
    period = PERIOD_TYPES.get(contract.duration_months) if contract else ("YEAR" if annual else None)
    answer: dict[str, Any] = {
        "OrderId": sub.id,
        "AliUid": int(buyer.account),
        "ProductCode": product.code,
        "ProductName": product.title,
        "OrderStatus": "NORMAL",
        "OrderType": "TRIAL" if sub.trial_ends_at is not None else "NEW",
        "PayStatus": "PAID",
        "PeriodType": period,
        "Quantity": 1,
        "OriginalPrice": price,
        "TotalPrice": price,
        "PaymentPrice": price,
        "CouponPrice": 0.0,
        "CreatedOn": _millis(sub.started_at),
        "PaidOn": _millis(sub.started_at),
        "InstanceIds": [sub.customer_identifier],
    }
    return {k: v for k, v in answer.items() if v is not None}


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("DescribeLicense", "2015-11-01"): describe_license,
    ("ActivateLicense", "2015-11-01"): activate_license,
    ("DescribeInstanceForIsv", "2015-11-01"): describe_instance_for_isv,
    ("DescribeOrderForIsv", "2015-11-01"): describe_order_for_isv,
}
