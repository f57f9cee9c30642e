"""Every problem line names the rule that governs it, schema-level ones included: the enum, range and pattern
constraints of the pricing document and of the manifest carry their RULES.md IDs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agora.manifest.loader import parse_manifest
from agora.manifest.parse import ManifestError

BUYER = "111122223333"
TIERED = {
    "period": "hour",
    "items": [{"name": "calls", "reporting": "seller", "tiers": [{"up_to": 10, "price": "0.01"}, {"price": "0.005"}]}],
}
USAGE = {"category": "users", "dimensions": [{"name": "users", "description": "Users", "unit": "UserHrs", "rate": "1"}]}
CONTRACT = {"dimensions": [{"name": "seats", "description": "Seats", "prices": {"12": "100"}}]}


def with_pricing(**pricing: Any) -> dict[str, Any]:
    product = {"code": "prod", "seller": "acme", "kind": "managed_service", "title": "T", "pricing": pricing}
    return {"products": [product]}


def lines(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    return [str(p) for p in info.value.problems]


def edited(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[int(last) if isinstance(target, list) else last] = value
    return result


PRICING_CASES = [
    (
        "PRC-13",
        {"tiered": edited(TIERED, "period", "week")},
        "tiered.period: must be one of 'hour' or 'day', got 'week'",
    ),
    ("PRC-13", {"tiered": edited(TIERED, "items", [])}, "tiered.items: "),
    ("PRC-13", {"tiered": edited(TIERED, "items.0.tiers", [])}, "tiered.items[0].tiers: "),
    ("PRC-13", {"tiered": edited(TIERED, "items.0.tiers.0.up_to", 0)}, "tiered.items[0].tiers[0].up_to: "),
    ("PRC-13", {"tiered": {"items": TIERED["items"]}}, "tiered.period: required field is missing"),
    (
        "PRC-14",
        {"tiered": edited(TIERED, "items.0.reporting", "manual")},
        "tiered.items[0].reporting: must be one of 'seller', 'time', 'bill' or 'prometheus', got 'manual'",
    ),
    ("PRC-07", {"usage": edited(USAGE, "category", "seats")}, "usage.category: must be one of "),
    ("PRC-07", {"usage": edited(USAGE, "dimensions", [])}, "usage.dimensions: "),
    ("PRC-10", {"contract": edited(CONTRACT, "dimensions", [])}, "contract.dimensions: "),
    ("PRC-10", {"contract": edited(CONTRACT, "dimensions.0.prices", {})}, "contract.dimensions[0].prices: "),
    ("PRC-06", {"free_trial_days": "two weeks"}, "free_trial_days: "),
    ("PRC-01", {"monthly": "ten dollars"}, "monthly: 'ten dollars' is not a decimal number"),
    ("PRC-01", {"hourly": {"m5.large": "0.123456789"}}, "hourly.m5.large: has more than 8 decimal places"),
    ("PRC-01", {"usage": edited(USAGE, "dimensions.0.rate", True)}, "usage.dimensions[0].rate: "),
]


@pytest.mark.parametrize(("rule", "pricing", "start"), PRICING_CASES, ids=[f"{c[0]}-{c[2]}" for c in PRICING_CASES])
def test_schema_errors_of_a_pricing_document_name_their_rule(rule: str, pricing: dict[str, Any], start: str) -> None:
    [line] = lines(with_pricing(**pricing))
    assert line.startswith(f"products[0].pricing.{start}"), line
    assert line.endswith(f" [{rule}]"), line


@pytest.mark.rule("PRC-01")
def test_a_negative_price_names_no_rule_as_none_governs_it_PRC_01() -> None:
    assert lines(with_pricing(monthly="-1")) == ["products[0].pricing.monthly: must not be negative"]


def subscription(**fields: Any) -> dict[str, Any]:
    return {"subscriptions": [{"buyer": BUYER, "product": "prod", "at": "2026-03-01T00:00:00Z", **fields}]}


def event(kind: str, **body: Any) -> dict[str, Any]:
    return {"events": [{"at": "2026-03-01T00:00:00Z", kind: {"buyer": BUYER, "product": "prod", **body}}]}


MANIFEST_CASES = [
    (
        "PRC-10",
        subscription(contract={"duration_months": 6, "quantities": {"seats": 1}}),
        "subscriptions[0].contract.duration_months: must be one of 1, 12, 24 or 36, got 6",
    ),
    (
        "PRC-10",
        subscription(contract={"duration_months": 12, "quantities": {"seats": 0}}),
        "subscriptions[0].contract.quantities.seats: ",
    ),
    ("SUB-03", subscription(annual={"m5.large": 0}), "subscriptions[0].annual.m5.large: "),
    (
        "PRC-10",
        event("contract_purchase", duration_months=2, quantities={"seats": 1}),
        "events[0].contract_purchase.duration_months: ",
    ),
    (
        "SUB-03",
        event("annual_purchase", instance_type="m5.large", quantity=0),
        "events[0].annual_purchase.quantity: ",
    ),
    (
        "PRC-12",
        event("ml_job", use="inference", instance_type="ml.m5.large", seconds=5),
        "events[0].ml_job.use: ",
    ),
    (
        "PRC-01",
        {"events": [{"at": "2026-03-01T00:00:00Z", "price_change": {"product": "prod", "pricing": {"monthly": "x"}}}]},
        "events[0].price_change.pricing.monthly: ",
    ),
    ("SEL-02", {"sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-10"}]}, "sellers[0].tax_form: "),
    (
        "LST-01",
        {"products": [{"code": "prod", "seller": "acme", "kind": "plugin", "title": "T"}]},
        "products[0].kind: ",
    ),
]


@pytest.mark.parametrize(("rule", "data", "start"), MANIFEST_CASES, ids=[f"{c[0]}-{c[2]}" for c in MANIFEST_CASES])
def test_schema_errors_of_the_manifest_name_their_rule(rule: str, data: dict[str, Any], start: str) -> None:
    [line] = lines(data)
    assert line.startswith(start), line
    assert line.endswith(f" [{rule}]"), line


def test_a_field_no_rule_governs_names_none() -> None:
    assert lines({"buyers": [{"account": "1234", "email": "a@b.example"}]}) == [
        "buyers[0].account: must be exactly 12 digits, got '1234'"
    ]
    assert lines(with_pricing(tiered=edited(TIERED, "items.0.name", 5))) == [
        "products[0].pricing.tiered.items[0].name: Input should be a valid string"
    ]
