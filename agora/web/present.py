"""Words and tables for the storefront: kinds, pricing models, and a pricing document explained the way a
buyer reads it. Pure functions over the catalog's JSON; display only (billing never reads these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agora.web.core import money

KINDS = {
    "saas": "SaaS",
    "ami": "Server image",
    "container": "Container",
    "ml_algorithm": "ML algorithm",
    "ml_model": "ML model",
    "managed_service": "Managed service",
}
PRICING_MODELS = {
    "free": "Free",
    "byol": "Bring your own license",
    "hourly": "Hourly",
    "hourly_trial": "Hourly, free trial",
    "hourly_annual": "Hourly or annual",
    "hourly_trial_annual": "Hourly or annual, free trial",
    "hourly_monthly": "Hourly plus monthly fee",
    "monthly": "Monthly",
    "usage": "Pay as you go",
    "contract": "Contract",
    "tiered": "Tiered usage",
    "ml": "Machine learning, per hour",
    "none": "Not priced",
}
CATEGORY_WORDS = {"ml": "ML", "ai": "AI", "saas": "SaaS", "devops": "DevOps", "iot": "IoT"}
HOURS_A_YEAR = Decimal(8760)
ML_USES = {
    "training": "Training",
    "realtime_inference": "Real-time inference",
    "batch_inference": "Batch inference",
}


def kind_label(kind: str | None) -> str:
    return KINDS.get(kind or "", (kind or "").replace("_", " ").capitalize())


def pricing_label(family: str | None) -> str:
    return PRICING_MODELS.get(family or "", (family or "").replace("_", " ").capitalize())


def category_label(category: str | None) -> str:
    words = (category or "").replace("_", " ").replace("-", " ").split()
    return " ".join(CATEGORY_WORDS.get(w.lower(), w.capitalize() if i == 0 else w) for i, w in enumerate(words))


def months_label(months: str | int) -> str:
    n = int(months)
    if n % 12 == 0:
        years = n // 12
        return "1 year" if years == 1 else f"{years} years"
    return "1 month" if n == 1 else f"{n} months"


@dataclass
class InstanceRow:
    instance_type: str
    hourly: str | None = None
    annual: str | None = None
    annual_saving: str | None = None
    ml: dict[str, str] = field(default_factory=dict)


@dataclass
class Pricing:
    """What the product page shows about prices."""

    options: list[tuple[str, str]] = field(default_factory=list)  # (heading, plain-words explanation)
    instances: list[InstanceRow] = field(default_factory=list)
    ml_uses: list[str] = field(default_factory=list)
    monthly: str | None = None
    usage: list[dict[str, str]] = field(default_factory=list)
    contract_durations: list[str] = field(default_factory=list)
    contract: list[dict[str, Any]] = field(default_factory=list)
    tiered: list[dict[str, Any]] = field(default_factory=list)
    tiered_period: str = "hour"
    side_by_side: list[dict[str, str | None]] = field(default_factory=list)
    headline: str = ""


def _saving(hourly: str | None, annual: str | None) -> str | None:
    if hourly is None or annual is None:
        return None
    full_year = Decimal(str(hourly)) * HOURS_A_YEAR
    if full_year <= 0:
        return None
    saved = (full_year - Decimal(str(annual))) / full_year * 100
    return f"{saved:.0f}%" if saved >= 1 else None


def explain(pricing: dict[str, Any] | None, infrastructure: list[dict[str, str]], kind: str) -> Pricing:
    doc = pricing or {}
    out = Pricing()
    hourly: dict[str, str] = doc.get("hourly") or {}
    annual: dict[str, str] = doc.get("annual") or {}
    ml: dict[str, dict[str, str]] = doc.get("ml") or {}
    trial = doc.get("free_trial_days")
    runs_on_instances = kind in ("ami", "container", "ml_algorithm", "ml_model")

    if doc.get("free"):
        out.options.append(("Free", "There is no charge for the software itself."))
        out.headline = "Free"
    if doc.get("byol"):
        out.options.append(
            (
                "Bring your own license",
                "If you already hold a license from the seller, use it here: the marketplace charges nothing "
                "for the software.",
            )
        )
        out.headline = out.headline or "Bring your own license"
    if trial:
        words = f"Try it free for {trial} days."
        if hourly:
            words += (
                " During the trial one running instance is free (the one with the highest hourly price); any"
                " other instance running at the same time is charged by the hour. When the trial ends, hourly"
                " charges begin unless you cancel."
            )
        if runs_on_instances:
            words += " Infrastructure charges still apply during the trial."
        out.options.append((f"{trial}-day free trial", words))
    if hourly:
        out.options.append(
            (
                "Pay by the hour",
                "You are charged for each hour each instance runs, at the price of its instance type. Stop the "
                "instance and the charges stop.",
            )
        )
    if annual:
        out.options.append(
            (
                "Annual subscription",
                "Pay for 12 months up front and one instance of that type runs without hourly charges for the "
                "year. Instances beyond the ones you bought are charged by the hour. The full year is invoiced "
                "when you buy.",
            )
        )
    if doc.get("monthly") is not None:
        out.monthly = money(doc["monthly"])
        out.options.append(
            (
                "Monthly fee",
                f"A flat {out.monthly} each month, billed at the end of the month while you are subscribed.",
            )
        )
        out.headline = out.headline or f"{out.monthly} per month"
    usage = doc.get("usage")
    if usage:
        out.usage = [
            {
                "name": d.get("name", ""),
                "description": d.get("description") or d.get("name", ""),
                "unit": d.get("unit") or "",
                "rate": money(d.get("rate", "0")),
            }
            for d in usage.get("dimensions") or []
        ]
        out.options.append(
            (
                "Pay as you go",
                "No upfront cost: the software reports what you use, and you pay for it at the end of each month"
                " at the rates below.",
            )
        )
    contract = doc.get("contract")
    if contract:
        durations = sorted({int(m) for d in contract.get("dimensions") or [] for m in (d.get("prices") or {})})
        out.contract_durations = [months_label(m) for m in durations]
        out.contract = [
            {
                "description": d.get("description") or d.get("name", ""),
                "prices": [
                    money(d["prices"][str(m)]) if str(m) in (d.get("prices") or {}) else None for m in durations
                ],
            }
            for d in contract.get("dimensions") or []
        ]
        lengths = ", ".join(out.contract_durations)
        out.options.append(
            (
                "Contract",
                f"Choose how many units you need and for how long ({lengths}). The whole contract is invoiced"
                " when you buy it, and you are entitled to those quantities until it ends.",
            )
        )
    tiered = doc.get("tiered")
    if tiered:
        out.tiered_period = tiered.get("period") or "hour"
        for item in tiered.get("items") or []:
            rows = []
            floor = 0
            for tier in item.get("tiers") or []:
                upto = tier.get("up_to")
                label = f"Above {floor:,}" if upto is None else f"{floor + 1:,} to {int(upto):,}"
                rows.append({"range": label, "price": money(tier.get("price", "0"))})
                floor = int(upto) if upto is not None else floor
            out.tiered.append({"name": item.get("name", ""), "tiers": rows})
        out.options.append(
            (
                "Tiered usage",
                f"The price of each unit falls as your use grows within each {out.tiered_period}: the units in a"
                " tier are charged at that tier's price.",
            )
        )
    if ml:
        out.ml_uses = [use for use in ML_USES if use in ml]
        out.options.append(
            (
                "Per hour of machine learning",
                "Training and inference are charged per instance per hour, at the price of the instance type.",
            )
        )
    types = sorted(set(hourly) | set(annual) | {t for prices in ml.values() for t in (prices or {})})
    for instance_type in types:
        row = InstanceRow(
            instance_type,
            hourly=money(hourly[instance_type]) if instance_type in hourly else None,
            annual=money(annual[instance_type]) if instance_type in annual else None,
            annual_saving=_saving(hourly.get(instance_type), annual.get(instance_type)),
            ml={use: money(ml[use][instance_type]) for use in out.ml_uses if instance_type in (ml[use] or {})},
        )
        out.instances.append(row)
    software_hourly = {
        t: hourly.get(t) or next((ml[u][t] for u in out.ml_uses if t in (ml[u] or {})), None) for t in types
    }
    for estimate in infrastructure:
        software = software_hourly.get(estimate["instance_type"])
        out.side_by_side.append(
            {
                "instance_type": estimate["instance_type"],
                "region": estimate["region"],
                "software": money(software) if software is not None else None,
                "infrastructure": money(estimate["hourly_estimate"]),
            }
        )
    if not out.headline:
        cheapest = min((Decimal(str(v)) for v in hourly.values()), default=None)
        if cheapest is not None:
            out.headline = f"From {money(cheapest)} per hour"
        elif usage:
            out.headline = "Pay as you go"
        elif contract:
            out.headline = "Contract pricing"
        elif tiered:
            out.headline = "Tiered usage pricing"
        elif ml:
            out.headline = "Per hour of use"
    if trial:
        out.headline = f"{trial}-day free trial · " + out.headline if out.headline else f"{trial}-day free trial"
    return out
