"""The pricing validator: every PRC rule it owns and SEL-02, each with a legal and an illegal document.

Property tests draw legal documents of every family for every kind (strategies.py) and check they
pass; then each mutation breaks exactly one rule and must be reported with exactly that rule's ID.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.pricing.rules import (
    FAMILIES,
    PricingContext,
    ValidationResult,
    Violation,
    format_violation,
    is_paid,
    pricing_family,
    validate_pricing,
)
from agora.pricing.schema import PricingDocument

from .strategies import INSTANCE_KINDS, KIND_FAMILIES, MUTATIONS, PAID_FAMILIES, Case, Mutation, valid_cases

# Enough examples to reach every family and kind while the whole suite stays within seconds.
LEGAL = settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def check(raw: dict[str, Any], kind: str = "ami", tax_form: str = "W-9", **context: Any) -> ValidationResult:
    document = PricingDocument.model_validate(raw)
    return validate_pricing(document, PricingContext(kind=kind, seller_tax_form=tax_form, **context))


def rules_of(result: ValidationResult) -> set[str]:
    return {v.rule for v in result.violations}


def assert_only(result: ValidationResult, rule: str) -> None:
    assert result.violations, f"expected a {rule} violation"
    assert rules_of(result) == {rule}, [format_violation(v) for v in result.violations]
    assert result.terms is None


def assert_valid(result: ValidationResult) -> None:
    assert result.violations == [], [format_violation(v) for v in result.violations]
    assert result.terms is not None


HOURLY = {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}}
USERS: dict[str, Any] = {
    "category": "users",
    "dimensions": [{"name": "users", "description": "Users per hour", "unit": "UserHrs", "rate": "0.125"}],
}
SEATS: dict[str, Any] = {"dimensions": [{"name": "seats", "description": "Seats", "prices": {"1": "10", "12": "100"}}]}
ALGORITHM = {
    "training": {"ml.m5.large": "1.00", "ml.c5.xlarge": "2.00"},
    "realtime_inference": {"ml.m5.large": "0.50", "ml.c5.xlarge": "0.70"},
    "batch_inference": {"ml.m5.large": "0.40", "ml.c5.xlarge": "0.60"},
}
MODEL = {k: v for k, v in ALGORITHM.items() if k != "training"}
TIERS: list[dict[str, Any]] = [
    {"up_to": 1000, "price": "0.01"},
    {"up_to": 10000, "price": "0.008"},
    {"up_to": None, "price": "0.005"},
]
TIERED: dict[str, Any] = {"period": "hour", "items": [{"name": "api_calls", "reporting": "seller", "tiers": TIERS}]}


# --- legal documents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "family"), [(kind, family) for kind, families in KIND_FAMILIES.items() for family in families]
)
@given(data=st.data())
@LEGAL
def test_every_legal_family_of_every_kind_passes(kind: str, family: str, data: st.DataObject) -> None:
    case = data.draw(valid_cases(kinds=(kind,), families=(family,)))
    result = validate_pricing(case.document, case.context)
    assert_valid(result)
    assert result.terms is not None
    assert result.terms.family == case.family
    assert result.terms.family in FAMILIES
    assert result.terms.paid == case.paid == is_paid(case.document)
    assert result.terms.byol == bool(case.raw.get("byol"))
    assert result.terms.trial_days == case.raw.get("free_trial_days")
    assert result.terms.kind == case.kind
    if case.kind not in ("ml_algorithm", "ml_model"):
        assert pricing_family(case.document) == case.family
    # the stored JSON form (absent components and nulls left out) reads back as the same document
    assert PricingDocument.model_validate(case.document.stored()) == case.document


@given(case=valid_cases(families=PAID_FAMILIES))
@FAST
def test_terms_carry_the_exact_decimal_prices(case: Case) -> None:
    terms = validate_pricing(case.document, case.context).terms
    assert terms is not None
    for instance_type, text in case.raw.get("hourly", {}).items():
        assert terms.hourly[instance_type] == Decimal(text)
    for instance_type, text in case.raw.get("annual", {}).items():
        assert terms.annual[instance_type] == Decimal(text)
    if "monthly" in case.raw:
        assert terms.monthly == Decimal(case.raw["monthly"])
    if "usage" in case.raw:
        assert terms.usage is not None
        assert [d.rate for d in terms.usage.dimensions] == [Decimal(d["rate"]) for d in case.raw["usage"]["dimensions"]]
    for dimension, raw in zip(terms.contract, case.raw.get("contract", {}).get("dimensions", []), strict=True):
        assert dimension.prices == {int(m): Decimal(p) for m, p in raw["prices"].items()}
    if "tiered" in case.raw:
        assert terms.tiered is not None
        assert all(item.tiers[-1].up_to is None for item in terms.tiered.items)


# --- single mutations (strategies.MUTATIONS): each breaks one rule ----------------------------------


@pytest.mark.parametrize(
    "mutation",
    [pytest.param(m, id=f"{m.rule}-{m.name}", marks=pytest.mark.rule(m.rule)) for m in MUTATIONS],
)
@given(data=st.data())
@FAST
def test_one_mutation_breaks_exactly_its_rule(mutation: Mutation, data: st.DataObject) -> None:
    case = data.draw(valid_cases(kinds=mutation.kinds, families=mutation.families))
    mutated = mutation.apply(case, data)
    result = validate_pricing(mutated.document, mutated.context)
    assert_only(result, mutation.rule)


# --- rule by rule: a legal and an illegal document ----------------------------------------------------


@pytest.mark.rule("PRC-01")
def test_prc01_usage_and_tier_rates_have_at_most_three_decimal_places() -> None:
    assert_valid(check({"usage": USERS}))
    assert_valid(check({"usage": USERS, "currency": "USD"}))
    rate = {**USERS, "dimensions": [{**USERS["dimensions"][0], "rate": "0.1255"}]}
    result = check({"usage": rate})
    assert_only(result, "PRC-01")
    assert (
        format_violation(result.violations[0])
        == "usage.dimensions[0].rate: at most 3 decimal places (got 0.1255) [PRC-01]"
    )
    # trailing zeros are not extra precision
    assert_valid(check({"usage": {**USERS, "dimensions": [{**USERS["dimensions"][0], "rate": "0.12500"}]}}))
    tiered = {
        "period": "day",
        "items": [{"name": "x", "reporting": "time", "tiers": [{"up_to": None, "price": "0.0001"}]}],
    }
    assert_only(check({"tiered": tiered}, kind="managed_service"), "PRC-01")
    assert_only(check({**HOURLY, "currency": "EUR"}), "PRC-01")


@pytest.mark.rule("PRC-02")
@pytest.mark.parametrize(
    ("raw", "family"),
    [
        ({"free": True}, "free"),
        ({"byol": True}, "byol"),
        (HOURLY, "hourly"),
        ({**HOURLY, "free_trial_days": 14}, "hourly_trial"),
        ({**HOURLY, "monthly": "300"}, "hourly_monthly"),
        ({**HOURLY, "annual": {"m5.large": "700"}}, "hourly_annual"),
        ({**HOURLY, "annual": {"m5.large": "700"}, "free_trial_days": 7}, "hourly_trial_annual"),
        ({"monthly": "300"}, "monthly"),
        ({"usage": USERS}, "usage"),
        ({"contract": SEATS}, "contract"),
        ({"byol": True, **HOURLY}, "hourly"),
    ],
)
@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_prc02_server_image_and_container_models_are_legal(raw: dict[str, Any], family: str, kind: str) -> None:
    result = check(raw, kind=kind)
    assert_valid(result)
    assert result.terms is not None and result.terms.family == family


@pytest.mark.rule("PRC-02")
@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"free": False, "byol": False},
        {"free": True, **HOURLY},
        {"free": True, "byol": True},
        {**HOURLY, "usage": USERS},
        {**HOURLY, "contract": SEATS},
        {"monthly": "300", "usage": USERS},
        {"usage": USERS, "contract": SEATS},
    ],
)
def test_prc02_illegal_combinations(raw: dict[str, Any]) -> None:
    assert "PRC-02" in rules_of(check(raw))


@pytest.mark.rule("PRC-02")
def test_prc02_models_per_kind() -> None:
    assert_valid(check({"usage": USERS}, kind="saas"))
    assert_valid(check({"contract": SEATS}, kind="saas"))
    assert_valid(check({"free": True}, kind="saas", tax_form="none"))
    result = check(HOURLY, kind="saas")
    assert_only(result, "PRC-02")
    assert result.violations[0].path == "hourly"
    assert_only(check({"monthly": "10"}, kind="managed_service"), "PRC-02")
    assert_only(check({"usage": USERS}, kind="managed_service"), "PRC-02")
    empty = check({}, kind="container")
    assert format_violation(empty.violations[0], "products[0].pricing.") == (
        "products[0].pricing: choose a pricing model: free, byol, or at least one price [PRC-02]"
    )


@pytest.mark.rule("PRC-03")
def test_prc03_trial_and_annual_do_not_combine_with_monthly_or_usage() -> None:
    assert_valid(check({**HOURLY, "monthly": "300"}))
    assert_valid(check({**HOURLY, "annual": {"m5.large": "700"}, "free_trial_days": 7}))
    result = check({**HOURLY, "monthly": "300", "free_trial_days": 7})
    assert_only(result, "PRC-03")
    assert format_violation(result.violations[0]) == (
        "free_trial_days: a free trial cannot be combined with monthly pricing [PRC-03]"
    )
    assert_only(check({**HOURLY, "monthly": "300", "annual": {"m5.large": "700"}}), "PRC-03")
    # usage has no hourly price, so the trial and annual also miss their hourly prices (PRC-04/06)
    assert "PRC-03" in rules_of(check({"usage": USERS, "free_trial_days": 7}))
    assert "PRC-03" in rules_of(check({"usage": USERS, "annual": {"m5.large": "700"}}))


@pytest.mark.rule("PRC-04")
def test_prc04_every_annual_type_has_an_hourly_price() -> None:
    assert_valid(check({"hourly": {"m5.large": "0.1", "c5.large": "0.3"}, "annual": {"m5.large": "700"}}))
    result = check({"hourly": {"m5.large": "0.1"}, "annual": {"m5.large": "700", "c5.large": "900"}})
    assert_only(result, "PRC-04")
    assert format_violation(result.violations[0], "products[0].pricing.") == (
        "products[0].pricing.annual.c5.large: annual price needs an hourly price for the same instance type [PRC-04]"
    )
    assert_only(check({"annual": {"m5.large": "700"}}), "PRC-04")
    assert_only(check({"hourly": {}}), "PRC-04")


@pytest.mark.rule("PRC-05")
def test_prc05_zero_annual_needs_zero_hourly_and_another_paid_annual() -> None:
    legal = {"hourly": {"m5.large": "0", "c5.large": "0.3"}, "annual": {"m5.large": "0", "c5.large": "900"}}
    assert_valid(check(legal))
    non_zero_hourly = {"hourly": {"m5.large": "0.1", "c5.large": "0.3"}, "annual": {"m5.large": "0", "c5.large": "900"}}
    assert_only(check(non_zero_hourly), "PRC-05")
    only_zero = {"hourly": {"m5.large": "0"}, "annual": {"m5.large": "0"}}
    assert_only(check(only_zero), "PRC-05")
    all_zero = {"hourly": {"m5.large": "0", "c5.large": "0"}, "annual": {"m5.large": "0", "c5.large": "0.00"}}
    assert rules_of(check(all_zero)) == {"PRC-05"}


@pytest.mark.rule("PRC-06")
@pytest.mark.parametrize("days", [5, 6, 30, 31])
def test_prc06_trial_of_5_to_31_days_is_legal(days: int) -> None:
    result = check({**HOURLY, "free_trial_days": days})
    assert_valid(result)
    assert result.terms is not None and result.terms.trial_days == days


@pytest.mark.rule("PRC-06")
@pytest.mark.parametrize("days", [-1, 0, 4, 32, 365])
def test_prc06_trial_outside_5_to_31_days(days: int) -> None:
    result = check({**HOURLY, "free_trial_days": days})
    assert_only(result, "PRC-06")
    assert format_violation(result.violations[0], "products[0].pricing.") == (
        "products[0].pricing.free_trial_days: must be 5 to 31 days [PRC-06]"
    )


@pytest.mark.rule("PRC-06")
def test_prc06_trial_needs_a_price_to_convert_to() -> None:
    assert_only(check({"free_trial_days": 14}), "PRC-06")
    assert_only(check({"contract": SEATS, "free_trial_days": 14}), "PRC-06")
    assert_only(check({"tiered": TIERED, "free_trial_days": 14}, kind="managed_service"), "PRC-06")
    assert_valid(check({"ml": ALGORITHM, "free_trial_days": 14}, kind="ml_algorithm"))
    assert "PRC-06" in rules_of(check({"free_trial_days": 14}, kind="ml_model"))


@pytest.mark.rule("PRC-07")
@pytest.mark.parametrize(
    ("category", "unit"),
    [
        ("users", "UserHrs"),
        ("hosts", "HostHrs"),
        ("data", "MB"),
        ("data", "GB"),
        ("data", "TB"),
        ("bandwidth", "Mbps"),
        ("bandwidth", "Gbps"),
        ("requests", "API calls"),
        ("tiers", "tier-hours"),
        ("units", "scans"),
    ],
)
def test_prc07_units_per_category(category: str, unit: str) -> None:
    usage = {"category": category, "dimensions": [{"name": "d1", "description": "Per unit", "unit": unit, "rate": "1"}]}
    assert_valid(check({"usage": usage}, kind="saas"))


@pytest.mark.rule("PRC-07")
@pytest.mark.parametrize(
    ("category", "unit"),
    [
        ("users", "HostHrs"),
        ("users", None),
        ("hosts", "hosts"),
        ("data", "KB"),
        ("bandwidth", "GB"),
        ("units", None),
        ("requests", " "),
    ],
)
def test_prc07_unit_not_valid_for_category(category: str, unit: str | None) -> None:
    usage = {"category": category, "dimensions": [{"name": "d1", "description": "Per unit", "unit": unit, "rate": "1"}]}
    result = check({"usage": usage})
    assert_only(result, "PRC-07")
    assert result.violations[0].path == "usage.dimensions[0].unit"


@pytest.mark.rule("PRC-07")
def test_prc07_at_most_24_dimensions() -> None:
    def usage(n: int) -> dict[str, Any]:
        dims = [
            {"name": f"host_{i}", "description": f"Host size {i}", "unit": "HostHrs", "rate": "0.01"} for i in range(n)
        ]
        return {"category": "hosts", "dimensions": dims}

    assert_valid(check({"usage": usage(24)}))
    result = check({"usage": usage(25)})
    assert_only(result, "PRC-07")
    assert format_violation(result.violations[0]) == "usage.dimensions: at most 24 dimensions (got 25) [PRC-07]"


@pytest.mark.rule("PRC-08")
@pytest.mark.parametrize("name", ["a", "Users", "host_2xl", "A1_b2_C3_d4_E5_", "_"])
def test_prc08_legal_dimension_names(name: str) -> None:
    usage = {
        "category": "users",
        "dimensions": [{"name": name, "description": "x" * 70, "unit": "UserHrs", "rate": "1"}],
    }
    assert_valid(check({"usage": usage}))


@pytest.mark.rule("PRC-08")
@pytest.mark.parametrize("name", ["", "users-admin", "users admin", "A1_b2_C3_d4_E5_6", "utilisé"])
def test_prc08_illegal_dimension_names(name: str) -> None:
    result = check({"contract": {"dimensions": [{"name": name, "description": "Seats", "prices": {"12": "100"}}]}})
    assert_only(result, "PRC-08")
    assert result.violations[0].path == "contract.dimensions[0].name"


@pytest.mark.rule("PRC-08")
def test_prc08_names_unique_and_descriptions_short() -> None:
    dim = USERS["dimensions"][0]
    duplicate = check({"usage": {**USERS, "dimensions": [dim, {**dim, "rate": "0.2"}]}})
    assert_only(duplicate, "PRC-08")
    assert format_violation(duplicate.violations[0]) == (
        "usage.dimensions[1].name: duplicate dimension name (also usage.dimensions[0].name) [PRC-08]"
    )
    assert_only(check({"usage": {**USERS, "dimensions": [{**dim, "description": "x" * 71}]}}), "PRC-08")
    assert_only(check({"usage": {**USERS, "dimensions": [{**dim, "description": "  "}]}}), "PRC-08")
    assert_only(check({"contract": {"dimensions": [{**SEATS["dimensions"][0], "description": "y" * 71}]}}), "PRC-08")


@pytest.mark.rule("PRC-10")
def test_prc10_contract_durations() -> None:
    legal = {
        "dimensions": [
            {"name": "seats", "description": "Seats", "prices": {"1": "10", "12": "100", "24": "190", "36": "270"}}
        ]
    }
    result = check({"contract": legal}, kind="saas")
    assert_valid(result)
    assert result.terms is not None
    assert dict(result.terms.contract[0].prices) == {
        1: Decimal(10),
        12: Decimal(100),
        24: Decimal(190),
        36: Decimal(270),
    }
    illegal = {"dimensions": [{"name": "seats", "description": "Seats", "prices": {"12": "100", "6": "55"}}]}
    result = check({"contract": illegal}, kind="saas")
    assert_only(result, "PRC-10")
    assert result.violations[0].path == "contract.dimensions[0].prices.6"


@pytest.mark.rule("PRC-11")
def test_prc11_byol_needs_a_paid_option_after_90_days() -> None:
    launched = date(2026, 1, 1)
    assert_valid(check({"byol": True}, tax_form="none"))  # not launched yet
    assert_valid(check({"byol": True}, launched_on=launched, as_of=launched))
    assert_valid(check({"byol": True}, launched_on=launched, as_of=launched + timedelta(days=90)))
    assert_valid(check({"byol": True, **HOURLY}, launched_on=launched, as_of=date(2027, 1, 1)))
    assert_valid(
        check({"byol": True, "tiered": TIERED}, kind="managed_service", launched_on=launched, as_of=date(2027, 1, 1))
    )
    late = check({"byol": True}, launched_on=launched, as_of=launched + timedelta(days=91))
    assert_only(late, "PRC-11")
    assert late.violations[0].path == "byol"
    assert_only(check({"byol": True}, launched_on=launched), "PRC-11")  # launched, no date to grant grace on


@pytest.mark.rule("PRC-12")
def test_prc12_ml_price_sets() -> None:
    algorithm = check({"ml": ALGORITHM}, kind="ml_algorithm")
    assert_valid(algorithm)
    assert algorithm.terms is not None and algorithm.terms.family == "ml"
    assert algorithm.terms.ml is not None and algorithm.terms.ml.training["ml.m5.large"] == Decimal("1.00")
    model = check({"ml": MODEL, "free_trial_days": 14}, kind="ml_model")
    assert_valid(model)
    assert model.terms is not None and model.terms.ml is not None and not model.terms.ml.training
    assert_only(check({"ml": MODEL}, kind="ml_algorithm"), "PRC-12")
    assert_only(check({"ml": ALGORITHM}, kind="ml_model"), "PRC-12")
    # each set prices the types it runs on: training on a GPU type, inference on CPU types
    apart = {**ALGORITHM, "training": {"ml.p3.2xlarge": "3.825"}, "batch_inference": {"ml.m5.large": "0.40"}}
    assert_valid(check({"ml": apart}, kind="ml_algorithm"))
    empty = check({"ml": {**ALGORITHM, "training": {}}}, kind="ml_algorithm")
    assert_only(empty, "PRC-12")
    assert format_violation(empty.violations[0]) == "ml.training: must price at least one instance type [PRC-12]"


@pytest.mark.rule("PRC-12")
@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"free": True},
        {"byol": True},
        {"ml": MODEL, "byol": True},
        {"ml": MODEL, **HOURLY},
        {"ml": MODEL, "usage": USERS},
    ],
)
def test_prc12_ml_products_are_paid_or_trial_only(raw: dict[str, Any]) -> None:
    assert_only(check(raw, kind="ml_model"), "PRC-12")


@pytest.mark.rule("PRC-12")
def test_prc12_ml_prices_only_on_ml_products() -> None:
    result = check({**HOURLY, "ml": MODEL}, kind="container")
    assert_only(result, "PRC-12")
    assert result.violations[0].path == "ml"


@pytest.mark.rule("PRC-13")
def test_prc13_tier_tables() -> None:
    result = check({"tiered": TIERED}, kind="managed_service")
    assert_valid(result)
    assert result.terms is not None and result.terms.family == "tiered"
    assert result.terms.tiered is not None and [t.up_to for t in result.terms.tiered.items[0].tiers] == [
        1000,
        10000,
        None,
    ]
    single = {
        "period": "day",
        "items": [{"name": "x", "reporting": "bill", "tiers": [{"up_to": None, "price": "0.2"}]}],
    }
    assert_valid(check({"tiered": single}, kind="managed_service"))

    def tiered(*bounds: int | None) -> dict[str, Any]:
        tiers = [{"up_to": b, "price": "0.01"} for b in bounds]
        return {"tiered": {"period": "hour", "items": [{"name": "calls", "reporting": "seller", "tiers": tiers}]}}

    for bad in [(100, 50, None), (100, 100, None), (100, 200), (None, 100, None), (None, None), (10,)]:
        assert_only(check(tiered(*bad), kind="managed_service"), "PRC-13")
    last = check(tiered(100, 200), kind="managed_service")
    assert format_violation(last.violations[0]) == (
        "tiered.items[0].tiers[1].up_to: the last tier must be open-ended (up_to: null) [PRC-13]"
    )
    assert_only(check({"tiered": TIERED}, kind="saas"), "PRC-13")


@pytest.mark.rule("PRC-14")
def test_prc14_one_reporting_method_per_item() -> None:
    items = [
        {"name": "cpu", "reporting": "prometheus", "metric": "container_cpu_seconds_total", "tiers": TIERS},
        {"name": "hours", "reporting": "time", "tiers": TIERS},
        {"name": "infra", "reporting": "bill", "tiers": TIERS},
        {"name": "calls", "reporting": "seller", "tiers": TIERS},
    ]
    assert_valid(check({"tiered": {"period": "day", "items": items}}, kind="managed_service"))
    for bad in [
        [{"name": "cpu", "reporting": "prometheus", "tiers": TIERS}],
        [{"name": "cpu", "reporting": "prometheus", "metric": " ", "tiers": TIERS}],
        [{"name": "hours", "reporting": "time", "metric": "uptime", "tiers": TIERS}],
        [
            {"name": "calls", "reporting": "seller", "tiers": TIERS},
            {"name": "calls", "reporting": "time", "tiers": TIERS},
        ],
        [{"name": "", "reporting": "seller", "tiers": TIERS}],
    ]:
        assert_only(check({"tiered": {"period": "day", "items": bad}}, kind="managed_service"), "PRC-14")


@pytest.mark.rule("PRC-15")
def test_prc15_items_are_associated_with_a_plan() -> None:
    def items(*plans: list[str] | None) -> dict[str, Any]:
        listed = []
        for i, p in enumerate(plans):
            item: dict[str, Any] = {"name": f"item{i}", "reporting": "seller", "tiers": TIERS}
            if p is not None:
                item["plans"] = p
            listed.append(item)
        return {"tiered": {"period": "hour", "items": listed}}

    assert_valid(check(items(None, None), kind="managed_service"))  # single template: associated automatically
    named = check(items(["basic"], ["basic", "pro"]), kind="managed_service")
    assert_valid(named)
    assert named.terms is not None and named.terms.tiered is not None
    assert [i.plans for i in named.terms.tiered.items] == [("basic",), ("basic", "pro")]
    assert_only(check(items(["basic"], None), kind="managed_service"), "PRC-15")
    assert_only(check(items([], ["pro"]), kind="managed_service"), "PRC-15")
    assert_only(check(items([""]), kind="managed_service"), "PRC-15")


@pytest.mark.rule("SEL-02")
@pytest.mark.parametrize("tax_form", ["W-9", "W-8"])
def test_sel02_paid_model_with_tax_form(tax_form: str) -> None:
    assert_valid(check(HOURLY, tax_form=tax_form))


@pytest.mark.rule("SEL-02")
def test_sel02_paid_model_needs_tax_form() -> None:
    assert_valid(check({"free": True}, tax_form="none"))
    assert_valid(check({"byol": True}, tax_form="none"))
    result = check({"usage": USERS}, kind="saas", tax_form="none")
    assert_only(result, "SEL-02")
    assert format_violation(result.violations[0], "products[0].pricing.") == (
        "products[0].pricing.usage: a paid pricing model needs a W-9 or W-8 tax form on file [SEL-02]"
    )
    assert_only(check({"byol": True, **HOURLY}, tax_form="none"), "SEL-02")


# --- helpers and the shape of the result -------------------------------------------------------------


def test_all_violations_are_reported_in_document_order() -> None:
    raw = {
        "tiered": TIERED,
        "free_trial_days": 2,
        "usage": {**USERS, "dimensions": [{**USERS["dimensions"][0], "name": "bad name", "unit": "GB"}]},
        "currency": "EUR",
    }
    result = check(raw, tax_form="none")
    assert [format_violation(v) for v in result.violations] == [
        "currency: prices are in USD only; got 'EUR' [PRC-01]",
        "free_trial_days: a free trial cannot be combined with usage pricing [PRC-03]",
        "free_trial_days: a free trial needs hourly prices to convert to [PRC-06]",
        "free_trial_days: must be 5 to 31 days [PRC-06]",
        "usage.dimensions[0].unit: must be UserHrs for users pricing [PRC-07]",
        "usage.dimensions[0].name: must be 1 to 15 letters, digits or underscores [PRC-08]",
        "usage: a paid pricing model needs a W-9 or W-8 tax form on file [SEL-02]",
        "tiered: tiered pricing is only for managed_service products [PRC-13]",
    ]
    assert result == check(raw, tax_form="none")  # stable


def test_violations_are_sorted_by_top_level_field() -> None:
    order = [
        "currency",
        "hourly",
        "annual",
        "monthly",
        "free_trial_days",
        "free",
        "byol",
        "usage",
        "contract",
        "ml",
        "tiered",
    ]
    raw = {"tiered": TIERED, "ml": MODEL, "usage": USERS, "free_trial_days": 40, "currency": "GBP", "free": True}
    result = check(raw)
    tops = [v.path.split(".")[0].split("[")[0] for v in result.violations]
    assert tops == sorted(tops, key=order.index)
    assert len(result.violations) >= 6


def test_format_violation() -> None:
    v = Violation("free_trial_days", "must be 5 to 31 days", "PRC-06")
    assert format_violation(v) == "free_trial_days: must be 5 to 31 days [PRC-06]"
    assert (
        format_violation(v, "products[0].pricing.")
        == "products[0].pricing.free_trial_days: must be 5 to 31 days [PRC-06]"
    )
    assert format_violation(Violation("", "choose", "PRC-02")) == "choose [PRC-02]"


def test_helpers_is_paid_and_pricing_family() -> None:
    doc = PricingDocument.model_validate
    assert not is_paid(doc({"free": True}))
    assert not is_paid(doc({"byol": True}))
    assert not is_paid(doc({}))
    assert is_paid(doc({"hourly": {"m5.large": "0"}}))  # a paid model, whatever the amount
    assert is_paid(doc({"ml": MODEL}))
    assert pricing_family(doc({})) == "none"
    assert pricing_family(doc({**HOURLY, "monthly": "1"})) == "hourly_monthly"
    assert pricing_family(doc({"byol": True, "contract": SEATS})) == "contract"
    assert pricing_family(doc({"tiered": TIERED})) == "tiered"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown product kind"):
        check({"free": True}, kind="desktop")


def test_terms_are_frozen() -> None:
    terms = check(HOURLY).terms
    assert terms is not None
    with pytest.raises(TypeError):
        terms.hourly["m5.large"] = Decimal(0)  # type: ignore[index]
