"""What the seller portal shows of private offers: the seller's offers with their state and acceptance, the
products an offer can be made on, and a new offer's terms read from a form. The rules themselves are
`agora.offers.service`'s (the API's), so the page and the API refuse the same things."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.errors import Invalid, NotFound
from agora.models import Buyer, Offer, Product
from agora.money import parse_decimal
from agora.offers import service
from agora.pricing import preview as prices
from agora.pricing.service import versions

INSTALMENT_ROWS = 4  # the form's rows for a flexible payment schedule (blank rows are left out)
END_OF_DAY = time(23, 59)


@dataclass(frozen=True)
class OfferRow:
    id: str
    product: str
    title: str
    buyer: str
    state: str
    accept_by: datetime
    expired: bool
    duration_days: int
    total: str | None
    instalments: int
    custom_eula: bool
    extended_at: datetime | None
    accepted_at: datetime | None
    subscription_id: int | None


def seller_offers(session: Session, principal: Principal) -> list[OfferRow]:
    """The seller's offers, newest first."""
    rows = session.execute(
        select(Offer, Product.code, Product.title, Buyer.account)
        .join(Product, Product.id == Offer.product_id)
        .join(Buyer, Buyer.id == Offer.buyer_id)
        .where(Product.seller_id == principal.id)
        .order_by(Offer.id.desc())
    ).all()
    found = []
    for offer, code, title, account in rows:
        data = service.out(session, offer)
        found.append(
            OfferRow(
                id=offer.public_id,
                product=code,
                title=title,
                buyer=account,
                state=offer.state,
                accept_by=offer.accept_by,
                expired=service.expired(offer),
                duration_days=offer.duration_days,
                total=data["total"],
                instalments=len(offer.schedule or []),
                custom_eula=offer.eula_digest is not None,
                extended_at=offer.extended_at,
                accepted_at=offer.accepted_at,
                subscription_id=data["subscription_id"],
            )
        )
    return found


@dataclass(frozen=True)
class Offerable:
    code: str
    title: str
    pricing: dict[str, Any]


def offerable(session: Session, principal: Principal) -> list[Offerable]:
    """The seller's public products, each with its current public prices (an offer starts from them)."""
    products = session.scalars(
        select(Product).where(Product.seller_id == principal.id, Product.state == "public").order_by(Product.title)
    )
    found = []
    for product in products:
        current = versions(session, product)
        pricing = current[-1].pricing if current else product.pricing
        if pricing is not None:
            found.append(Offerable(product.code, product.title, pricing))
    return found


def offerable_one(session: Session, principal: Principal, code: str) -> Offerable:
    for product in offerable(session, principal):
        if product.code == code:
            return product
    raise NotFound(f"no public product {code!r} of yours to make an offer on")


def read_terms(product: Offerable, form: Mapping[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The `service.create` data of a new-offer form, or the problems by field name. Only the form's shape
    is checked here (numbers, dates); the rules are the service's."""
    errors: dict[str, str] = {}
    document, price_errors = prices.apply_inputs(product.pricing, form)
    errors.update(price_errors)
    buyer = form.get("buyer", "").strip()
    if not buyer:
        errors["buyer"] = "give the buyer's 12-digit account id"
    duration = form.get("duration_days", "").strip()
    if not duration.isdigit():
        errors["duration_days"] = "give a whole number of days"
    accept_on = _date(form.get("accept_by", ""))
    if accept_on is None:
        errors["accept_by"] = "give the last day the buyer can accept the offer"
    total: Decimal | None = None
    if form.get("total", "").strip():
        try:
            total = parse_decimal(form["total"].strip())
        except ValueError as exc:
            errors["total"] = str(exc)
    schedule = []
    for n in range(INSTALMENT_ROWS):
        at, amount = form.get(f"instalment_at_{n}", "").strip(), form.get(f"instalment_amount_{n}", "").strip()
        if not at and not amount:
            continue
        due = _date(at)
        if due is None:
            errors[f"instalment_at_{n}"] = "give the instalment's due date"
        if not amount:
            errors[f"instalment_amount_{n}"] = "give the instalment's amount"
        if due is not None and amount:
            schedule.append({"at": datetime.combine(due, time(0), tzinfo=UTC).isoformat(), "amount": amount})
    if errors or document is None or accept_on is None:
        return None, errors
    return {
        "product": product.code,
        "buyer": buyer,
        "pricing": document,
        "duration_days": int(duration),
        "accept_by": datetime.combine(accept_on, END_OF_DAY, tzinfo=UTC),
        "total": total,
        "schedule": schedule,
    }, {}


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def field_errors(error: Invalid) -> dict[str, str]:
    """The service's located problems keyed by the form's field names (`schedule[1].amount` is the second
    instalment's amount; a price's problem is shown with the prices)."""
    found: dict[str, str] = {}
    for problem in error.problems or [{"loc": "", "msg": error.detail}]:
        loc, message = problem["loc"], problem["msg"]
        if loc.startswith("schedule[") and loc.endswith("].amount"):
            loc = f"instalment_amount_{loc[len('schedule[') : -len('].amount')]}"
        elif loc.startswith("pricing"):
            loc = "pricing"
        elif loc not in ("buyer", "duration_days", "accept_by", "total", "schedule", "file"):
            loc = "form"
        found[loc] = f"{message}" if loc != "form" else error.detail
    return found
