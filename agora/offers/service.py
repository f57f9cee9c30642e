"""Private offers (OFR-01…03, SEL-03): a seller's own terms for one buyer account.

States: draft → extended → accepted; a draft can be cancelled; an extended offer can neither be edited
nor cancelled (OFR-02) — changing terms means a new offer. Past its deadline an extended offer can no
longer be accepted (OFR-03).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.errors import Forbidden, Invalid, InvalidTransition, NotFound
from agora.models import Buyer, Offer, Product, Role, Seller, Subscription
from agora.money import from_cents, parse_decimal, to_cents
from agora.notifications.service import notify
from agora.pricing.rules import PricingContext, validate_pricing
from agora.pricing.schema import PricingDocument
from agora.subscriptions import service as subscriptions

MAX_DURATION_DAYS = 3 * 365 + 1  # OFR-01: multi-year up to 3 years (one leap day)


def visible(session: Session, principal: Principal, public_id: str) -> Offer:
    """OFR-03: the seller who made it, the buyer it names (once extended) and operators; 404 for anyone else."""
    offer = session.scalar(select(Offer).where(Offer.public_id == public_id))
    if offer is None or not _may_see(session, principal, offer):
        raise NotFound(f"no offer {public_id}")
    return offer


def _may_see(session: Session, principal: Principal, offer: Offer) -> bool:
    if principal.role is Role.OPERATOR:
        return True
    if principal.role is Role.BUYER:
        return offer.buyer_id == principal.id and offer.state != "draft"
    return session.get_one(Product, offer.product_id).seller_id == principal.id


def _check_terms(
    session: Session,
    product: Product,
    seller: Seller,
    pricing: PricingDocument,
    duration_days: int,
    accept_by: datetime,
    total: Decimal | None,
    schedule: list[dict[str, Any]],
    made_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The offer's terms checked as of `made_at` (now by default); its instalments as stored."""
    result = validate_pricing(pricing, PricingContext(product.kind, seller.tax_form))
    if result.violations:
        v = result.violations[0]
        raise Invalid.at(f"pricing.{v.path}" if v.path else "pricing", f"{v.message} [{v.rule}]")
    if not 1 <= duration_days <= MAX_DURATION_DAYS:
        raise Invalid.at("duration_days", f"must be 1 to {MAX_DURATION_DAYS} days (offers run up to 3 years) [OFR-01]")
    if accept_by <= (made_at or clock.now()):
        raise Invalid.at("accept_by", "the acceptance deadline must be in the future")
    if not schedule:
        return []
    if total is None:
        raise Invalid.at("total", "a payment schedule needs the offer's total")
    instalments = []
    for i, item in enumerate(schedule):
        amount = parse_decimal(item["amount"])
        if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise Invalid.at(f"schedule[{i}].amount", "must be a positive amount in whole cents")
        instalments.append({"at": item["at"], "amount": format(amount, "f")})
    dates = [datetime.fromisoformat(i["at"]) for i in instalments]
    if dates != sorted(dates):
        raise Invalid.at("schedule", "instalments must be in date order")
    paid = sum((Decimal(i["amount"]) for i in instalments), Decimal(0))
    if paid != total:
        raise Invalid.at("schedule", f"instalments sum to {paid}, not the total {total} [OFR-01]")
    return instalments


def create(session: Session, principal: Principal, data: dict[str, Any], *, entity_id: str | None = None) -> Offer:
    """OFR-01 / SEL-03: a draft offer of one of the seller's public products to one buyer account."""
    if principal.role is not Role.SELLER:
        raise Forbidden("private offers are made by sellers")
    seller = session.get_one(Seller, principal.id)
    if not seller.data_sharing:
        raise Forbidden("private offers need enrolment in the enhanced data sharing program [SEL-03]")
    product = session.scalar(select(Product).where(Product.code == data["product"]))
    if product is None or product.seller_id != seller.id:
        raise NotFound(f"no product {data['product']!r}")
    if product.state != "public":
        raise InvalidTransition(f"product {product.code!r} is {product.state}; offers are made on public products")
    buyer = session.scalar(select(Buyer).where(Buyer.account == data["buyer"]))
    if buyer is None:
        raise Invalid.at("buyer", f"no buyer account {data['buyer']}")
    pricing = data["pricing"]
    total = data.get("total")
    schedule = _check_terms(
        session, product, seller, pricing, data["duration_days"], data["accept_by"], total, data.get("schedule") or []
    )
    public_id = f"offer-{secrets.token_hex(8)}"
    offer = Offer(
        public_id=public_id,
        entity_id=entity_id or public_id,  # the Catalog API's Offer@1.0 id
        product_id=product.id,
        buyer_id=buyer.id,
        state="draft",
        pricing=pricing.stored(),
        duration_days=data["duration_days"],
        accept_by=data["accept_by"],
        total_cents=to_cents(total) if total is not None else None,
        schedule=schedule,
    )
    session.add(offer)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="offer.create",
        target_type="offer",
        target_id=offer.public_id,
        after={"product": product.code, "buyer": buyer.account, "duration_days": offer.duration_days},
    )
    return offer


