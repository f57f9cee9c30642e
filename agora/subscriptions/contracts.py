"""Contracts (PRC-10, SUB-07): quantities per dimension bought upfront for 1/12/24/36 months, upgraded
within the term, turned into entitlements with an expiry and a license the buyer's software can check."""

from __future__ import annotations

import calendar
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.billing import service as billing
from agora.errors import Conflict, Forbidden, Invalid, NotFound
from agora.models import Buyer, Contract, ContractCharge, Entitlement, Product, Role, Subscription
from agora.pricing import service as pricing
from agora.subscriptions.service import visible
from agora.validation import charge_cents
from agora.webhooks import service as webhooks

DURATIONS = (1, 12, 24, 36)  # PRC-10


def add_months(instant: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the end of a shorter month (Jan 31 + 1 → Feb 28)."""
    month = instant.month - 1 + months
    year, month = instant.year + month // 12, month % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


def _unit_prices(
    session: Session, subscription: Subscription, duration: int, at: datetime | None = None
) -> dict[str, Decimal]:
    """Price per unit of each contract dimension for `duration` months, from the price version that governs
    this subscription at `at` (now by default)."""
    document = pricing.price_for(session, subscription, at or clock.now()).pricing
    dimensions = (document.get("contract") or {}).get("dimensions") or []
    if not dimensions:
        raise Invalid.at("duration_months", "this product is not sold by contract [PRC-10]")
    return {d["name"]: Decimal(d["prices"][str(duration)]) for d in dimensions if str(duration) in d["prices"]}


def active_contract(session: Session, subscription: Subscription) -> Contract | None:
    return session.scalar(
        select(Contract)
        .where(Contract.subscription_id == subscription.id, Contract.ends_at > clock.now())
        .order_by(Contract.id.desc())
    )


def _own_active(session: Session, principal: Principal, subscription_id: int) -> Subscription:
    subscription = visible(session, principal, subscription_id)
    if principal.role is not Role.BUYER:
        raise Forbidden("contracts are bought by the subscription's buyer")
    if subscription.ended_at is not None:
        raise Conflict(f"subscription {subscription_id} is cancelled")
    return subscription


def _check_quantities(quantities: dict[str, int], prices: dict[str, Decimal], duration: int) -> None:
    if not quantities:
        raise Invalid.at("quantities", "buy at least one dimension")
    for name, quantity in quantities.items():
        if name not in prices:
            raise Invalid.at(f"quantities.{name}", f"not a contract dimension sold for {duration} months [PRC-10]")
        if quantity <= 0:
            raise Invalid.at(f"quantities.{name}", "must be a positive whole number")


def buy(
    session: Session, principal: Principal, subscription_id: int, duration_months: int, quantities: dict[str, int]
) -> Contract:
    subscription = _own_active(session, principal, subscription_id)
    if duration_months not in DURATIONS:
        raise Invalid.at("duration_months", "contracts run 1, 12, 24 or 36 months [PRC-10]")
    prices = _unit_prices(session, subscription, duration_months)
    _check_quantities(quantities, prices, duration_months)
    if active_contract(session, subscription) is not None:
        raise Conflict(f"subscription {subscription_id} has a running contract; upgrade its quantities instead")
    return record(session, subscription, duration_months, quantities, actor=principal.actor)


def record(
    session: Session,
    subscription: Subscription,
    duration_months: int,
    quantities: dict[str, int],
    *,
    actor: str,
    at: datetime | None = None,
) -> Contract:
    """Write a checked purchase: the contract, its entitlements, its upfront charge, the notices."""
    now = at or clock.now()
    prices = _unit_prices(session, subscription, duration_months, now)
    product = session.get_one(Product, subscription.product_id)
    contract = Contract(
        subscription_id=subscription.id,
        duration_months=duration_months,
        starts_at=now,
        ends_at=add_months(now, duration_months),
        license_key=f"agora:license:{product.code}:{secrets.token_hex(10)}",
    )
    session.add(contract)
    session.flush()
    session.add_all(
        Entitlement(contract_id=contract.id, dimension=name, quantity=quantity, expires_at=contract.ends_at)
        for name, quantity in sorted(quantities.items())
    )
    amount = charge_cents(sum((prices[n] * q for n, q in quantities.items()), Decimal(0)), "quantities")
    charge = ContractCharge(contract_id=contract.id, reason="purchase", amount_cents=amount, at=now)
    session.add(charge)
    session.flush()
    billing.invoice_contract_charge(session, charge)  # BIL-02: invoiced in full at purchase
    _announce(session, actor, subscription, product, contract, "contract.purchase", amount)
    return contract


def upgrade(session: Session, principal: Principal, subscription_id: int, quantities: dict[str, int]) -> Contract:
    """Raise quantities within the term; the increase costs its unit price prorated to the time left."""
    subscription = _own_active(session, principal, subscription_id)
    contract = active_contract(session, subscription)
    if contract is None:
        raise Conflict(f"subscription {subscription_id} has no running contract to upgrade")
    prices = _unit_prices(session, subscription, contract.duration_months)
    _check_quantities(quantities, prices, contract.duration_months)
    current = {
        e.dimension: e for e in session.scalars(select(Entitlement).where(Entitlement.contract_id == contract.id))
    }
    increase: dict[str, int] = {}
    for name, quantity in quantities.items():
        had = current[name].quantity if name in current else 0
        if quantity < had:
            raise Invalid.at(
                f"quantities.{name}", f"cannot go below the {had} already bought (downgrades end the term)"
            )
        if quantity > had:
            increase[name] = quantity - had
    if not increase:
        raise Invalid.at("quantities", "an upgrade must raise at least one quantity")
    now = clock.now()
    share = Decimal((contract.ends_at - now).total_seconds()) / Decimal(
        (contract.ends_at - contract.starts_at).total_seconds()
    )
    amount = charge_cents(sum((prices[n] * q for n, q in increase.items()), Decimal(0)) * share, "quantities")
    for name, quantity in quantities.items():
        if name in current:
            current[name].quantity = quantity
        else:
            session.add(
                Entitlement(contract_id=contract.id, dimension=name, quantity=quantity, expires_at=contract.ends_at)
            )
    charge = ContractCharge(contract_id=contract.id, reason="upgrade", amount_cents=amount, at=now)
    session.add(charge)
    session.flush()
    billing.invoice_contract_charge(session, charge)
    product = session.get_one(Product, subscription.product_id)
    _announce(session, principal.actor, subscription, product, contract, "contract.upgrade", amount)
    return contract


def _announce(
    session: Session,
    actor: str,
    subscription: Subscription,
    product: Product,
    contract: Contract,
    action: str,
    amount_cents: int,
) -> None:
    entitled = entitlements_of(session, contract)
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="subscription",
        target_id=subscription.id,
        after={"contract": contract.id, "entitlements": entitled, "amount_cents": amount_cents},
    )
    buyer = session.get_one(Buyer, subscription.buyer_id)
    webhooks.emit(
        session,
        product,
        "entitlement-updated",
        {
            "subscription_id": subscription.id,
            "product_code": product.code,
            "customer_identifier": subscription.customer_identifier,
            "customer_account": buyer.account,
        },
    )


def entitlements_of(session: Session, contract: Contract) -> dict[str, int]:
    rows = session.scalars(select(Entitlement).where(Entitlement.contract_id == contract.id))
    return {e.dimension: e.quantity for e in rows}


def entitlements(
    principal: Principal,
    *,
    product_code: str | None = None,
    customer_identifier: str | None = None,
    dimension: str | None = None,
) -> Select[Entitlement, Contract, Subscription, Product, Buyer]:
    """Entitlements the caller may see (a seller: its products'; a buyer: its own), unexpired; in
    `ENTITLEMENT_ORDER`, read back from a row by `entitlement_key`."""
    statement = (
        select(Entitlement, Contract, Subscription, Product, Buyer)
        .join(Contract, Contract.id == Entitlement.contract_id)
        .join(Subscription, Subscription.id == Contract.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(Entitlement.expires_at > clock.now())
        .order_by(*ENTITLEMENT_ORDER)
    )
    if principal.role is Role.SELLER:
        statement = statement.where(Product.seller_id == principal.id)
    elif principal.role is Role.BUYER:
        statement = statement.where(Subscription.buyer_id == principal.id)
    if product_code:
        statement = statement.where(Product.code == product_code)
    if customer_identifier:
        statement = statement.where(Subscription.customer_identifier == customer_identifier)
    if dimension:
        statement = statement.where(Entitlement.dimension == dimension)
    return statement


ENTITLEMENT_ORDER = (Product.code, Subscription.customer_identifier, Entitlement.dimension, Entitlement.id)


def entitlement_key(row: Row[Entitlement, Contract, Subscription, Product, Buyer]) -> tuple[Any, ...]:
    entitlement, _, subscription, product, _ = row
    return (product.code, subscription.customer_identifier, entitlement.dimension, entitlement.id)


def entitlement_out(row: Row[Entitlement, Contract, Subscription, Product, Buyer]) -> dict[str, Any]:
    entitlement, contract, subscription, product, buyer = row
    return {
        "product_code": product.code,
        "dimension": entitlement.dimension,
        "customer_identifier": subscription.customer_identifier,
        "customer_account": buyer.account,
        "value": entitlement.quantity,
        "expiration_date": entitlement.expires_at.isoformat(),
        "license": contract.license_key,
    }


def query(
    session: Session,
    principal: Principal,
    *,
    product_code: str | None = None,
    customer_identifier: str | None = None,
    dimension: str | None = None,
) -> list[dict[str, Any]]:
    """Every entitlement `entitlements` selects, in a stable order. `GetEntitlements` answers from this."""
    statement = entitlements(
        principal, product_code=product_code, customer_identifier=customer_identifier, dimension=dimension
    )
    return [entitlement_out(row) for row in session.execute(statement)]


def check_license(session: Session, principal: Principal, license_key: str) -> dict[str, Any]:
    """SUB-07: what the buyer's software checks: is this license valid now, and for what."""
    contract = session.scalar(select(Contract).where(Contract.license_key == license_key))
    if contract is None:
        raise NotFound("no such license")
    subscription = visible(session, principal, contract.subscription_id)  # 404 for anyone else
    now = clock.now()
    return {
        "license": license_key,
        "product_code": session.get_one(Product, subscription.product_id).code,
        "customer_identifier": subscription.customer_identifier,
        "valid": contract.starts_at <= now < contract.ends_at and subscription.ended_at is None,
        "starts_at": contract.starts_at.isoformat(),
        "expires_at": contract.ends_at.isoformat(),
        "entitlements": entitlements_of(session, contract),
    }


def quote(
    document: dict[str, Any], duration_months: int, quantities: dict[str, int]
) -> tuple[list[dict[str, Any]], Decimal]:
    """What a contract would cost at the prices of `document` (a new subscription's: the product's current
    prices, CHG-01): a row per dimension bought and the total. Checks nothing beyond reading the prices;
    `buy` checks."""
    dimensions = (document.get("contract") or {}).get("dimensions") or []
    rows = []
    total = Decimal(0)
    for d in dimensions:
        quantity = quantities.get(d["name"], 0)
        price = d["prices"].get(str(duration_months))
        if price is None or quantity <= 0:
            continue
        amount = Decimal(price) * quantity
        total += amount
        rows.append({"dimension": d["name"], "description": d.get("description") or d["name"], "quantity": quantity,
                     "unit_price": Decimal(price), "amount": amount})  # fmt: skip
    return rows, total
