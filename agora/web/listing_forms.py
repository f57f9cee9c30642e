"""The listing wizard's forms: what each step's form shows (from the listing as saved, or as the seller typed
it) and the listing fields it sends to the catalog service, by their API names. No rule lives here: the
fields go through `ListingFields` (and its `PricingDocument`) exactly as the API's bodies do, and the
service decides; a form only turns text boxes and rows into the API's shapes and back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from agora.pricing.rules import components_of

MAX_TEXT = 20_000  # a long description is long; nothing a seller types is longer
MAX_ROWS = 50
DURATIONS = ("1", "12", "24", "36")
ML_PRICES = (("training", "Training"), ("realtime_inference", "Real-time inference"), ("batch_inference", "Batch"))
USAGE_CATEGORIES = ("users", "hosts", "bandwidth", "data", "requests", "tiers", "units")
REPORTING = (
    ("seller", "Reported by the seller"),
    ("time", "Time-based"),
    ("bill", "From the bill"),
    ("prometheus", "Prometheus metric"),
)
TIERS_PER_ITEM = 3

# The label each field carries on the form: error messages name fields by them.
LABELS = {
    "code": "Product code",
    "kind": "Kind",
    "title": "Title",
    "fulfillment_url": "Fulfillment URL",
    "webhook_url": "Webhook URL",
    "managed_service": "Managed service",
    "short_description": "Short description",
    "long_description": "Long description",
    "highlights": "Highlights",
    "support": "Support",
    "regions": "Regions",
    "category": "Category",
    "tags": "Tags",
    "seo_keywords": "Search keywords",
    "seo_description": "Search description",
    "region_selection": "Buyers choose a region",
    "pricing": "Pricing",
    "enterprise_only": "Enterprise buyers only",
    "tax_code": "Tax code",
    "metering_failure_mode": "When metering fails",
    "eula": "License agreement",
    "refund_policy": "Refund policy",
    "icp_filing": "ICP filing number",
    "assets.logo": "Logo",
    "assets.user_guide": "User guide",
}
PRICING_LABELS = {
    "hourly": "Hourly prices",
    "annual": "Annual prices",
    "monthly": "Monthly fee",
    "free_trial_days": "Free trial days",
    "free": "Free",
    "byol": "Bring your own license",
    "usage": "Usage dimensions",
    "contract": "Contract dimensions",
    "ml": "ML prices",
    "tiered": "Tiered items",
    "currency": "Currency",
}


def text_of(form: FormData) -> dict[str, str]:
    """Every text field of a form as typed (files are not part of a step)."""
    return {k: v[:MAX_TEXT] for k, v in form.items() if isinstance(v, str)}


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[,\s]+", value) if w]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _or_none(value: str) -> str | None:
    value = value.strip()
    return value or None


def field_key(loc: str) -> str:
    """Where on the form a problem's location belongs: `pricing.hourly.m5.large` → `pricing.hourly`,
    `regions.0` → `regions`, `managed_service.deployment` → `managed_service`."""
    parts = [p for p in loc.split(".") if p]
    if not parts:
        return "form"
    if parts[0] in ("pricing", "assets") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def label_of(key: str) -> str:
    if key.startswith("pricing."):
        return PRICING_LABELS.get(key.split(".")[1], key)
    return LABELS.get(key, key.replace("_", " ").capitalize())


# --- the simple steps ------------------------------------------------------------------------------------------


def step_values(step: str, record: dict[str, Any]) -> dict[str, str]:
    """A step's text boxes filled from the saved listing (`product_out`)."""
    values: dict[str, str] = {}
    if step == "access":
        values["title"] = record.get("title") or ""
        values["fulfillment_url"] = record.get("fulfillment_url") or ""
        values["webhook_url"] = record.get("webhook_url") or ""
        managed = record.get("managed_service") or {}
        values["service_id"] = managed.get("service_id", "")
        values["deployment"] = managed.get("deployment", "")
    elif step == "general":
        for name in ("short_description", "long_description", "support"):
            values[name] = record.get(name) or ""
        values["highlights"] = "\n".join(record.get("highlights") or [])
        values["regions"] = ", ".join(record.get("regions") or [])
    elif step == "category":
        values["category"] = record.get("category") or ""
        values["tags"] = ", ".join(record.get("tags") or [])
        values["seo_keywords"] = ", ".join(record.get("seo_keywords") or [])
        values["seo_description"] = record.get("seo_description") or ""
        values["region_selection"] = "on" if record.get("region_selection") else ""
    elif step == "pricing":
        values["enterprise_only"] = "on" if record.get("enterprise_only") else ""
        values["tax_code"] = record.get("tax_code") or ""
        values["metering_failure_mode"] = record.get("metering_failure_mode") or ""
    elif step == "agreement":
        values["refund_policy"] = record.get("refund_policy") or ""
        values["icp_filing"] = record.get("icp_filing") or ""
        values["eula"] = record.get("eula") or ""
    return values


