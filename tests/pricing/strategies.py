"""Hypothesis strategies for pricing documents that must pass every rule, one family at a time, and
the single mutations that each break exactly one rule.

Documents are drawn as the JSON/YAML a seller would write (prices as decimal strings) and parsed with
`PricingDocument`, so mutations can edit the plain dict and re-parse it.
"""

from __future__ import annotations

import copy
import functools
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from agora.pricing.rules import FAMILIES, PricingContext
from agora.pricing.rules_checks import CATEGORY_UNITS, CONTRACT_MONTHS
from agora.pricing.schema import PricingDocument

INSTANCE_TYPES = ("t3.micro", "m5.large", "m5.xlarge", "c5.2xlarge", "r6g.medium", "ml.m5.large", "p3.2xlarge")
PLANS = ("basic", "pro", "enterprise")
CATEGORIES = ("users", "hosts", "bandwidth", "data", "requests", "tiers", "units")

INSTANCE_FAMILIES = (
    "free",
    "byol",
    "hourly",
    "hourly_trial",
    "hourly_monthly",
    "hourly_annual",
    "hourly_trial_annual",
    "monthly",
    "usage",
    "contract",
)
KIND_FAMILIES: dict[str, tuple[str, ...]] = {
    "ami": INSTANCE_FAMILIES,
    "container": INSTANCE_FAMILIES,
    "saas": ("free", "byol", "usage", "contract"),
    "managed_service": ("free", "byol", "tiered"),
    "ml_algorithm": ("ml",),
    "ml_model": ("ml",),
}
UNPAID_FAMILIES = ("free", "byol")
PAID_FAMILIES = tuple(f for f in (*INSTANCE_FAMILIES, "ml", "tiered") if f not in UNPAID_FAMILIES)
INSTANCE_KINDS = ("ami", "container")
NON_ML_KINDS = ("ami", "container", "saas", "managed_service")
TRIAL_FAMILIES = ("hourly_trial", "hourly_trial_annual")
ANNUAL_FAMILIES = ("hourly_annual", "hourly_trial_annual")


@dataclass(frozen=True)
class Case:
    kind: str
    family: str
    raw: dict[str, Any]
    context: PricingContext

    @property
    def document(self) -> PricingDocument:
        return PricingDocument.model_validate(self.raw)

    @property
    def paid(self) -> bool:
        return self.family not in UNPAID_FAMILIES

    def edited(self) -> dict[str, Any]:
        """A deep copy of the raw document to mutate."""
        return copy.deepcopy(self.raw)

    def with_raw(self, raw: dict[str, Any]) -> Case:
        return replace(self, raw=raw)


def text_price(value: Decimal) -> str:
    return format(value, "f")


# Strategies are built once at import: hypothesis validates every new strategy object, which dominates
# the run time when they are rebuilt inside every draw. The helpers below take `draw` and use these.
PRICE = st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=3).map(text_price)
POSITIVE_PRICE = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3).map(text_price)
TRIAL_DAYS = st.integers(5, 31)
BOOLEANS = st.booleans()
NAME_ALPHABET = string.ascii_letters + string.digits + "_"
DIMENSION_NAMES = st.lists(
    st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=15), min_size=1, max_size=5, unique=True
)
DESCRIPTIONS = st.text(alphabet=string.ascii_letters + string.digits + " ,.-/()", min_size=1, max_size=70).filter(
    lambda s: s.strip() != ""
)
CUSTOM_UNITS = st.sampled_from(("scans", "API calls", "GB-months", "seats", "jobs"))
CATEGORY = st.sampled_from(CATEGORIES)
UNITS = {category: st.sampled_from(units) for category, units in CATEGORY_UNITS.items()}
INSTANCE_TYPE_LISTS = st.lists(st.sampled_from(INSTANCE_TYPES), min_size=1, max_size=4, unique=True)
MONTHS = st.lists(st.sampled_from(CONTRACT_MONTHS), min_size=1, unique=True)
BOUNDS = st.lists(st.integers(1, 10**6), max_size=3, unique=True).map(sorted)
ITEM_NAMES = st.lists(
    st.sampled_from(("api_calls", "cpu_hours", "storage", "egress", "jobs")), min_size=1, max_size=3, unique=True
)
REPORTING = st.sampled_from(("seller", "time", "bill", "prometheus"))
PLAN_LISTS = st.lists(st.sampled_from(PLANS), min_size=1, unique=True)
PERIOD = st.sampled_from(("hour", "day"))
AS_OF = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
DAYS_SINCE_LAUNCH = st.none() | st.integers(0, 2000)
DAYS_IN_GRACE = st.none() | st.integers(0, 90)
PAID_FORMS = st.sampled_from(("W-9", "W-8"))
ANY_FORMS = st.sampled_from(("W-9", "W-8", "none"))


