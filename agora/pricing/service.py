"""Price versions, price-change notices, pricing-model change requests, fees, infrastructure prices."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.decisions import decide
from agora.errors import AgoraError, Conflict, Invalid, InvalidTransition, NotFound
from agora.models import (
    Buyer,
    FeeRate,
    InfrastructurePrice,
    Offer,
    PriceVersion,
    PricingModelRequest,
    Product,
    Seller,
    Subscription,
)
from agora.notifications.service import notify
from agora.pricing.changes import existing_subscriber_effective_date
from agora.pricing.rules import PricingContext, Violation, pricing_family, validate_pricing
from agora.pricing.rules_change import change_violations
from agora.pricing.schema import PricingDocument
from agora.pricing.versions import Version, applicable

NO_FEE_FAMILIES = frozenset({"free", "byol"})  # PRC-17


class ModelChangeNeedsApproval(AgoraError):
    status_code = 409
    code = "model_change_needs_approval"


def _refuse(violations: list[Violation]) -> Invalid:
    return Invalid.of([(f"pricing.{v.path}" if v.path else "pricing", f"{v.message} [{v.rule}]") for v in violations])


def versions(session: Session, product: Product) -> list[PriceVersion]:
    return list(
        session.scalars(select(PriceVersion).where(PriceVersion.product_id == product.id).order_by(PriceVersion.number))
    )


def launch_price(session: Session, product: Product, *, actor: str) -> PriceVersion | None:
    """Version 1, written when a product goes public; nothing if it already has versions or no pricing."""
    if product.pricing is None or versions(session, product):
        return None
    version = PriceVersion(
        product_id=product.id,
        number=1,
        pricing=product.pricing,
        family=product.pricing_family or pricing_family(PricingDocument.model_validate(product.pricing)),
        noticed_at=clock.now(),
        existing_from=None,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    return version


def _validate(session: Session, product: Product, document: PricingDocument) -> None:
    seller = session.get_one(Seller, product.seller_id)
    launched = product.published_at.date() if product.published_at else None
    result = validate_pricing(
        document, PricingContext(product.kind, seller.tax_form, launched_on=launched, as_of=clock.now().date())
    )
    if result.violations:
        raise _refuse(result.violations)


def _current(session: Session, product: Product) -> PriceVersion:
    found = versions(session, product)
    if not found:
        raise InvalidTransition(f"product {product.code!r} is {product.state}: its prices are edited with the listing")
    return found[-1]


def add_version(session: Session, product: Product, document: PricingDocument, *, actor: str) -> PriceVersion:
    """A new price, noticed now: new subscriptions take it at once (CHG-01), existing ones on the first
    day of the month after notice + 90 days (CHG-02); every affected subscriber is told."""
    current = _current(session, product)
    violations = change_violations(PricingDocument.model_validate(current.pricing), document)
    if violations:
        raise _refuse(violations)
    now = clock.now()
    effective = existing_subscriber_effective_date(now.date())
    version = PriceVersion(
        product_id=product.id,
        number=current.number + 1,
        pricing=document.stored(),
        family=pricing_family(document),
        noticed_at=now,
        existing_from=datetime.combine(effective, time(0), tzinfo=UTC),
        created_by=actor,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"another price change to {product.code!r} was made at the same moment; retry") from None
    product.pricing = version.pricing
    product.pricing_family = version.family
    product.free_trial = bool(document.free_trial_days)
    product.updated_at = now
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="price.change",
        target_type="product",
        target_id=product.code,
        before={"version": current.number, "pricing": current.pricing},
        after={"version": version.number, "pricing": version.pricing, "existing_from": effective.isoformat()},
    )
    jobs.enqueue(session, "pricing.notify_subscribers", {"version_id": version.id})
    return version


def change_price(session: Session, principal: Principal, product: Product, document: PricingDocument) -> PriceVersion:
    """A seller's new prices within the same pricing model; a different model needs approval (PRC-16)."""
    _validate(session, product, document)
    current = _current(session, product)
    if document.stored() == current.pricing:
        return current  # the same prices again (a retried request) are not a change
    family = pricing_family(document)
    if family != current.family:
        violations = change_violations(PricingDocument.model_validate(current.pricing), document)
        if violations:
            raise _refuse(violations)
        raise ModelChangeNeedsApproval(
            f"pricing: moving from {current.family} to {family} pricing is a pricing-model change; "
            f"ask for it with POST /api/v1/products/{product.code}/pricing-model-requests [PRC-16]"
        )
    return add_version(session, product, document, actor=principal.actor)


def request_model_change(
    session: Session, principal: Principal, product: Product, document: PricingDocument
) -> PricingModelRequest:
    _validate(session, product, document)
    current = _current(session, product)
    violations = change_violations(PricingDocument.model_validate(current.pricing), document)
    if violations:
        raise _refuse(violations)
    family = pricing_family(document)
    if family == current.family:
        raise Invalid.at(
            "pricing",
            f"this is still {family} pricing; change prices with PUT /api/v1/products/{product.code}/pricing",
            "same pricing model",
        )
    request = PricingModelRequest(
        product_id=product.id,
        pricing=document.stored(),
        from_family=current.family,
        to_family=family,
        state="pending",
        requested_by=principal.actor,
    )
    session.add(request)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="pricing_model_request.create",
        target_type="product",
        target_id=product.code,
        after={"request": request.id, "from": current.family, "to": family},
    )
    return request