def step_fields(step: str, kind: str, typed: dict[str, str]) -> dict[str, Any]:
    """The listing fields (API names, JSON values) a step's form sends; an emptied box clears its field."""
    get = typed.get
    if step == "access":
        out: dict[str, Any] = {
            "title": get("title", "").strip() or None,
            "webhook_url": _or_none(get("webhook_url", "")),
        }
        if kind == "saas":
            out["fulfillment_url"] = _or_none(get("fulfillment_url", ""))
        if kind == "managed_service":
            service_id, deployment = get("service_id", "").strip(), get("deployment", "").strip()
            out["managed_service"] = (
                {"service_id": service_id, "deployment": deployment} if service_id or deployment else None
            )
        return out
    if step == "general":
        return {
            "short_description": _or_none(get("short_description", "")),
            "long_description": _or_none(get("long_description", "")),
            "support": _or_none(get("support", "")),
            "highlights": _lines(get("highlights", "")) or None,
            "regions": _words(get("regions", "")) or None,
        }
    if step == "category":
        return {
            "category": _or_none(get("category", "")),
            "tags": _words(get("tags", "").replace(";", ",")) or None,
            "seo_keywords": _words(get("seo_keywords", "")) or None,
            "seo_description": _or_none(get("seo_description", "")),
            "region_selection": bool(get("region_selection")) or None,
        }
    if step == "pricing":
        return {
            "enterprise_only": bool(get("enterprise_only")) or None,
            "tax_code": _or_none(get("tax_code", "")),
            "metering_failure_mode": _or_none(get("metering_failure_mode", "")),
        }
    if step == "agreement":
        return {
            "refund_policy": _or_none(get("refund_policy", "")),
            "icp_filing": _or_none(get("icp_filing", "")),
            "eula": "standard" if get("eula") == "standard" else None,
        }
    raise KeyError(step)


def _same(before: Any, after: Any) -> bool:
    """A box left as it was is no change: an unset field and an empty one are alike."""
    empty: tuple[Any, ...] = (None, "", [], {}, False)
    if before in empty and after in empty:
        return True
    return bool(before == after)