def _annual_for(draw: st.DrawFn, hourly: dict[str, str]) -> dict[str, str]:
    """Annual prices for some of the hourly types (PRC-04); sometimes a legal $0 one (PRC-05)."""
    types = draw(st.lists(st.sampled_from(sorted(hourly)), min_size=1, unique=True))
    annual = {t: draw(POSITIVE_PRICE) for t in types}
    if len(types) >= 2 and draw(BOOLEANS):
        hourly[types[0]] = "0"
        annual[types[0]] = "0"
    return annual


def _usage(draw: st.DrawFn) -> dict[str, Any]:
    category = draw(CATEGORY)
    unit = UNITS.get(category, CUSTOM_UNITS)
    dimensions = [
        {"name": name, "description": draw(DESCRIPTIONS), "unit": draw(unit), "rate": draw(PRICE)}
        for name in draw(DIMENSION_NAMES)
    ]
    return {"category": category, "dimensions": dimensions}


def _contract(draw: st.DrawFn) -> dict[str, Any]:
    dimensions = []
    for name in draw(DIMENSION_NAMES):
        dimension: dict[str, Any] = {
            "name": name,
            "description": draw(DESCRIPTIONS),
            "prices": {m: draw(PRICE) for m in draw(MONTHS)},
        }
        if draw(BOOLEANS):
            dimension["unit"] = draw(CUSTOM_UNITS)
        dimensions.append(dimension)
    return {"dimensions": dimensions}