def decide_model_change(
    session: Session, principal: Principal, request_id: int, *, approve: bool, reason: str | None
) -> PricingModelRequest:
    request = session.get(PricingModelRequest, request_id)
    if request is None:
        raise NotFound(f"no pricing-model request {request_id}")
    decide(request, principal, approve=approve, reason=reason, what="pricing-model request")
    product = session.get_one(Product, request.product_id)
    audit.record(
        session,
        actor=principal.actor,
        action=f"pricing_model_request.{'approve' if approve else 'reject'}",
        target_type="product",
        target_id=product.code,
        after={"request": request.id, "state": request.state, "reason": reason},
    )
    seller = session.get_one(Seller, product.seller_id)
    if approve:
        add_version(session, product, PricingDocument.model_validate(request.pricing), actor=principal.actor)
    notify(
        session,
        to=seller.email or f"seller:{seller.handle}",
        kind=f"pricing_model_{request.state}",
        subject=f"Pricing-model change {request.state}: {product.title}",
        body=f"Your request to move {product.code} from {request.from_family} to {request.to_family} pricing "
        f"was {request.state}." + (f"\n\n{reason}" if reason else ""),
    )
    return request


def price_for(session: Session, subscription: Subscription, at: datetime) -> Version:
    """The one answer billing asks: which prices govern this subscription at this instant."""
    if subscription.offer_id is not None:
        offer = session.get_one(Offer, subscription.offer_id)  # a private offer's own prices (OFR-01)
        return Version(0, offer.accepted_at or subscription.started_at, offer.pricing)
    product = session.get_one(Product, subscription.product_id)
    rows = versions(session, product)
    return applicable([Version(v.number, v.noticed_at, v.pricing) for v in rows], subscription.started_at, at)


@jobs.handler("pricing.notify_subscribers")
def notify_subscribers(session: Session, payload: dict[str, Any]) -> None:
    """CHG-02: every subscriber the change reaches later is told the date it takes effect."""
    version = session.get(PriceVersion, payload["version_id"])
    if version is None or version.existing_from is None:
        return
    product = session.get_one(Product, version.product_id)
    rows = session.execute(
        select(Subscription, Buyer)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(
            Subscription.product_id == product.id,
            Subscription.started_at < version.noticed_at,
            (Subscription.ended_at.is_(None)) | (Subscription.ended_at > version.noticed_at),
        )
        .order_by(Subscription.id)
    )
    effective = version.existing_from.date().isoformat()
    for subscription, buyer in rows:
        notify(
            session,
            to=buyer.email,
            kind="price_change",
            subject=f"Price change for {product.title} from {effective}",
            body=(
                f"The prices of {product.title} ({product.code}) change. For your subscription "
                f"{subscription.customer_identifier} the new prices apply from {effective}; until then "
                f"you keep your current prices. Annual terms you already bought keep their price."
            ),
        )


# --- fees (PRC-17) --------------------------------------------------------------------------------------


def fee_percent(session: Session, kind: str, family: str, *, open_source: bool = False) -> Decimal:
    """The listing fee on a product's software charges, in percent. Free, BYOL and open-source products
    pay none, whatever is configured (PRC-17). The most specific configured rate wins; none is 0."""
    if family in NO_FEE_FAMILIES or open_source:
        return Decimal(0)
    rates = {(r.kind, r.family): r.percent for r in session.scalars(select(FeeRate))}
    for key in ((kind, family), (kind, "*"), ("*", family), ("*", "*")):
        if key in rates:
            return rates[key]
    return Decimal(0)


def set_fee(session: Session, principal: Principal, kind: str, family: str, percent: Decimal) -> FeeRate:
    if family in NO_FEE_FAMILIES and percent != 0:
        raise Invalid.at("percent", f"{family} products pay no listing fee [PRC-17]", "must be 0")
    if not (Decimal(0) <= percent <= Decimal(100)):
        raise Invalid.at("percent", "must be between 0 and 100", "0–100")
    rate = session.scalar(select(FeeRate).where(FeeRate.kind == kind, FeeRate.family == family))
    before = {"percent": str(rate.percent)} if rate else None
    if rate is None:
        rate = FeeRate(kind=kind, family=family, percent=percent)
        session.add(rate)
    else:
        rate.percent = percent
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="fee.set",
        target_type="fee",
        target_id=f"{kind}/{family}",
        before=before,
        after={"percent": str(percent)},
    )
    return rate


def set_infrastructure_price(
    session: Session, principal: Principal, instance_type: str, region: str, hourly: Decimal
) -> InfrastructurePrice:
    """LST-10: the operator's estimate for one instance type in one region (an upsert, audited)."""
    row = session.scalar(
        select(InfrastructurePrice).where(
            InfrastructurePrice.instance_type == instance_type, InfrastructurePrice.region == region
        )
    )
    before = {"hourly": str(row.hourly)} if row else None
    if row is None:
        row = InfrastructurePrice(instance_type=instance_type, region=region, hourly=hourly)
        session.add(row)
    else:
        row.hourly = hourly
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="infrastructure_price.set",
        target_type="infrastructure_price",
        target_id=f"{instance_type}/{region}",
        before=before,
        after={"hourly": str(hourly)},
    )
    return row
