"""The validated summary of a pricing document that billing rates against (`PricingTerms`).

Built only from a document that passed every rule, so the shapes here can be relied on: contract
durations are whole months, tier tables end with one open-ended tier, ML sets cover the same types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from agora.pricing.schema import PricingDocument

_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


def _no_prices() -> Mapping[str, Decimal]:
    return _EMPTY


def _frozen(prices: Mapping[str, Decimal] | None) -> Mapping[str, Decimal]:
    return MappingProxyType(dict(prices)) if prices else _EMPTY


@dataclass(frozen=True)
class UsageDimensionTerms:
    name: str
    description: str
    unit: str
    rate: Decimal


@dataclass(frozen=True)
class UsageTerms:
    category: str
    dimensions: tuple[UsageDimensionTerms, ...]


@dataclass(frozen=True)
class ContractDimensionTerms:
    name: str
    description: str
    unit: str | None
    prices: Mapping[int, Decimal]  # duration in months → price per unit


@dataclass(frozen=True)
class MLTerms:
    training: Mapping[str, Decimal]  # empty for model packages
    realtime_inference: Mapping[str, Decimal]
    batch_inference: Mapping[str, Decimal]


@dataclass(frozen=True)
class Tier:
    up_to: int | None  # inclusive upper bound of cumulative usage in the period; None = open-ended
    price: Decimal


@dataclass(frozen=True)
class TieredItemTerms:
    name: str
    description: str | None
    unit: str | None
    reporting: str  # seller | time | bill | prometheus
    metric: str | None
    plans: tuple[str, ...] | None  # None = the service's single template (PRC-15)
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class TieredTerms:
    period: str  # hour | day
    items: tuple[TieredItemTerms, ...]


@dataclass(frozen=True)
class PricingTerms:
    kind: str
    family: str
    paid: bool
    byol: bool = False
    trial_days: int | None = None
    hourly: Mapping[str, Decimal] = field(default_factory=_no_prices)
    annual: Mapping[str, Decimal] = field(default_factory=_no_prices)
    monthly: Decimal | None = None
    usage: UsageTerms | None = None
    contract: tuple[ContractDimensionTerms, ...] = ()
    ml: MLTerms | None = None
    tiered: TieredTerms | None = None


def build_terms(document: PricingDocument, *, kind: str, family: str, paid: bool) -> PricingTerms:
    usage = None
    if document.usage is not None:
        usage = UsageTerms(
            category=document.usage.category,
            dimensions=tuple(
                UsageDimensionTerms(d.name, d.description, d.unit or "", d.rate) for d in document.usage.dimensions
            ),
        )
    contract: tuple[ContractDimensionTerms, ...] = ()
    if document.contract is not None:
        contract = tuple(
            ContractDimensionTerms(
                d.name, d.description, d.unit, MappingProxyType({int(m): p for m, p in d.prices.items()})
            )
            for d in document.contract.dimensions
        )
    ml = None
    if document.ml is not None:
        ml = MLTerms(
            training=_frozen(document.ml.training),
            realtime_inference=_frozen(document.ml.realtime_inference),
            batch_inference=_frozen(document.ml.batch_inference),
        )
    tiered = None
    if document.tiered is not None:
        tiered = TieredTerms(
            period=document.tiered.period,
            items=tuple(
                TieredItemTerms(
                    name=item.name,
                    description=item.description,
                    unit=item.unit,
                    reporting=item.reporting,
                    metric=item.metric,
                    plans=tuple(item.plans) if item.plans is not None else None,
                    tiers=tuple(Tier(t.up_to, t.price) for t in item.tiers),
                )
                for item in document.tiered.items
            ),
        )
    return PricingTerms(
        kind=kind,
        family=family,
        paid=paid,
        byol=bool(document.byol),
        trial_days=document.free_trial_days,
        hourly=_frozen(document.hourly),
        annual=_frozen(document.annual),
        monthly=document.monthly,
        usage=usage,
        contract=contract,
        ml=ml,
        tiered=tiered,
    )