def load(
    session: Session,
    product: Product,
    buyer: Buyer,
    data: dict[str, Any],
    *,
    public_id: str,
    state: str,
    at: datetime,
    accepted_at: datetime | None,
    entity_id: str | None,
    agreement_id: str | None,
    actor: str,
) -> Offer:
    """A manifest's offer as it stands: made (and extended, unless a draft) at `at`, accepted at `accepted_at`,
    under the same rules as the API's (OFR-01/03, SEL-03), judged at those instants rather than now. An accepted
    offer's subscription starts at its acceptance, as `accept` starts it."""
    seller = session.get_one(Seller, product.seller_id)
    if not seller.data_sharing:
        raise Forbidden("private offers need enrolment in the enhanced data sharing program [SEL-03]")
    if product.state != "public":
        raise InvalidTransition(f"product {product.code!r} is {product.state}; offers are made on public products")
    total = data.get("total")
    schedule = _check_terms(
        session,
        product,
        seller,
        data["pricing"],
        data["duration_days"],
        data["accept_by"],
        total,
        data.get("schedule") or [],
        made_at=at,
    )
    if accepted_at is not None and not at <= accepted_at < data["accept_by"]:
        raise Invalid.at("accepted_at", "an offer is accepted after it is made and before its deadline [OFR-03]")
    offer = Offer(
        public_id=public_id,
        entity_id=entity_id,
        product_id=product.id,
        buyer_id=buyer.id,
        state=state,
        pricing=data["pricing"].stored(),
        duration_days=data["duration_days"],
        accept_by=data["accept_by"],
        total_cents=to_cents(total) if total is not None else None,
        schedule=schedule,
        extended_at=None if state == "draft" else at,
        accepted_at=accepted_at,
    )
    session.add(offer)
    session.flush()
    if accepted_at is not None:
        subscription = subscriptions.start(
            session,
            buyer,
            product,
            eula=subscriptions.STANDARD_EULA,
            offer_id=offer.id,
            at=accepted_at,
            agreement_id=agreement_id,
        )
        _bill_instalments(session, offer, subscription)
    audit.record(
        session,
        actor=actor,
        action="offer.load",
        target_type="offer",
        target_id=offer.public_id,
        after={"product": product.code, "buyer": buyer.account, "state": state, "entity_id": entity_id},
    )
    return offer


def _draft(session: Session, principal: Principal, public_id: str, action: str) -> Offer:
    offer = visible(session, principal, public_id)
    if principal.role is not Role.SELLER:
        raise Forbidden("only the offer's seller changes it")
    if offer.state != "draft":
        raise InvalidTransition(
            f"offer {public_id} is {offer.state}: an extended offer cannot be {action}; make a new offer [OFR-02]"
        )
    return offer


def attach_eula(session: Session, principal: Principal, public_id: str, digest: str) -> Offer:
    offer = _draft(session, principal, public_id, "edited")
    offer.eula_digest = digest
    audit.record(
        session,
        actor=principal.actor,
        action="offer.eula",
        target_type="offer",
        target_id=public_id,
        after={"eula": digest},
    )
    return offer


def cancel(session: Session, principal: Principal, public_id: str) -> Offer:
    offer = _draft(session, principal, public_id, "cancelled")
    offer.state = "cancelled"
    audit.record(
        session,
        actor=principal.actor,
        action="offer.cancel",
        target_type="offer",
        target_id=public_id,
        before={"state": "draft"},
        after={"state": "cancelled"},
    )
    return offer


def extend(session: Session, principal: Principal, public_id: str) -> Offer:
    """The offer goes to its buyer and is frozen (OFR-02); the buyer gets the link (OFR-03)."""
    offer = _draft(session, principal, public_id, "extended again")
    if offer.accept_by <= clock.now():
        raise Invalid.at("accept_by", "the acceptance deadline has passed; make a new offer")
    offer.state = "extended"
    offer.extended_at = clock.now()
    product = session.get_one(Product, offer.product_id)
    buyer = session.get_one(Buyer, offer.buyer_id)
    notify(
        session,
        to=buyer.email,
        kind="offer_extended",
        subject=f"A private offer for {product.title}",
        body=(
            f"{session.get_one(Seller, product.seller_id).name} made you a private offer for {product.title}. "
            f"Review and accept it before {offer.accept_by:%Y-%m-%d %H:%M} UTC: /api/v1/offers/{offer.public_id} "
            f"(accept with POST /api/v1/offers/{offer.public_id}/accept)."
        ),
    )
    audit.record(
        session,
        actor=principal.actor,
        action="offer.extend",
        target_type="offer",
        target_id=public_id,
        before={"state": "draft"},
        after={"state": "extended"},
    )
    return offer


