"""Checks on the content of one pricing component at a time (prices, dimensions, ML sets, tier tables).

Which components may appear together, and for which product kind, is `agora.pricing.rules`; these
functions assume the component is allowed and say what is wrong inside it. Paths are relative to the
pricing document (`usage.dimensions[2].name`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from agora.money import CURRENCY, decimal_places
from agora.pricing.schema import ContractDimension, MLPrices, PricingDocument, Tiered, TieredItem, UsageDimension


@dataclass(frozen=True)
class Violation:
    path: str
    message: str
    rule: str


RATE_PLACES = 3  # PRC-01: "FCP Rate … supports 3 decimal places" [GUIDE]
MAX_DIMENSIONS = 24  # PRC-07
DIMENSION_NAME = re.compile(r"[A-Za-z0-9_]{1,15}")  # PRC-08
MAX_DESCRIPTION = 70  # PRC-08
CONTRACT_MONTHS = ("1", "12", "24", "36")  # PRC-10
TRIAL_DAYS = (5, 31)  # PRC-06, inclusive

# PRC-07: the fixed units of the preset categories [GUIDE "Category Valid Units"]; requests, tiers and
# units take a unit the seller names (the GUIDE: "describe the units in the dimension description").
CATEGORY_UNITS: Mapping[str, tuple[str, ...]] = {
    "users": ("UserHrs",),
    "hosts": ("HostHrs",),
    "data": ("MB", "GB", "TB"),
    "bandwidth": ("Mbps", "Gbps"),
}
ML_SETS = ("training", "realtime_inference", "batch_inference")
# PRC-12: algorithms price training and both inference modes; model packages only inference [ML].
ML_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "ml_algorithm": ML_SETS,
    "ml_model": ("realtime_inference", "batch_inference"),
}


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def check_currency(document: PricingDocument) -> Iterator[Violation]:
    if document.currency is not None and document.currency != CURRENCY:
        yield Violation("currency", f"prices are in USD only; got {document.currency!r}", "PRC-01")


def check_rate_places(path: str, value: Decimal) -> Iterator[Violation]:
    if decimal_places(value) > RATE_PLACES:
        yield Violation(path, f"at most {RATE_PLACES} decimal places (got {format(value, 'f')})", "PRC-01")


def check_trial_days(days: int) -> Iterator[Violation]:
    low, high = TRIAL_DAYS
    if not low <= days <= high:
        yield Violation("free_trial_days", f"must be {low} to {high} days", "PRC-06")


def check_instance_prices(document: PricingDocument) -> Iterator[Violation]:
    """PRC-04 and PRC-05: hourly and annual prices per instance type."""
    hourly = document.hourly or {}
    annual = document.annual or {}
    if document.hourly is not None and not hourly:
        yield Violation("hourly", "must price at least one instance type", "PRC-04")
    if document.annual is not None and not annual:
        yield Violation("annual", "must price at least one instance type", "PRC-04")
    for instance_type, price in annual.items():
        path = f"annual.{instance_type}"
        if instance_type not in hourly:
            yield Violation(path, "annual price needs an hourly price for the same instance type", "PRC-04")
        elif price == 0:
            others_paid = any(p != 0 for t, p in annual.items() if t != instance_type)
            if hourly[instance_type] != 0 or not others_paid:
                yield Violation(
                    path,
                    "a $0 annual price needs a $0 hourly price for this instance type and a non-zero "
                    "annual price on another instance type",
                    "PRC-05",
                )


def _check_description(path: str, description: str) -> Iterator[Violation]:
    if _blank(description):
        yield Violation(path, "must not be empty", "PRC-08")
    elif len(description) > MAX_DESCRIPTION:
        yield Violation(path, f"at most {MAX_DESCRIPTION} characters (got {len(description)})", "PRC-08")


def check_dimension_names(document: PricingDocument) -> Iterator[Violation]:
    """PRC-08: the API name of every usage and contract dimension, unique within the document."""
    dimensions: list[tuple[str, UsageDimension | ContractDimension]] = []
    if document.usage is not None:
        dimensions += [(f"usage.dimensions[{i}]", d) for i, d in enumerate(document.usage.dimensions)]
    if document.contract is not None:
        dimensions += [(f"contract.dimensions[{i}]", d) for i, d in enumerate(document.contract.dimensions)]
    seen: dict[str, str] = {}
    for base, dimension in dimensions:
        path = f"{base}.name"
        if not DIMENSION_NAME.fullmatch(dimension.name):
            yield Violation(path, "must be 1 to 15 letters, digits or underscores", "PRC-08")
        elif dimension.name in seen:
            yield Violation(path, f"duplicate dimension name (also {seen[dimension.name]})", "PRC-08")
        else:
            seen[dimension.name] = path
        yield from _check_description(f"{base}.description", dimension.description)


def check_usage(document: PricingDocument) -> Iterator[Violation]:
    """PRC-07 (category, units, count) and PRC-01 (rate precision)."""
    usage = document.usage
    if usage is None:
        return
    if len(usage.dimensions) > MAX_DIMENSIONS:
        yield Violation(
            "usage.dimensions", f"at most {MAX_DIMENSIONS} dimensions (got {len(usage.dimensions)})", "PRC-07"
        )
    units = CATEGORY_UNITS.get(usage.category)
    for i, dimension in enumerate(usage.dimensions):
        base = f"usage.dimensions[{i}]"
        if units is None:
            if _blank(dimension.unit):
                yield Violation(
                    f"{base}.unit", f"{usage.category} pricing needs a unit that you name, e.g. 'scans'", "PRC-07"
                )
        elif dimension.unit not in units:
            expected = " or ".join(units)
            yield Violation(f"{base}.unit", f"must be {expected} for {usage.category} pricing", "PRC-07")
        yield from check_rate_places(f"{base}.rate", dimension.rate)


def check_contract(document: PricingDocument) -> Iterator[Violation]:
    """PRC-10: contract durations."""
    if document.contract is None:
        return
    for i, dimension in enumerate(document.contract.dimensions):
        for months in dimension.prices:
            if months not in CONTRACT_MONTHS:
                yield Violation(
                    f"contract.dimensions[{i}].prices.{months}",
                    "contract duration must be 1, 12, 24 or 36 months",
                    "PRC-10",
                )


def check_ml(kind: str, ml: MLPrices) -> Iterator[Violation]:
    """PRC-12: which price sets an ML product has, each pricing at least one instance type, one price above $0.
    Each set names its own instance types: training commonly runs on GPU types and inference on CPU types."""
    required = ML_REQUIRED[kind]
    label = "algorithms" if kind == "ml_algorithm" else "model packages"
    sets: dict[str, dict[str, Decimal]] = {}
    for name in ML_SETS:
        prices: dict[str, Decimal] | None = getattr(ml, name)
        if name not in required:
            if prices is not None:
                yield Violation(f"ml.{name}", f"{label} have no {name.replace('_', ' ')} price", "PRC-12")
        elif prices is None:
            yield Violation(f"ml.{name}", f"{label} need {name.replace('_', ' ')} prices", "PRC-12")
        elif not prices:
            yield Violation(f"ml.{name}", "must price at least one instance type", "PRC-12")
        else:
            sets[name] = prices
    if sets and all(p == 0 for prices in sets.values() for p in prices.values()):
        yield Violation("ml", "ML products are paid: at least one price must be above $0", "PRC-12")


def _check_tiers(base: str, item: TieredItem) -> Iterator[Violation]:
    """PRC-13: ascending inclusive upper bounds, one open-ended tier, last."""
    last = len(item.tiers) - 1
    previous: int | None = None
    for j, tier in enumerate(item.tiers):
        path = f"{base}.tiers[{j}]"
        if tier.up_to is None:
            if j != last:
                yield Violation(f"{path}.up_to", "only the last tier may be open-ended (up_to: null)", "PRC-13")
        else:
            if j == last:
                yield Violation(f"{path}.up_to", "the last tier must be open-ended (up_to: null)", "PRC-13")
            if previous is not None and tier.up_to <= previous:
                yield Violation(
                    f"{path}.up_to", f"tiers must ascend: must be above the previous bound {previous}", "PRC-13"
                )
            previous = tier.up_to
        yield from check_rate_places(f"{path}.price", tier.price)


def check_tiered(tiered: Tiered) -> Iterator[Violation]:
    """PRC-13 tier tables, PRC-14 reporting methods and item names, PRC-15 plan association."""
    names: dict[str, str] = {}
    uses_plans = any(item.plans is not None for item in tiered.items)
    for i, item in enumerate(tiered.items):
        base = f"tiered.items[{i}]"
        if _blank(item.name):
            yield Violation(f"{base}.name", "must not be empty", "PRC-14")
        elif item.name in names:
            yield Violation(
                f"{base}.name",
                f"duplicate item name (also {names[item.name]}); an item has one reporting method, "
                "so reporting the same thing two ways needs two items with different names",
                "PRC-14",
            )
        else:
            names[item.name] = f"{base}.name"
        if item.reporting == "prometheus" and _blank(item.metric):
            yield Violation(f"{base}.metric", "prometheus reporting needs the metric to scrape", "PRC-14")
        elif item.reporting != "prometheus" and item.metric is not None:
            yield Violation(
                f"{base}.metric", f"only prometheus reporting takes a metric (this item is {item.reporting})", "PRC-14"
            )
        yield from _check_tiers(base, item)
        if item.plans is not None and (not item.plans or any(_blank(p) for p in item.plans)):
            yield Violation(f"{base}.plans", "must name at least one plan, and no empty plan names", "PRC-15")
        elif item.plans is None and uses_plans:
            yield Violation(
                f"{base}.plans",
                "other items name their plans, so this item must too: an item takes effect only in a plan",
                "PRC-15",
            )
