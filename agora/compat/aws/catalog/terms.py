"""AWS offer terms ↔ Agora's pricing document (agora.pricing.schema), both ways.

The Catalog API prices an offer with a list of typed terms; Agora prices a product or a private offer with one
pricing document whose combinations RULES.md governs (PRC-02…13). Terms become a document here, and the
document is then checked by the same `validate_pricing` as every other door, so a change set cannot set a price
the native API refuses. Terms that are not prices (legal, support, validity, renewal, payment schedule) are kept
by the caller as they were sent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from agora.compat.aws.catalog.errors import validation

PRICE_TERMS = frozenset(
    {
        "UsageBasedPricingTerm",
        "ConfigurableUpfrontPricingTerm",
        "FixedUpfrontPricingTerm",
        "FreeTrialPricingTerm",
        "RecurringPaymentTerm",
        "ByolPricingTerm",
    }
)
OTHER_TERMS = frozenset({"LegalTerm", "SupportTerm", "ValidityTerm", "PaymentScheduleTerm", "RenewalTerm"})
_DURATION = re.compile(r"P(\d{1,4})([DMY])")
# AWS dimension units → PRC-07's usage category and the unit Agora stores.
UNIT_CATEGORY = {
    "Users": ("users", "UserHrs"),
    "UserHrs": ("users", "UserHrs"),
    "Hosts": ("hosts", "HostHrs"),
    "HostHrs": ("hosts", "HostHrs"),
    "MB": ("data", "MB"),
    "GB": ("data", "GB"),
    "TB": ("data", "TB"),
    "Mbps": ("bandwidth", "Mbps"),
    "Gbps": ("bandwidth", "Gbps"),
    "Requests": ("requests", "Requests"),
    "Tiers": ("tiers", "Tiers"),
}


def months(duration: Any, where: str) -> int:
    """`P12M`, `P1Y`, `P365D` → whole months (30/31 days are one month, 365 days twelve)."""
    found = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if found is None:
        raise validation(f"{where} must be an ISO 8601 duration such as P12M")
    n, unit = int(found.group(1)), found.group(2)
    if unit == "M":
        return n
    if unit == "Y":
        return 12 * n
    if n in (30, 31):
        return 1
    if n % 365 == 0:
        return 12 * (n // 365)
    raise validation(f"{where}: {duration} is not a whole number of months")


def days(duration: Any, where: str) -> int:
    found = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if found is None:
        raise validation(f"{where} must be an ISO 8601 duration such as P30D")
    n, unit = int(found.group(1)), found.group(2)
    return n if unit == "D" else n * 30 if unit == "M" else n * 365


def _price(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise validation(f'{where} must be a decimal string, e.g. "0.15" [PRC-01]')
    try:
        Decimal(value)
    except InvalidOperation:
        raise validation(f"{where}: {value!r} is not a decimal number [PRC-01]") from None
    return value


def _rate_card(card: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(card, list) or not card:
        raise validation(f"{where}.RateCard must list at least one {{DimensionKey, Price}}")
    rates = []
    for i, item in enumerate(card):
        if not isinstance(item, dict) or not isinstance(item.get("DimensionKey"), str):
            raise validation(f"{where}.RateCard[{i}] needs a DimensionKey")
        rates.append((item["DimensionKey"], _price(item.get("Price"), f"{where}.RateCard[{i}].Price")))
    return rates


def _instance_type(key: str) -> bool:
    return "." in key  # m5.large, t3.micro: AMI and container hourly prices are per instance type (PRC-04)


def check_terms(terms: Any, allowed: frozenset[str]) -> list[dict[str, Any]]:
    if not isinstance(terms, list):
        raise validation("Terms must be a list of terms, each with its Type")
    for i, term in enumerate(terms):
        if not isinstance(term, dict) or term.get("Type") not in allowed:
            names = ", ".join(sorted(allowed))
            raise validation(f"Terms[{i}].Type must be one of {names}")
    return terms


def to_pricing(kind: str, terms: list[dict[str, Any]], dimensions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The pricing document these price terms describe (not yet validated). `dimensions`: the product's
    dimensions by key (Name, Description, Unit), for the descriptions and units PRC-07/08 require."""
    document: dict[str, Any] = {}
    usage: list[dict[str, Any]] = []
    contract: dict[str, dict[str, str]] = {}
    instance_kind = kind in ("ami", "container")
    for i, term in enumerate(terms):
        where = f"Terms[{i}]"
        kind_of = term["Type"]
        if kind_of == "UsageBasedPricingTerm":
            for card in term.get("RateCards") or []:
                for key, price in _rate_card(card.get("RateCard"), f"{where}.RateCards"):
                    if instance_kind and _instance_type(key):
                        document.setdefault("hourly", {})[key] = price
                    else:
                        usage.append(_usage_dimension(key, price, dimensions))
        elif kind_of == "ConfigurableUpfrontPricingTerm":
            for card in term.get("RateCards") or []:
                selector = card.get("Selector") or {}
                n = months(selector.get("Value"), f"{where}.RateCards.Selector.Value")
                for key, price in _rate_card(card.get("RateCard"), f"{where}.RateCards"):
                    if instance_kind and _instance_type(key) and n == 12:
                        document.setdefault("annual", {})[key] = price
                    else:
                        contract.setdefault(key, {})[str(n)] = price
        elif kind_of == "FreeTrialPricingTerm":
            document["free_trial_days"] = days(term.get("Duration"), f"{where}.Duration")
        elif kind_of == "ByolPricingTerm":
            document["byol"] = True
        elif kind_of == "RecurringPaymentTerm":
            if term.get("BillingPeriod") not in (None, "Monthly"):
                raise validation(f"{where}.BillingPeriod: Agora's recurring charge is Monthly")
            document["monthly"] = _price(term.get("Price"), f"{where}.Price")
        elif kind_of == "FixedUpfrontPricingTerm":
            # Without a Duration the upfront price covers the agreement; Agora prices it as 12 months (PRC-10).
            n = months(term["Duration"], f"{where}.Duration") if term.get("Duration") else 12
            grants = term.get("Grants") or []
            if not grants:
                raise validation(f"{where}.Grants must name the dimensions the upfront price buys")
            price = _price(term.get("Price"), f"{where}.Price")
            for grant in grants:
                contract.setdefault(str(grant.get("DimensionKey")), {})[str(n)] = price
    if usage:
        category = {UNIT_CATEGORY.get(str(d.get("_aws_unit")), ("units", ""))[0] for d in usage}
        for d in usage:
            d.pop("_aws_unit", None)
        document["usage"] = {"category": category.pop() if len(category) == 1 else "units", "dimensions": usage}
    if contract:
        document["contract"] = {
            "dimensions": [
                {"name": key, "description": _description(key, dimensions), "prices": prices}
                for key, prices in contract.items()
            ]
        }
    if not any(k in document for k in ("hourly", "annual", "monthly", "usage", "contract", "byol")):
        document["free"] = True
    return document


