"""The seller's pricing page: a product's prices as one input per price, and the preview of a price change.

The preview answers, before anything is published: what did each current subscriber pay for the last
billed month, and what would the same month cost at the proposed prices? It re-rates the month's recorded
usage and instance-hours with the billing's own rating core (`agora.billing.rating`), the terms the
month's close builds (`billing.service.rating_terms`, annual coverage and trials included) and the usage it
reads (`billing.automatic.period_usage`) — only the price document differs. Nothing is written: a preview
is a read.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.billing import rating
from agora.billing.automatic import period_usage
from agora.billing.service import rating_terms
from agora.catalog import service as catalog
from agora.errors import Invalid
from agora.models import BillingPeriod, Buyer, Invoice, InvoiceLine, PricingModelRequest, Product, Subscription
from agora.money import to_cents
from agora.pricing.changes import existing_subscriber_effective_date, price_change_applies_from
from agora.pricing.schema import Price, PricingDocument
from agora.pricing.service import versions
from agora.pricing.versions import Version

PRICE: TypeAdapter[Decimal] = TypeAdapter(Price)
ML_USES = {
    "training": "ML training, per instance-hour",
    "realtime_inference": "Real-time inference, per instance-hour",
    "batch_inference": "Batch inference, per instance-hour",
}


@dataclass(frozen=True)
class PriceInput:
    """One price of a pricing document: `key` is its form field name, `label` names what it prices."""

    key: str
    label: str
    value: str
    hint: str = ""


@dataclass(frozen=True)
class PriceGroup:
    legend: str
    inputs: list[PriceInput]


def price_inputs(pricing: Mapping[str, Any]) -> list[PriceGroup]:
    """Every price of the document, grouped by what it is, in a stable order."""
    groups: list[PriceGroup] = []
    if pricing.get("hourly"):
        groups.append(
            PriceGroup(
                "Hourly price per instance type",
                [
                    PriceInput(f"hourly/{t}", t, str(p), "per instance-hour")
                    for t, p in sorted(pricing["hourly"].items())
                ],
            )
        )
    if pricing.get("annual"):
        groups.append(
            PriceGroup(
                "Annual price per instance type",
                [
                    PriceInput(f"annual/{t}", t, str(p), "per instance, per year")
                    for t, p in sorted(pricing["annual"].items())
                ],
            )
        )
    if pricing.get("monthly") is not None:
        groups.append(
            PriceGroup("Recurring fee", [PriceInput("monthly", "Monthly fee", str(pricing["monthly"]), "per month")])
        )
    usage = pricing.get("usage")
    if usage:
        groups.append(
            PriceGroup(
                "Usage price per unit",
                [
                    PriceInput(f"usage/{d['name']}", d["name"], str(d["rate"]), _unit_hint(d))
                    for d in usage["dimensions"]
                ],
            )
        )
    contract = pricing.get("contract")
    if contract:
        inputs = []
        for d in contract["dimensions"]:
            for months, price in sorted(d["prices"].items(), key=lambda kv: int(kv[0])):
                label = f"{d['name']}, {months} month{'s' * (months != '1')}"
                inputs.append(PriceInput(f"contract/{d['name']}/{months}", label, str(price), d["description"]))
        groups.append(PriceGroup("Contract price per unit", inputs))
    for use, legend in ML_USES.items():
        prices = (pricing.get("ml") or {}).get(use)
        if prices:
            groups.append(
                PriceGroup(
                    legend,
                    [PriceInput(f"ml/{use}/{t}", t, str(p), "per instance-hour") for t, p in sorted(prices.items())],
                )
            )
    tiered = pricing.get("tiered")
    if tiered:
        for item in tiered["items"]:
            inputs = []
            below = 0
            for n, tier in enumerate(item["tiers"]):
                up_to = tier.get("up_to")
                label = f"{item['name']}, {below + 1:,} to {up_to:,}" if up_to else f"{item['name']}, above {below:,}"
                inputs.append(
                    PriceInput(
                        f"tiered/{item['name']}/{n}", label, str(tier["price"]), f"per unit, per {tiered['period']}"
                    )
                )
                below = up_to or below
            groups.append(PriceGroup(f"Tiered price of {item['name']}", inputs))
    return groups


def _unit_hint(dimension: Mapping[str, Any]) -> str:
    unit = dimension.get("unit")
    return f"{dimension['description']} (per {unit})" if unit else str(dimension["description"])


def apply_inputs(
    pricing: Mapping[str, Any], values: Mapping[str, str]
) -> tuple[PricingDocument | None, dict[str, str]]:
    """The document with each price replaced by the form's value for it (a price left out keeps its value).
    Returns the new document, or the problems by field key — each message as the API words it."""
    changed: dict[str, Any] = copy.deepcopy(dict(pricing))
    errors: dict[str, str] = {}
    for group in price_inputs(pricing):
        for entry in group.inputs:
            raw = values.get(entry.key, entry.value).strip()
            if not raw:
                errors[entry.key] = "give a price (0 for none)"
                continue
            try:
                value = format(PRICE.validate_python(raw), "f")
            except ValidationError as exc:
                errors[entry.key] = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
                continue
            _put(changed, entry.key, value)
    if errors:
        return None, errors
    return PricingDocument.model_validate(changed), {}


def _put(document: dict[str, Any], key: str, value: str) -> None:
    kind, _, rest = key.partition("/")
    if kind in ("hourly", "annual"):
        document[kind][rest] = value
    elif kind == "monthly":
        document["monthly"] = value
    elif kind == "usage":
        next(d for d in document["usage"]["dimensions"] if d["name"] == rest)["rate"] = value
    elif kind == "contract":
        name, _, months = rest.rpartition("/")
        next(d for d in document["contract"]["dimensions"] if d["name"] == name)["prices"][months] = value
    elif kind == "ml":
        use, _, instance_type = rest.partition("/")
        document["ml"][use][instance_type] = value
    elif kind == "tiered":
        name, _, index = rest.rpartition("/")
        next(i for i in document["tiered"]["items"] if i["name"] == name)["tiers"][int(index)]["price"] = value


def changed_keys(pricing: Mapping[str, Any], proposed: PricingDocument) -> set[str]:
    """The inputs whose price the proposal changes."""
    after = {e.key: Decimal(e.value) for g in price_inputs(proposed.stored()) for e in g.inputs}
    return {e.key for g in price_inputs(pricing) for e in g.inputs if Decimal(e.value) != after.get(e.key)}


# --- the page's facts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    number: int
    family: str
    noticed_at: datetime
    existing_from: datetime | None
    created_by: str
    current: bool
    prices: list[tuple[str, str]]  # (what, price) of every price of the version


def _prices_of(pricing: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every price of a version, each named briefly: `c5.large per hour`, `Monthly fee`, `users per unit`."""
    per = {"hourly": " per hour", "annual": " per year", "usage": " per unit", "ml": " per hour", "tiered": " per unit"}
    found = []
    for group in price_inputs(pricing):
        for entry in group.inputs:
            kind = entry.key.partition("/")[0]
            use = entry.key.split("/")[1].replace("_", " ") + ", " if kind == "ml" else ""
            found.append((f"{use}{entry.label}{per.get(kind, '')}", entry.value))
    return found