def _ml(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    sets: tuple[str, ...] = ("training", "realtime_inference", "batch_inference")
    if kind == "ml_model":
        sets = sets[1:]
    # each set draws its own instance types: training and inference need not run on the same ones (PRC-12)
    return {name: {t: draw(POSITIVE_PRICE) for t in draw(INSTANCE_TYPE_LISTS)} for name in sets}


def _tiered(draw: st.DrawFn) -> dict[str, Any]:
    with_plans = draw(BOOLEANS)
    items = []
    for name in draw(ITEM_NAMES):
        reporting = draw(REPORTING)
        tiers = [{"up_to": b, "price": draw(PRICE)} for b in [*draw(BOUNDS), None]]
        item: dict[str, Any] = {"name": name, "reporting": reporting, "tiers": tiers}
        if reporting == "prometheus":
            item["metric"] = f"{name}_total"
        if with_plans:
            item["plans"] = draw(PLAN_LISTS)
        if draw(BOOLEANS):
            item["unit"] = draw(CUSTOM_UNITS)
        items.append(item)
    return {"period": draw(PERIOD), "items": items}


def _priced(draw: st.DrawFn, kind: str, family: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if family.startswith("hourly"):
        raw["hourly"] = {t: draw(PRICE) for t in draw(INSTANCE_TYPE_LISTS)}
    if family in ANNUAL_FAMILIES:
        raw["annual"] = _annual_for(draw, raw["hourly"])
    if family in TRIAL_FAMILIES:
        raw["free_trial_days"] = draw(TRIAL_DAYS)
    if family in ("monthly", "hourly_monthly"):
        raw["monthly"] = draw(POSITIVE_PRICE)
    if family == "usage":
        raw["usage"] = _usage(draw)
    if family == "contract":
        raw["contract"] = _contract(draw)
    if family == "ml":
        raw["ml"] = _ml(draw, kind)
        if draw(BOOLEANS):
            raw["free_trial_days"] = draw(TRIAL_DAYS)
    if family == "tiered":
        raw["tiered"] = _tiered(draw)
    return raw


def _context(draw: st.DrawFn, kind: str, *, paid: bool, needs_grace: bool) -> PricingContext:
    as_of = draw(AS_OF)
    days = draw(DAYS_IN_GRACE if needs_grace else DAYS_SINCE_LAUNCH)
    launched_on = None if days is None else as_of - timedelta(days=days)
    tax_form = draw(PAID_FORMS if paid else ANY_FORMS)
    return PricingContext(kind=kind, seller_tax_form=tax_form, launched_on=launched_on, as_of=as_of)


@st.composite
def _cases(draw: st.DrawFn, options: st.SearchStrategy[tuple[str, str]]) -> Case:
    kind, family = draw(options)
    if family == "free":
        raw: dict[str, Any] = {"free": True}
    elif family == "byol":
        raw = {"byol": True}
    else:
        raw = _priced(draw, kind, family)
        if kind not in ("ml_algorithm", "ml_model") and draw(BOOLEANS):
            raw["byol"] = True  # BYOL with a paid option reports the paid family
    paid = family not in UNPAID_FAMILIES
    context = _context(draw, kind, paid=paid, needs_grace=family == "byol")
    return Case(kind=kind, family=family, raw=raw, context=context)


@functools.cache
def valid_cases(
    kinds: tuple[str, ...] | None = None, families: tuple[str, ...] | None = None
) -> st.SearchStrategy[Case]:
    """Documents of legal families for the given kinds (default all), each with a context in which it
    passes every rule. Cached: the same arguments give the same strategy object."""
    options = [
        (kind, family)
        for kind, allowed in KIND_FAMILIES.items()
        if kinds is None or kind in kinds
        for family in allowed
        if families is None or family in families
    ]
    return _cases(st.sampled_from(options))


# --- single mutations: each takes a legal case and breaks exactly one rule ----------------------------


@dataclass(frozen=True)
class Mutation:
    rule: str
    name: str
    families: tuple[str, ...]
    apply: Callable[[Case, st.DataObject], Case]
    kinds: tuple[str, ...] | None = None


def _edit(edit: Callable[[dict[str, Any], st.DataObject], None]) -> Callable[[Case, st.DataObject], Case]:
    def apply(case: Case, data: st.DataObject) -> Case:
        raw = case.edited()
        edit(raw, data)
        return case.with_raw(raw)

    return apply


def _fourth_place(raw: dict[str, Any], data: st.DataObject) -> None:
    dimension = data.draw(st.sampled_from(raw["usage"]["dimensions"]))
    dimension["rate"] = format(Decimal(dimension["rate"]) + Decimal("0.0005"), "f")


def _tier_fourth_place(raw: dict[str, Any], data: st.DataObject) -> None:
    tier = data.draw(st.sampled_from(raw["tiered"]["items"]))["tiers"][-1]
    tier["price"] = format(Decimal(tier["price"]) + Decimal("0.0001"), "f")


def _currency(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["currency"] = data.draw(st.sampled_from(("EUR", "usd", "CNY")))


def _add_free(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["free"] = True


def _add_hourly(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["hourly"] = {"m5.large": "0.10"}


def _clear(raw: dict[str, Any], data: st.DataObject) -> None:
    raw.clear()


def _add_monthly(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["monthly"] = "300"


def _annual_without_hourly(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["annual"]["x9.unpriced"] = "700"


def _zero_annual(raw: dict[str, Any], data: st.DataObject) -> None:
    instance_type = data.draw(st.sampled_from(sorted(raw["annual"])))
    raw["annual"][instance_type] = "0"
    raw["hourly"][instance_type] = "0.50"


def _trial_out_of_range(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["free_trial_days"] = data.draw(st.integers(-3, 4) | st.integers(32, 400))


def _drop_hourly(raw: dict[str, Any], data: st.DataObject) -> None:
    del raw["hourly"]
    raw.pop("byol", None)  # else BYOL would lose its paid option too (PRC-11)


def _add_trial(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["free_trial_days"] = data.draw(st.integers(5, 31))


def _bad_unit(raw: dict[str, Any], data: st.DataObject) -> None:
    dimension = data.draw(st.sampled_from(raw["usage"]["dimensions"]))
    if raw["usage"]["category"] in ("users", "hosts", "data", "bandwidth"):
        dimension["unit"] = data.draw(st.sampled_from(("Widgets", "userhrs", "KB", "")))
    else:
        dimension["unit"] = data.draw(st.sampled_from((None, "", "  ")))


def _too_many_dimensions(raw: dict[str, Any], data: st.DataObject) -> None:
    dimensions = raw["usage"]["dimensions"]
    template = dimensions[0]
    for n in range(25 - len(dimensions)):
        dimensions.append({**template, "name": f"extra_dim_{n}_"[:15]})


def _bad_name(raw: dict[str, Any], data: st.DataObject) -> None:
    component = "usage" if "usage" in raw else "contract"
    dimension = data.draw(st.sampled_from(raw[component]["dimensions"]))
    dimension["name"] = data.draw(st.sampled_from(("", "has space", "bad-name", "users.per.hour", "x" * 16, "naïve")))


def _duplicate_name(raw: dict[str, Any], data: st.DataObject) -> None:
    component = "usage" if "usage" in raw else "contract"
    dimensions = raw[component]["dimensions"]
    dimensions.append(dict(data.draw(st.sampled_from(dimensions))))


def _long_description(raw: dict[str, Any], data: st.DataObject) -> None:
    component = "usage" if "usage" in raw else "contract"
    dimension = data.draw(st.sampled_from(raw[component]["dimensions"]))
    dimension["description"] = "d" * data.draw(st.integers(71, 200))


def _bad_duration(raw: dict[str, Any], data: st.DataObject) -> None:
    dimension = data.draw(st.sampled_from(raw["contract"]["dimensions"]))
    dimension["prices"][data.draw(st.sampled_from(("0", "3", "6", "13", "48", "12m")))] = "10"


def _byol_past_grace(case: Case, data: st.DataObject) -> Case:
    as_of = case.context.as_of or date(2026, 6, 1)
    launched_on = as_of - timedelta(days=data.draw(st.integers(91, 3000)))
    return replace(case, context=replace(case.context, launched_on=launched_on, as_of=as_of))


def _drop_ml_set(raw: dict[str, Any], data: st.DataObject) -> None:
    del raw["ml"][data.draw(st.sampled_from(sorted(raw["ml"])))]


def _empty_ml_set(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["ml"][data.draw(st.sampled_from(sorted(raw["ml"])))] = {}


def _zero_ml(raw: dict[str, Any], data: st.DataObject) -> None:
    for prices in raw["ml"].values():
        for instance_type in prices:
            prices[instance_type] = "0"


def _model_with_training(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["ml"]["training"] = dict(raw["ml"]["realtime_inference"])


def _add_ml(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["ml"] = {"realtime_inference": {"ml.m5.large": "0.50"}}


def _add_tiered(raw: dict[str, Any], data: st.DataObject) -> None:
    raw["tiered"] = {
        "period": "hour",
        "items": [{"name": "calls", "reporting": "seller", "tiers": [{"up_to": None, "price": "0.01"}]}],
    }


def _tiers_descending(raw: dict[str, Any], data: st.DataObject) -> None:
    item = data.draw(st.sampled_from(raw["tiered"]["items"]))
    item["tiers"] = [{"up_to": 100, "price": "0.01"}, {"up_to": 50, "price": "0.02"}, {"up_to": None, "price": "0"}]


def _last_tier_bounded(raw: dict[str, Any], data: st.DataObject) -> None:
    item = data.draw(st.sampled_from(raw["tiered"]["items"]))
    bounds = [t["up_to"] for t in item["tiers"] if t["up_to"] is not None]
    item["tiers"][-1]["up_to"] = max(bounds, default=0) + data.draw(st.integers(1, 1000))


def _open_tier_first(raw: dict[str, Any], data: st.DataObject) -> None:
    item = data.draw(st.sampled_from(raw["tiered"]["items"]))
    item["tiers"].insert(0, {"up_to": None, "price": "0.5"})


def _prometheus_without_metric(raw: dict[str, Any], data: st.DataObject) -> None:
    item = data.draw(st.sampled_from(raw["tiered"]["items"]))
    item["reporting"] = "prometheus"
    item.pop("metric", None)


def _metric_without_prometheus(raw: dict[str, Any], data: st.DataObject) -> None:
    item = data.draw(st.sampled_from(raw["tiered"]["items"]))
    item["reporting"] = data.draw(st.sampled_from(("seller", "time", "bill")))
    item["metric"] = "cpu_seconds_total"


def _duplicate_item(raw: dict[str, Any], data: st.DataObject) -> None:
    items = raw["tiered"]["items"]
    items.append(dict(data.draw(st.sampled_from(items))))


def _empty_plans(raw: dict[str, Any], data: st.DataObject) -> None:
    data.draw(st.sampled_from(raw["tiered"]["items"]))["plans"] = []


def _plans_on_one_item_only(raw: dict[str, Any], data: st.DataObject) -> None:
    items = raw["tiered"]["items"]
    for item in items:
        item.pop("plans", None)
    items.append({"name": "new_item", "reporting": "time", "plans": ["pro"], "tiers": [{"up_to": None, "price": "1"}]})


def _no_tax_form(case: Case, data: st.DataObject) -> Case:
    return replace(case, context=replace(case.context, seller_tax_form=data.draw(st.sampled_from(("none", "", "W-2")))))


MUTATIONS = [
    Mutation("PRC-01", "usage rate with 4 decimal places", ("usage",), _edit(_fourth_place)),
    Mutation("PRC-01", "tier price with 4 decimal places", ("tiered",), _edit(_tier_fourth_place)),
    Mutation("PRC-01", "currency other than USD", FAMILIES, _edit(_currency)),
    Mutation("PRC-02", "free combined with a charge", PAID_FAMILIES, _edit(_add_free), NON_ML_KINDS),
    Mutation("PRC-02", "hourly added to usage or contract", ("usage", "contract"), _edit(_add_hourly)),
    Mutation("PRC-02", "empty document", FAMILIES, _edit(_clear), NON_ML_KINDS),
    Mutation("PRC-03", "monthly added to trial or annual", ("hourly_trial", *ANNUAL_FAMILIES), _edit(_add_monthly)),
    Mutation("PRC-04", "annual type without hourly", ANNUAL_FAMILIES, _edit(_annual_without_hourly)),
    Mutation("PRC-05", "$0 annual with non-zero hourly", ANNUAL_FAMILIES, _edit(_zero_annual)),
    Mutation(
        "PRC-06", "trial length out of range", ("hourly_trial", "hourly_trial_annual"), _edit(_trial_out_of_range)
    ),
    Mutation("PRC-06", "trial without hourly", ("hourly_trial",), _edit(_drop_hourly)),
    Mutation("PRC-06", "trial added to contract", ("contract",), _edit(_add_trial)),
    Mutation("PRC-07", "unit not valid for the category", ("usage",), _edit(_bad_unit)),
    Mutation("PRC-07", "25 dimensions", ("usage",), _edit(_too_many_dimensions)),
    Mutation("PRC-08", "bad dimension name", ("usage", "contract"), _edit(_bad_name)),
    Mutation("PRC-08", "duplicate dimension name", ("usage", "contract"), _edit(_duplicate_name)),
    Mutation("PRC-08", "description over 70 characters", ("usage", "contract"), _edit(_long_description)),
    Mutation("PRC-10", "contract duration not 1/12/24/36", ("contract",), _edit(_bad_duration)),
    Mutation("PRC-11", "BYOL only, past 90 days after launch", ("byol",), _byol_past_grace),
    Mutation("PRC-12", "ML price set missing", ("ml",), _edit(_drop_ml_set)),
    Mutation("PRC-12", "ML price set with no instance type", ("ml",), _edit(_empty_ml_set)),
    Mutation("PRC-12", "ML all prices $0", ("ml",), _edit(_zero_ml)),
    Mutation("PRC-12", "model package with training price", ("ml",), _edit(_model_with_training), ("ml_model",)),
    Mutation("PRC-12", "hourly on an ML product", ("ml",), _edit(_add_hourly)),
    Mutation("PRC-12", "free on an ML product", ("ml",), _edit(_add_free)),
    Mutation("PRC-12", "ml prices on a non-ML product", PAID_FAMILIES, _edit(_add_ml), NON_ML_KINDS),
    Mutation("PRC-13", "tiered on a server image", PAID_FAMILIES, _edit(_add_tiered), INSTANCE_KINDS),
    Mutation("PRC-13", "descending tier bounds", ("tiered",), _edit(_tiers_descending)),
    Mutation("PRC-13", "last tier not open-ended", ("tiered",), _edit(_last_tier_bounded)),
    Mutation("PRC-13", "open-ended tier not last", ("tiered",), _edit(_open_tier_first)),
    Mutation("PRC-14", "prometheus without metric", ("tiered",), _edit(_prometheus_without_metric)),
    Mutation("PRC-14", "metric on a non-prometheus item", ("tiered",), _edit(_metric_without_prometheus)),
    Mutation("PRC-14", "same item twice (two reporting methods)", ("tiered",), _edit(_duplicate_item)),
    Mutation("PRC-15", "item with an empty plan list", ("tiered",), _edit(_empty_plans)),
    Mutation("PRC-15", "plans on some items only", ("tiered",), _edit(_plans_on_one_item_only)),
    Mutation("SEL-02", "paid model without tax form", PAID_FAMILIES, _no_tax_form),
]