def _description(key: str, dimensions: dict[str, dict[str, Any]]) -> str:
    found = dimensions.get(key) or {}
    return str(found.get("Description") or found.get("Name") or key)[:70]


def _usage_dimension(key: str, price: str, dimensions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    aws_unit = (dimensions.get(key) or {}).get("Unit") or "Units"
    unit = UNIT_CATEGORY.get(aws_unit, ("units", aws_unit))[1]
    return {
        "name": key,
        "description": _description(key, dimensions),
        "unit": unit,
        "rate": price,
        "_aws_unit": aws_unit,
    }


def from_pricing(pricing: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A stored pricing document as the Catalog API's price terms."""
    if not pricing:
        return []
    terms: list[dict[str, Any]] = []
    usage_card = [{"DimensionKey": k, "Price": v} for k, v in (pricing.get("hourly") or {}).items()]
    usage_card += [
        {"DimensionKey": d["name"], "Price": d["rate"]} for d in (pricing.get("usage") or {}).get("dimensions", [])
    ]
    if usage_card:
        terms.append({"Type": "UsageBasedPricingTerm", "CurrencyCode": "USD", "RateCards": [{"RateCard": usage_card}]})
    by_months: dict[str, list[dict[str, str]]] = {}
    for d in (pricing.get("contract") or {}).get("dimensions", []):
        for n, price in d["prices"].items():
            by_months.setdefault(n, []).append({"DimensionKey": d["name"], "Price": price})
    for key, price in (pricing.get("annual") or {}).items():
        by_months.setdefault("12", []).append({"DimensionKey": key, "Price": price})
    if by_months:
        cards = [
            {
                "Selector": {"Type": "Duration", "Value": f"P{n}M"},
                "Constraints": {"MultipleDimensionSelection": "Allowed", "QuantityConfiguration": "Allowed"},
                "RateCard": card,
            }
            for n, card in sorted(by_months.items(), key=lambda item: int(item[0]))
        ]
        terms.append({"Type": "ConfigurableUpfrontPricingTerm", "CurrencyCode": "USD", "RateCards": cards})
    if pricing.get("monthly") is not None:
        terms.append(
            {
                "Type": "RecurringPaymentTerm",
                "CurrencyCode": "USD",
                "BillingPeriod": "Monthly",
                "Price": pricing["monthly"],
            }
        )
    if pricing.get("free_trial_days"):
        terms.append({"Type": "FreeTrialPricingTerm", "Duration": f"P{pricing['free_trial_days']}D"})
    if pricing.get("byol"):
        terms.append({"Type": "ByolPricingTerm"})
    return terms


def pricing_model(pricing: dict[str, Any] | None) -> str:
    if not pricing:
        return "Free"
    if pricing.get("contract") or pricing.get("annual"):
        return "Contract"
    if pricing.get("byol") and len(pricing) == 1:
        return "Byol"
    if pricing.get("free") and not any(k in pricing for k in ("hourly", "usage", "monthly")):
        return "Free"
    return "Usage"