@dataclass(frozen=True)
class RequestRow:
    id: int
    from_family: str
    to_family: str
    state: str
    reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class PricingPage:
    code: str
    title: str
    state: str
    family: str | None
    pricing: dict[str, Any] | None
    versions: list[VersionRow]
    requests: list[RequestRow]

    @property
    def changeable(self) -> bool:
        """CHG-01/02 apply to published prices; a draft's prices are edited with the listing."""
        return bool(self.versions) and self.pricing is not None


def pricing_page(session: Session, principal: Principal, code: str) -> PricingPage:
    """The product's prices, versions and pricing-model requests; another seller's product is 404."""
    product = catalog.get_managed(session, principal, code)
    found = versions(session, product)
    rows = [
        VersionRow(
            v.number, v.family, v.noticed_at, v.existing_from, v.created_by, i == len(found) - 1, _prices_of(v.pricing)
        )
        for i, v in enumerate(found)
    ]
    requests = session.scalars(
        select(PricingModelRequest)
        .where(PricingModelRequest.product_id == product.id)
        .order_by(PricingModelRequest.created_at.desc(), PricingModelRequest.id.desc())
    )
    return PricingPage(
        code=product.code,
        title=product.title,
        state=product.state,
        family=found[-1].family if found else product.pricing_family,
        pricing=found[-1].pricing if found else product.pricing,
        versions=list(reversed(rows)),
        requests=[RequestRow(r.id, r.from_family, r.to_family, r.state, r.reason, r.created_at) for r in requests],
    )