def changed(fields: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Only what the seller changed: a published listing's change request names exactly that."""
    return {name: value for name, value in fields.items() if not _same(record.get(name), value)}


# --- pricing ---------------------------------------------------------------------------------------------------


@dataclass
class PricingForm:
    """The pricing step as rows of text boxes; `extra` rows are the blank ones offered for a new entry."""

    sections: list[str]
    hourly: list[dict[str, str]] = field(default_factory=list)
    annual: list[dict[str, str]] = field(default_factory=list)
    monthly: str = ""
    free_trial_days: str = ""
    free: bool = False
    byol: bool = False
    usage_category: str = ""
    usage: list[dict[str, str]] = field(default_factory=list)
    contract: list[dict[str, Any]] = field(default_factory=list)
    ml: list[dict[str, str]] = field(default_factory=list)
    tiered_period: str = ""
    tiered: list[dict[str, Any]] = field(default_factory=list)
    currency: str = ""

    def pad(self, more: str | None = None) -> PricingForm:
        """One blank row at the end of every list (two where the seller asked for another)."""
        blank: dict[str, Any] = {
            "hourly": {"type": "", "price": ""},
            "annual": {"type": "", "price": ""},
            "usage": {"name": "", "description": "", "unit": "", "rate": ""},
            "contract": {"name": "", "description": "", "unit": "", "prices": dict.fromkeys(DURATIONS, "")},
            "ml": {"type": "", **{k: "" for k, _ in ML_PRICES}},
            "tiered": None,
        }
        for name, row in blank.items():
            rows: list[Any] = getattr(self, name)
            wanted = 2 if more == name else 1
            trailing = 0
            for existing in reversed(rows):
                if _blank(existing):
                    trailing += 1
                else:
                    break
            for _ in range(max(0, wanted - trailing)):
                if len(rows) >= MAX_ROWS:
                    break
                rows.append(_tier_item() if row is None else _copy(row))
        for item in self.tiered:
            tiers = item["tiers"]
            while len(tiers) < TIERS_PER_ITEM or not _blank(tiers[-1]):
                if len(tiers) >= MAX_ROWS:
                    break
                tiers.append({"up_to": "", "price": ""})
        return self


def _copy(row: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in row.items()}


def _tier_item() -> dict[str, Any]:
    return {"name": "", "description": "", "unit": "", "reporting": "", "metric": "", "tiers": []}


def _blank(row: dict[str, Any]) -> bool:
    return all(_blank(v) if isinstance(v, dict) else (not v) for k, v in row.items() if k != "tiers") and not any(
        not _blank(t) for t in row.get("tiers", [])
    )


def sections_for(kind: str, document: dict[str, Any] | None) -> list[str]:
    """The pricing sections the form shows: what the kind may use, and anything already in the document (so a
    component that does not belong can be seen and removed)."""
    present = {k for k, v in (document or {}).items() if v not in (None, False)}
    order = ("hourly", "annual", "monthly", "free_trial_days", "usage", "contract", "ml", "tiered", "free", "byol")
    wanted = components_of(kind) | present
    return [s for s in order if s in wanted]


def pricing_from_document(kind: str, document: dict[str, Any] | None) -> PricingForm:
    doc = document or {}
    form = PricingForm(sections=sections_for(kind, doc))
    form.hourly = [{"type": t, "price": p} for t, p in (doc.get("hourly") or {}).items()]
    form.annual = [{"type": t, "price": p} for t, p in (doc.get("annual") or {}).items()]
    form.monthly = str(doc.get("monthly") or "")
    form.free_trial_days = "" if doc.get("free_trial_days") is None else str(doc["free_trial_days"])
    form.free = bool(doc.get("free"))
    form.byol = bool(doc.get("byol"))
    form.currency = doc.get("currency") or ""
    usage = doc.get("usage") or {}
    form.usage_category = usage.get("category", "")
    form.usage = [
        {"name": d["name"], "description": d["description"], "unit": d.get("unit") or "", "rate": d["rate"]}
        for d in usage.get("dimensions") or []
    ]
    form.contract = [
        {
            "name": d["name"],
            "description": d["description"],
            "unit": d.get("unit") or "",
            "prices": {m: str(d["prices"].get(m, "")) for m in DURATIONS}
            | {m: str(p) for m, p in d["prices"].items() if m not in DURATIONS},
        }
        for d in (doc.get("contract") or {}).get("dimensions") or []
    ]
    ml = doc.get("ml") or {}
    types = sorted({t for prices in ml.values() for t in (prices or {})})
    form.ml = [{"type": t, **{k: str((ml.get(k) or {}).get(t, "")) for k, _ in ML_PRICES}} for t in types]
    tiered = doc.get("tiered") or {}
    form.tiered_period = tiered.get("period", "")
    form.tiered = [
        {
            "name": item["name"],
            "description": item.get("description") or "",
            "unit": item.get("unit") or "",
            "reporting": item.get("reporting", ""),
            "metric": item.get("metric") or "",
            "tiers": [
                {"up_to": "" if t.get("up_to") is None else str(t["up_to"]), "price": str(t["price"])}
                for t in item.get("tiers") or []
            ],
        }
        for item in tiered.get("items") or []
    ]
    return form


_ROW = re.compile(r"^(hourly|annual|usage|contract|ml|tier)-(\d{1,2})-([a-z_]+)(?:-(\d{1,2}))?$")


def pricing_from_form(kind: str, document: dict[str, Any] | None, typed: dict[str, str]) -> PricingForm:
    """The pricing form as the seller typed it (to save, or to show again with its errors)."""
    form = PricingForm(sections=sections_for(kind, document))
    form.monthly = typed.get("monthly", "").strip()
    form.free_trial_days = typed.get("free_trial_days", "").strip()
    form.free = bool(typed.get("free"))
    form.byol = bool(typed.get("byol"))
    form.currency = typed.get("currency", "").strip()
    form.usage_category = typed.get("usage_category", "").strip()
    form.tiered_period = typed.get("tiered_period", "").strip()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for name, value in typed.items():
        match = _ROW.match(name)
        if not match:
            continue
        group, index, part, sub = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        if index >= MAX_ROWS:
            continue
        row = rows.setdefault((group, index), {"tiers": {}} if group == "tier" else {})
        value = value.strip()
        if group == "contract" and part == "price" and sub is not None:
            row.setdefault("prices", {})[sub] = value
        elif group == "tier" and sub is not None and part in ("up_to", "price"):
            row["tiers"].setdefault(int(sub), {"up_to": "", "price": ""})[part] = value
        else:
            row[part] = value
    for (group, _), row in sorted(rows.items(), key=lambda item: (item[0][0], item[0][1])):
        if group == "hourly":
            form.hourly.append({"type": row.get("type", ""), "price": row.get("price", "")})
        elif group == "annual":
            form.annual.append({"type": row.get("type", ""), "price": row.get("price", "")})
        elif group == "usage":
            form.usage.append({k: row.get(k, "") for k in ("name", "description", "unit", "rate")})
        elif group == "contract":
            prices = row.get("prices", {})
            form.contract.append(
                {
                    **{k: row.get(k, "") for k in ("name", "description", "unit")},
                    "prices": {m: prices.get(m, "") for m in DURATIONS} | prices,
                }
            )
        elif group == "ml":
            form.ml.append({"type": row.get("type", ""), **{k: row.get(k, "") for k, _ in ML_PRICES}})
        elif group == "tier":
            tiers = [row["tiers"][i] for i in sorted(row["tiers"]) if i < MAX_ROWS]
            item = {k: row.get(k, "") for k in ("name", "description", "unit", "reporting", "metric")}
            form.tiered.append({**item, "tiers": tiers})
    return form


def _keyed(rows: list[dict[str, str]], value: str, section: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    prices: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for row in rows:
        if not row["type"] and not row[value]:
            continue
        if not row["type"]:
            problems.append((f"pricing.{section}", "give the instance type of every price"))
            continue
        prices[row["type"]] = row[value]
    return prices, problems


def document_of(form: PricingForm) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The pricing document the form describes (None when nothing is priced), and the rows that cannot be
    read as one (an instance price without its instance type). Values stay text: the schema parses them."""
    doc: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    if form.currency:
        doc["currency"] = form.currency
    for section in ("hourly", "annual"):
        prices, found = _keyed(getattr(form, section), "price", section)
        problems += found
        if prices:
            doc[section] = prices
    if form.monthly:
        doc["monthly"] = form.monthly
    if form.free_trial_days:
        days = form.free_trial_days
        doc["free_trial_days"] = int(days) if days.isdigit() and len(days) < 7 else days
    if form.free:
        doc["free"] = True
    if form.byol:
        doc["byol"] = True
    dimensions = [{k: v for k, v in row.items() if k != "unit" or v} for row in form.usage if any(row.values())]
    if dimensions or form.usage_category:
        doc["usage"] = {"category": form.usage_category, "dimensions": dimensions}
    contract = []
    for row in form.contract:
        prices = {m: p for m, p in row["prices"].items() if p}
        if not (row["name"] or row["description"] or row["unit"] or prices):
            continue
        entry: dict[str, Any] = {"name": row["name"], "description": row["description"], "prices": prices}
        if row["unit"]:
            entry["unit"] = row["unit"]
        contract.append(entry)
    if contract:
        doc["contract"] = {"dimensions": contract}
    ml: dict[str, dict[str, str]] = {}
    for row in form.ml:
        if not any(row.values()):
            continue
        if not row["type"]:
            problems.append(("pricing.ml", "give the instance type of every price"))
            continue
        for key, _ in ML_PRICES:
            if row[key]:
                ml.setdefault(key, {})[row["type"]] = row[key]
    if ml:
        doc["ml"] = ml
    items = []
    for item in form.tiered:
        tiers = [
            {
                "price": t["price"],
                **({"up_to": int(t["up_to"]) if t["up_to"].isdigit() else t["up_to"]} if t["up_to"] else {}),
            }
            for t in item["tiers"]
            if t["up_to"] or t["price"]
        ]
        head = {k: item[k] for k in ("name", "description", "unit", "reporting", "metric")}
        if not (any(head.values()) or tiers):
            continue
        entry = {"name": head["name"], "reporting": head["reporting"], "tiers": tiers}
        entry |= {k: head[k] for k in ("description", "unit", "metric") if head[k]}
        items.append(entry)
    if items or form.tiered_period:
        doc["tiered"] = {"period": form.tiered_period, "items": items}
    return (doc or None), problems


def _tier(row: dict[str, str]) -> dict[str, Any]:
    up_to = row["up_to"]
    if not up_to:
        return {"price": row["price"]}  # open-ended
    return {"price": row["price"], "up_to": int(up_to) if up_to.isdigit() and len(up_to) < 13 else up_to}
