"""Which pricing documents may be published: a pure function of the document and its product's context.

`validate_pricing` reports every problem it finds, each with the RULES.md rule it breaks, and only for
a document with none does it return the `PricingTerms` billing works from. Content checks of single
components live in `rules_checks`; this module decides which components a kind may use and which
may be combined.

Decisions where the sources are silent or vague (each names its source):

* Families per kind. Server images and containers take the eleven models of PRC-02 [GUIDE "AMI Pricing
  Models"; PRICING "Contract pricing is available for … AMI … Container … SaaS"]. SaaS takes usage
  (SaaS subscriptions, metered) or contract [GUIDE "SaaS Subscriptions/Contracts Pricing"; PRICING];
  hourly, annual, monthly and free trials are instance-based and not offered to SaaS. Managed services
  take tiered usage, the one billing method the Alibaba source describes [ALI "Pricing Plan: By Usage"];
  tiered pricing is only for them (PRC-13). ML products take ML prices with an optional free trial and
  nothing else (PRC-12) [ML]. Free and BYOL, which charge nothing through the marketplace (PRC-17), are
  open to every non-ML kind.
* "Hourly + monthly" and "Monthly + hourly" are one family, `hourly_monthly`: the GUIDE describes both
  with the same sentence (both charges applied independently).
* A component a kind may not use is reported once, by the rule that excludes it (PRC-12 for ML, PRC-13
  for tiered, PRC-02 otherwise), and is then ignored by the other checks so one mistake is one line.
* PRC-11 grace: in grace while `as_of <= launched_on + 90 days` (the 90-day period counted as in CHG-02);
  an unlaunched product is in grace; a launched product checked without `as_of` is not.
* PRC-07: requests/tiers/units dimensions must carry a non-blank `unit` the seller names (what invoices
  show); the preset categories take their fixed units exactly (`UserHrs`, not `userhrs`).
* PRC-08: descriptions must also be non-blank; names are unique (case-sensitive) across the usage and
  contract dimensions of the document. PRC-01's 3 places apply to usage rates and tier prices only.
* PRC-12: "no Free" for ML also means at least one ML price above $0.
* PRC-14/15: the schema allows one `reporting` value per item; item names must be unique and non-blank.
  `plans` left out on every item means the service's single template, associated automatically [ALI
  "If only one service template is available, the default template is automatically selected"]; once
  any item names plans, every item must name at least one.
* `is_paid` is about the model, not the amounts: any charging component (hourly, annual, monthly, usage,
  contract, ml, tiered) makes the document paid for SEL-02, even if a price is $0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from agora.pricing.rules_checks import (
    Violation,
    check_contract,
    check_currency,
    check_dimension_names,
    check_instance_prices,
    check_ml,
    check_tiered,
    check_trial_days,
    check_usage,
)
from agora.pricing.rules_terms import PricingTerms, build_terms
from agora.pricing.schema import PricingDocument

__all__ = [
    "FAMILIES",
    "KINDS",
    "PricingContext",
    "PricingTerms",
    "ValidationResult",
    "Violation",
    "format_violation",
    "is_paid",
    "pricing_family",
    "validate_pricing",
]

KINDS = ("saas", "ami", "container", "ml_algorithm", "ml_model", "managed_service")
ML_KINDS = ("ml_algorithm", "ml_model")
FAMILIES = (
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
    "ml",
    "tiered",
)
TAX_FORMS = ("W-9", "W-8")  # SEL-02
BYOL_GRACE = timedelta(days=90)  # PRC-11

TRIAL = "free_trial_days"
CHARGES = ("hourly", "annual", "monthly", "usage", "contract", "ml", "tiered")
# Top-level order of the document, used to list violations in the order a seller reads the document.
_FIELD_ORDER = ("currency", "hourly", "annual", "monthly", TRIAL, "free", "byol", "usage", "contract", "ml", "tiered")

# The components each kind may use (see the module docstring for the sources).
_INSTANCE = frozenset({"hourly", "annual", "monthly", "usage", "contract", "free", "byol"})
_ALLOWED: Mapping[str, frozenset[str]] = {
    "ami": _INSTANCE,
    "container": _INSTANCE,
    "saas": frozenset({"usage", "contract", "free", "byol"}),
    "managed_service": frozenset({"tiered", "free", "byol"}),
    "ml_algorithm": frozenset({"ml"}),
    "ml_model": frozenset({"ml"}),
}
_KIND_HINT: Mapping[str, str] = {
    "saas": "SaaS products are priced by usage or contract",
    "managed_service": "managed services are priced by tiered usage",
    "ml_algorithm": "ML products have ML prices and an optional free trial only",
    "ml_model": "ML products have ML prices and an optional free trial only",
}

_LABEL: Mapping[str, str] = {
    "hourly": "hourly pricing",
    "annual": "annual pricing",
    "monthly": "monthly pricing",
    TRIAL: "a free trial",
    "usage": "usage pricing",
    "contract": "contract pricing",
}
# Pairs that may not appear together: (earlier, later) → rule; the violation sits on the later one.
# With the requirements "annual needs hourly" (PRC-04) and "a trial needs hourly" (PRC-06) this leaves
# exactly the combinations PRC-02 lists: {H}, {H,T}, {H,M}, {H,A}, {H,T,A}, {M}, {U}, {C}.
_CONFLICTS: Mapping[tuple[str, str], str] = {
    ("monthly", "annual"): "PRC-03",
    ("monthly", TRIAL): "PRC-03",
    ("usage", "annual"): "PRC-03",
    ("usage", TRIAL): "PRC-03",
    ("hourly", "usage"): "PRC-02",
    ("monthly", "usage"): "PRC-02",
    ("hourly", "contract"): "PRC-02",
    ("annual", "contract"): "PRC-02",
    ("monthly", "contract"): "PRC-02",
    ("usage", "contract"): "PRC-02",
}


@dataclass(frozen=True)
class PricingContext:
    kind: str  # saas | ami | container | ml_algorithm | ml_model | managed_service
    seller_tax_form: str  # "W-9" | "W-8" | "none"
    launched_on: date | None = None  # first public date; None = not yet launched
    as_of: date | None = None  # the day the check is made (PRC-11 grace)


@dataclass(frozen=True)
class ValidationResult:
    violations: list[Violation]
    terms: PricingTerms | None  # present iff there are no violations

    @property
    def ok(self) -> bool:
        return not self.violations


def format_violation(v: Violation, prefix: str = "") -> str:
    """`products[0].pricing.free_trial_days: must be 5 to 31 days [PRC-06]`; a whole-document problem
    (empty path) is reported on the prefix without its trailing dot."""
    location = f"{prefix}{v.path}" if v.path else prefix.rstrip(".")
    head = f"{location}: " if location else ""
    return f"{head}{v.message} [{v.rule}]"


def _components(document: PricingDocument) -> list[str]:
    """The models the document uses, in document order (`free: false` and `byol: false` mean absent)."""
    present = [name for name in CHARGES if getattr(document, name) is not None]
    present += [name for name in ("free", "byol") if getattr(document, name)]
    return sorted(present, key=_FIELD_ORDER.index)


def is_paid(document: PricingDocument) -> bool:
    """Whether the document has a paid pricing model (SEL-02), whatever the amounts."""
    return any(getattr(document, name) is not None for name in CHARGES)


def pricing_family(document: PricingDocument) -> str:
    """The family a document belongs to. For a document that passes `validate_pricing` this is exact;
    for one that does not it is a best effort by precedence (ml, tiered, usage, contract, monthly,
    hourly, byol, free), and "none" when nothing is priced."""
    if document.ml is not None:
        return "ml"
    for name in ("tiered", "usage", "contract"):
        if getattr(document, name) is not None:
            return name
    if document.monthly is not None:
        return "hourly_monthly" if document.hourly is not None else "monthly"
    if document.hourly is not None or document.annual is not None:
        trial = "_trial" if document.free_trial_days is not None else ""
        annual = "_annual" if document.annual is not None else ""
        return f"hourly{trial}{annual}"
    if document.byol:
        return "byol"
    if document.free:
        return "free"
    return "none"


def _in_byol_grace(context: PricingContext) -> bool:
    if context.launched_on is None:
        return True
    if context.as_of is None:
        return False
    return context.as_of <= context.launched_on + BYOL_GRACE


def _unavailable(kind: str, component: str) -> Violation:
    if component == "ml":
        return Violation("ml", "ML prices are only for ml_algorithm and ml_model products", "PRC-12")
    if component == "tiered" and kind not in ML_KINDS:
        return Violation("tiered", "tiered pricing is only for managed_service products", "PRC-13")
    name = {"free": "free", "byol": "BYOL"}.get(component, f"{component} pricing")
    rule = "PRC-12" if kind in ML_KINDS else "PRC-02"
    return Violation(component, f"{name} is not available for {kind} products ({_KIND_HINT[kind]})", rule)


def _check_models(document: PricingDocument, context: PricingContext) -> Iterator[Violation]:
    """Which components this kind may use and which may be combined (PRC-02/03/06/11/12/13)."""
    kind = context.kind
    present = _components(document)
    allowed = _ALLOWED[kind]
    used = [c for c in present if c in allowed]
    for component in present:
        if component not in allowed:
            yield _unavailable(kind, component)
    has_trial = document.free_trial_days is not None

    if kind in ML_KINDS:
        if document.ml is None:
            yield Violation("ml", "ML products need ML prices (per instance type per hour)", "PRC-12")
    elif not present and not has_trial:
        yield Violation("", "choose a pricing model: free, byol, or at least one price", "PRC-02")

    if "free" in used:
        others = [c for c in used if c != "free"]
        if others:
            yield Violation("free", f"free cannot be combined with other pricing ({', '.join(others)})", "PRC-02")

    combined = [*used, TRIAL] if has_trial else used
    for (first, second), rule in _CONFLICTS.items():
        if first in combined and second in combined:
            yield Violation(second, f"{_LABEL[second]} cannot be combined with {_LABEL[first]}", rule)

    if has_trial:
        if kind in ML_KINDS:
            if document.ml is None:
                yield Violation(TRIAL, "a free trial needs ML prices to convert to", "PRC-06")
        elif "hourly" not in used:
            yield Violation(TRIAL, "a free trial needs hourly prices to convert to", "PRC-06")

    if "byol" in used and not any(c in CHARGES for c in used) and not _in_byol_grace(context):
        yield Violation(
            "byol",
            "a BYOL product needs a paid option too (the exception ends 90 days after launch)",
            "PRC-11",
        )


def _check_content(document: PricingDocument, context: PricingContext) -> Iterator[Violation]:
    allowed = _ALLOWED[context.kind]
    yield from check_currency(document)
    if document.free_trial_days is not None:
        yield from check_trial_days(document.free_trial_days)
    if "hourly" in allowed:
        yield from check_instance_prices(document)
    if "usage" in allowed:
        yield from check_usage(document)
        yield from check_contract(document)
        yield from check_dimension_names(document)
    if document.ml is not None and context.kind in ML_KINDS:
        yield from check_ml(context.kind, document.ml)
    if document.tiered is not None and "tiered" in allowed:
        yield from check_tiered(document.tiered)


def _check_tax_form(document: PricingDocument, context: PricingContext) -> Iterator[Violation]:
    if is_paid(document) and context.seller_tax_form not in TAX_FORMS:
        first_charge = next(name for name in _components(document) if name in CHARGES)
        yield Violation(first_charge, "a paid pricing model needs a W-9 or W-8 tax form on file", "SEL-02")


def _position(v: Violation) -> int:
    top = v.path.split(".", 1)[0].split("[", 1)[0]
    return _FIELD_ORDER.index(top) if top in _FIELD_ORDER else -1


def validate_pricing(document: PricingDocument, context: PricingContext) -> ValidationResult:
    """Every rule violation of `document` for a product of `context.kind`, and its terms if there is none.

    Violations come in document order (by top-level field), then in the order the checks run.
    """
    if context.kind not in _ALLOWED:
        raise ValueError(f"unknown product kind {context.kind!r}; expected one of {', '.join(KINDS)}")
    found = [
        *_check_models(document, context),
        *_check_content(document, context),
        *_check_tax_form(document, context),
    ]
    violations = sorted(found, key=_position)
    if violations:
        return ValidationResult(violations=violations, terms=None)
    family = "ml" if context.kind in ML_KINDS else pricing_family(document)
    terms = build_terms(document, kind=context.kind, family=family, paid=is_paid(document))
    return ValidationResult(violations=[], terms=terms)


def components_of(kind: str) -> frozenset[str]:
    """The pricing components a product of `kind` may use, the free trial included where it has prices to
    convert to (PRC-02/06/12/13): what a pricing form offers for that kind."""
    trial = {TRIAL} if kind in ML_KINDS or "hourly" in _ALLOWED[kind] else set()
    return _ALLOWED[kind] | trial