# --- the preview (CHG-01/02) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberPreview:
    account: str
    subscription_id: int
    started_at: datetime
    billed_cents: int | None  # the last billed month's charges of this subscription; None if not billed then
    proposed_cents: int | None  # the same month's usage at the proposed prices
    applies_from: date

    @property
    def difference_cents(self) -> int | None:
        if self.billed_cents is None or self.proposed_cents is None:
            return None
        return self.proposed_cents - self.billed_cents


@dataclass(frozen=True)
class Preview:
    period: str | None  # the last billed (closed) month, None before the first close
    notice_on: date  # the notice goes out today, if published now
    existing_from: date  # CHG-02: when existing subscribers are reached
    subscribers: list[SubscriberPreview]
    on_offers: int  # subscribers on a private offer's own prices, which the change does not touch
    changed: set[str] = field(default_factory=set)

    @property
    def month(self) -> str | None:
        """The billed month as people write it: 'November 2026'."""
        return rating.month_bounds(self.period)[0].strftime("%B %Y") if self.period else None

    @property
    def billed_total(self) -> int:
        return sum(s.billed_cents or 0 for s in self.subscribers)

    @property
    def proposed_total(self) -> int:
        return sum(s.proposed_cents or 0 for s in self.subscribers)


def preview(session: Session, principal: Principal, code: str, proposed: PricingDocument) -> Preview:
    """What each current subscriber paid for the last billed month and what the same usage costs at the
    proposed prices, with the dates the change would reach them if published now. Reads only."""
    product = catalog.get_managed(session, principal, code)
    current = versions(session, product)
    if not current:
        raise Invalid.at(
            "pricing", f"product {product.code!r} is {product.state}: it has no published prices to change"
        )
    now = clock.now()
    notice_on = now.date()
    rows = session.execute(
        select(Subscription, Buyer.account)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(Subscription.product_id == product.id, Subscription.ended_at.is_(None))
        .order_by(Buyer.account, Subscription.id)
    ).all()
    public = [(s, account) for s, account in rows if s.offer_id is None]
    period = session.scalar(select(func.max(BillingPeriod.period)))
    billed: dict[int, int] = {}
    usage: dict[int, list[rating.Usage]] = {}
    terms: dict[int, rating.Subscription] = {}
    if period is not None and public:
        ids = [s.id for s, _ in public]
        sums = session.execute(
            select(InvoiceLine.subscription_id, func.sum(InvoiceLine.amount_cents))
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(Invoice.kind == "monthly", Invoice.period == period, InvoiceLine.subscription_id.in_(ids))
            .group_by(InvoiceLine.subscription_id)
        )
        billed = {subscription_id: int(cents) for subscription_id, cents in sums if subscription_id is not None}
        usage = period_usage(session, ids, period)
        terms = rating_terms(session, [s for s, _ in public])
    _, end = rating.month_bounds(period) if period else (now, now)
    subscribers = []
    for subscription, account in public:
        active_then = period is not None and subscription.started_at < end
        proposed_cents = None
        if active_then:
            at_new_prices = replace(
                terms[subscription.id], versions=[Version(1, subscription.started_at, proposed.stored())]
            )
            lines = rating.rate(at_new_prices, usage.get(subscription.id, []), period or "")
            proposed_cents = sum(to_cents(line.amount) for line in lines)
        subscribers.append(
            SubscriberPreview(
                account=account,
                subscription_id=subscription.id,
                started_at=subscription.started_at,
                billed_cents=int(billed.get(subscription.id, 0)) if active_then else None,
                proposed_cents=proposed_cents,
                applies_from=price_change_applies_from(subscription.started_at, now).date(),
            )
        )
    return Preview(
        period=period,
        notice_on=notice_on,
        existing_from=existing_subscriber_effective_date(notice_on),
        subscribers=subscribers,
        on_offers=len(rows) - len(public),
        changed=changed_keys(current[-1].pricing, proposed),
    )


def product_of(session: Session, principal: Principal, code: str) -> Product:
    """The seller's own product (404 for anyone else's), for the services that take one."""
    return catalog.get_managed(session, principal, code)