def accept(session: Session, principal: Principal, public_id: str, *, accept_eula: bool) -> Offer:
    """OFR-03: only the named buyer, only before the deadline. The offer's terms start a subscription; a
    public subscription the buyer had to the product ends at that instant."""
    offer = visible(session, principal, public_id)
    if principal.role is not Role.BUYER:
        raise Forbidden("offers are accepted by the buyer they name")
    if offer.state != "extended":
        raise InvalidTransition(f"offer {public_id} is {offer.state}; only an extended offer can be accepted")
    now = clock.now()
    if now >= offer.accept_by:
        raise InvalidTransition(
            f"offer {public_id} could be accepted until {offer.accept_by.isoformat()}; ask the seller for a new one"
            " [OFR-03]"
        )
    if not accept_eula:
        raise Invalid.at("accept_eula", "the buyer must accept the offer's EULA [LST-08]")
    current = session.scalar(
        select(Subscription).where(
            Subscription.buyer_id == offer.buyer_id,
            Subscription.product_id == offer.product_id,
            Subscription.ended_at.is_(None),
        )
    )
    if current is not None:
        subscriptions.end(session, current)
        session.flush()
    subscription = subscriptions.start(
        session,
        session.get_one(Buyer, offer.buyer_id),
        session.get_one(Product, offer.product_id),
        eula=f"custom:{offer.eula_digest}" if offer.eula_digest else subscriptions.STANDARD_EULA,
        offer_id=offer.id,
    )
    offer.state = "accepted"
    offer.accepted_at = now
    _bill_instalments(session, offer, subscription)
    audit.record(
        session,
        actor=principal.actor,
        action="offer.accept",
        target_type="offer",
        target_id=public_id,
        before={"state": "extended"},
        after={
            "state": "accepted",
            "subscription": subscription.id,
            "replaced_subscription": current.id if current else None,
        },
    )
    return offer


def _bill_instalments(session: Session, offer: Offer, subscription: Subscription) -> None:
    """BIL-02: each instalment of an accepted offer is invoiced on its date (at once if that has passed)."""
    now = clock.now()
    for index, instalment in enumerate(offer.schedule or []):
        due = datetime.fromisoformat(str(instalment["at"]).replace("Z", "+00:00"))
        jobs.enqueue(
            session,
            "billing.offer_instalment",
            {"subscription_id": subscription.id, "offer_id": offer.id, "index": index},
            run_at=max(due, now),
            dedupe_key=f"instalment:{offer.id}:{index}",
        )


def ends_at(offer: Offer) -> datetime | None:
    return offer.accepted_at + timedelta(days=offer.duration_days) if offer.accepted_at else None


def out(session: Session, offer: Offer) -> dict[str, Any]:
    product = session.get_one(Product, offer.product_id)
    buyer = session.get_one(Buyer, offer.buyer_id)
    end = ends_at(offer)
    return {
        "id": offer.public_id,
        "product": product.code,
        "buyer": buyer.account,
        "state": offer.state,
        "pricing": offer.pricing,
        "duration_days": offer.duration_days,
        "accept_by": offer.accept_by.isoformat(),
        "total": str(from_cents(offer.total_cents)) if offer.total_cents is not None else None,
        "schedule": offer.schedule,
        "eula": {"kind": "custom", "url": f"/api/v1/offers/{offer.public_id}/eula"}
        if offer.eula_digest
        else {"kind": "standard", "url": None},
        "extended_at": offer.extended_at.isoformat() if offer.extended_at else None,
        "accepted_at": offer.accepted_at.isoformat() if offer.accepted_at else None,
        "ends_at": end.isoformat() if end else None,
        "subscription_id": session.scalar(select(Subscription.id).where(Subscription.offer_id == offer.id)),
        "link": f"/api/v1/offers/{offer.public_id}",
    }


def banners(session: Session, viewer: Principal | None, product: Product) -> list[dict[str, str]]:
    """OFR-03: the banner a buyer sees on a product page for each open offer made to them."""
    if viewer is None or viewer.role is not Role.BUYER:
        return []
    rows = session.scalars(
        select(Offer).where(
            Offer.product_id == product.id,
            Offer.buyer_id == viewer.id,
            Offer.state == "extended",
            Offer.accept_by > clock.now(),
        )
    )
    return [
        {"offer": o.public_id, "accept_by": o.accept_by.isoformat(), "link": f"/api/v1/offers/{o.public_id}"}
        for o in rows
    ]


def expired(offer: Offer) -> bool:
    """OFR-03: past its deadline an offer can no longer be accepted."""
    return clock.now() >= offer.accept_by
