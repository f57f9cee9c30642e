"""The rating core: one subscription's terms and usage for one calendar month → invoice lines.

Pure: plain data in, lines out; no database, no clock. Every amount is exact until it is rounded once,
half-up to the cent, per line (BIL-04), and every line carries an `explain` naming the usage and the rules
behind it (BIL-01). What it rates:

- hourly instance-hours (MTR-06: each run rounded up to whole hours, each billable hour attributed to the
  clock hour it begins in), less the free trial's one most expensive instance-hour per clock hour (SUB-01)
  and X instance-hours of a type per clock hour for X active annual subscriptions (SUB-03);
- the monthly fee, pro-rated 1/30 per active day unless active the whole month, capped at the fee
  (SUB-04), independently of hourly charges (SUB-05);
- usage dimensions at their rate; graduated tiers per hour or day on that period's cumulative usage
  (PRC-13); ML training, batch and real-time inference per second at hourly prices (PRC-12);
- the price version that applies at each hour (CHG-01/02, `pricing.versions.applicable`), or a private
  offer's prices (OFR-01).
Free and BYOL subscriptions make no charges. Lines of billable items reported from an infrastructure bill
(PRC-14 `bill`) are infrastructure charges; every other line is a software charge (LST-10).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agora.money import round_cents
from agora.pricing.versions import Version, applicable

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = Decimal(3600)
REFUND_AFTER_TRIAL = timedelta(days=7)
PLATFORM_CHARGES = ("hourly", "training", "batch_inference", "realtime_inference")
SOFTWARE, INFRASTRUCTURE = "software", "infrastructure"


@dataclass(frozen=True)
class Line:
    product: str
    charge: str  # hourly monthly annual usage contract training realtime_inference batch_inference tiered refund
    instance_type: str | None
    dimension: str | None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    explain: str
    subscription_id: int | None = None
    category: str = SOFTWARE  # software | infrastructure: kept apart on invoices and payouts (LST-10)


@dataclass(frozen=True)
class Usage:
    """Usage of one subscription, as stored: `hour` is the record's period start (UTC)."""

    hour: datetime
    dimension: str
    quantity: int
    resource: str = ""


@dataclass(frozen=True)
class Annual:
    instance_type: str
    quantity: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Subscription:
    id: int
    product: str
    started_at: datetime
    ended_at: datetime | None
    versions: Sequence[Version]  # the product's price versions, or one version holding an offer's prices
    trial_ends_at: datetime | None = None
    annual: Sequence[Annual] = field(default_factory=tuple)

    def pricing_at(self, at: datetime) -> dict[str, Any]:
        if len(self.versions) == 1:  # the common case: one price all along
            return self.versions[0].pricing
        return applicable(self.versions, self.started_at, at).pricing


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """'2026-03' → [2026-03-01T00:00Z, 2026-04-01T00:00Z)."""
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def rate(subscription: Subscription, usage: Iterable[Usage], period: str) -> list[Line]:
    """The monthly invoice lines of one subscription for `period` (YYYY-MM), in a stable order."""
    start, end = month_bounds(period)
    records = [u for u in usage if start <= u.hour < end]
    lines: list[Line] = []
    lines += _hourly(subscription, [u for u in records if u.dimension.startswith("hourly:")])
    lines += _monthly(subscription, start, end)
    lines += _ml(subscription, [u for u in records if u.dimension.partition(":")[0] in PLATFORM_CHARGES[1:]])
    metered = [u for u in records if u.dimension.partition(":")[0] not in PLATFORM_CHARGES]
    lines += _usage(subscription, metered)
    lines += _tiered(subscription, metered)
    return [line for line in lines if line.quantity or line.amount]


def decimal_text(value: Decimal) -> str:
    """An exact decimal as invoices show it: whole numbers without a fraction ("4"), others as they are."""
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")


def _paid(pricing: dict[str, Any]) -> bool:
    return not pricing.get("free") and not (pricing.get("byol") and len(pricing) == 1)


def _line(
    subscription: Subscription,
    charge: str,
    quantity: Decimal,
    unit_price: Decimal,
    explain: str,
    *,
    instance_type: str | None = None,
    dimension: str | None = None,
    exact: Decimal | None = None,
    category: str = SOFTWARE,
) -> Line:
    amount = round_cents(quantity * unit_price if exact is None else exact)
    return Line(
        subscription.product,
        charge,
        instance_type,
        dimension,
        quantity,
        unit_price,
        amount,
        explain,
        subscription.id,
        category,
    )


def _hour_label(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d %H:00")


# --- hourly, trial, annual (MTR-06, SUB-01, SUB-03) ---------------------------------------------------------


def _in_trial(subscription: Subscription, hour: datetime) -> bool:
    """A clock hour is inside the trial window when it overlaps it."""
    ends = subscription.trial_ends_at
    return ends is not None and subscription.started_at < hour + HOUR and hour < ends


def _refunded_after_trial(subscription: Subscription, hour: datetime) -> bool:
    """RFD-02: a subscription cancelled within 7 days after its trial converted pays nothing for that time."""
    converted, ended = subscription.trial_ends_at, subscription.ended_at
    return (
        converted is not None
        and ended is not None
        and converted <= ended <= converted + REFUND_AFTER_TRIAL
        and converted <= hour + HOUR
        and hour < ended
    )


def _hourly(subscription: Subscription, records: Sequence[Usage]) -> list[Line]:
    by_hour: dict[datetime, list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        for _ in range(record.quantity):
            by_hour[record.hour].append((record.dimension.partition(":")[2], record.resource))
    billed: dict[tuple[str, Decimal], list[tuple[datetime, str]]] = defaultdict(list)
    trial_free: dict[str, int] = defaultdict(int)
    annual_free: dict[str, int] = defaultdict(int)
    trial_refund: dict[str, int] = defaultdict(int)
    for hour in sorted(by_hour):
        pricing = subscription.pricing_at(hour)
        if not _paid(pricing):
            continue
        prices = {k: Decimal(v) for k, v in (pricing.get("hourly") or {}).items()}
        # Most expensive first; ties by type and instance so the outcome never depends on input order.
        instances = sorted(by_hour[hour], key=lambda item: (-prices.get(item[0], Decimal(0)), item))
        capacity: dict[str, int] = defaultdict(int)  # annual instance-hours of each type left this hour
        for purchase in subscription.annual:
            if purchase.starts_at <= hour < purchase.ends_at:
                capacity[purchase.instance_type] += purchase.quantity
        remaining = []
        for instance_type, resource in instances:
            if capacity[instance_type] > 0:
                capacity[instance_type] -= 1
                annual_free[instance_type] += 1
            else:
                remaining.append((instance_type, resource))
        if remaining and _in_trial(subscription, hour):
            instance_type, _ = remaining.pop(0)  # the trial frees the most expensive (SUB-01)
            trial_free[instance_type] += 1
        if remaining and _refunded_after_trial(subscription, hour):
            for instance_type, _ in remaining:
                trial_refund[instance_type] += 1
            remaining = []
        for instance_type, resource in remaining:
            billed[(instance_type, prices.get(instance_type, Decimal(0)))].append((hour, resource))
    lines = []
    for instance_type, count in sorted(trial_refund.items()):
        lines.append(
            _line(
                subscription,
                "refund",
                Decimal(count),
                Decimal(0),
                f"{count} {instance_type} h after the free trial converted, refunded automatically: cancelled "
                f"within 7 days of the conversion [RFD-02]",
                instance_type=instance_type,
            )
        )
    for (instance_type, price), hours in sorted(billed.items()):
        lines.append(
            _line(
                subscription,
                "hourly",
                Decimal(len(hours)),
                price,
                _hourly_explain(instance_type, hours, trial_free[instance_type], annual_free[instance_type]),
                instance_type=instance_type,
            )
        )
    return lines


def _hourly_explain(instance_type: str, hours: list[tuple[datetime, str]], trial: int, annual: int) -> str:
    runs: dict[str, list[datetime]] = defaultdict(list)
    for hour, resource in hours:
        runs[resource.partition("#")[0] or "instance"].append(hour)
    parts = []
    for instance, started in sorted(runs.items()):
        first, last = min(started), max(started)
        parts.append(f"{instance} {_hour_label(first)}–{(last + HOUR):%H:00}, {len(started)} h")
    covered = []
    if trial:
        covered.append(f"this month the free trial covered {trial} other {instance_type} h [SUB-01]")
    if annual:
        covered.append(f"annual subscriptions covered {annual} other {instance_type} h [SUB-03]")
    tail = "; ".join(covered) if covered else "not covered by trial or annual"
    return f"{'; '.join(parts)}, {tail} (each run rounded up to whole hours [MTR-06])"


# --- monthly fee (SUB-04/05) ---------------------------------------------------------------------------------


def _monthly(subscription: Subscription, start: datetime, end: datetime) -> list[Line]:
    active_from = max(start, subscription.started_at)
    active_to = min(end, subscription.ended_at) if subscription.ended_at else end
    if active_from >= active_to:
        return []
    pricing = subscription.pricing_at(active_from)
    if not _paid(pricing) or pricing.get("monthly") is None:
        return []
    fee = Decimal(pricing["monthly"])
    if active_from == start and active_to == end:
        return [_line(subscription, "monthly", Decimal(1), fee, f"monthly fee for {start:%Y-%m}, active all month")]
    # Each active day costs 1/30, the sign-up and the cancellation day included, capped at the fee (SUB-04).
    last_day = (active_to - timedelta(microseconds=1)).date()
    days = (last_day - active_from.date()).days + 1
    exact = min(fee, fee * days / 30)
    explain = (
        f"monthly fee pro-rated: {days} active day{'s' * (days != 1)} "
        f"{active_from:%Y-%m-%d}–{last_day:%Y-%m-%d} × 1/30 of {fee}, capped at the fee [SUB-04]"
    )
    return [_line(subscription, "monthly", Decimal(days), fee / 30, explain, exact=exact)]


# --- usage, tiers, ML (PRC-12/13) ----------------------------------------------------------------------------


def _usage(subscription: Subscription, records: Sequence[Usage]) -> list[Line]:
    totals: dict[tuple[str, Decimal], int] = defaultdict(int)
    hours: dict[tuple[str, Decimal], int] = defaultdict(int)
    for record in records:
        pricing = subscription.pricing_at(record.hour)
        if not _paid(pricing) or not pricing.get("usage"):
            continue
        rates = {d["name"]: Decimal(d["rate"]) for d in pricing["usage"]["dimensions"]}
        if record.dimension in rates:
            totals[(record.dimension, rates[record.dimension])] += record.quantity
            hours[(record.dimension, rates[record.dimension])] += 1
    return [
        _line(
            subscription,
            "usage",
            Decimal(quantity),
            price,
            f"{quantity} {dimension} from {hours[(dimension, price)]} hourly record(s) received [MTR-02]",
            dimension=dimension,
        )
        for (dimension, price), quantity in sorted(totals.items())
    ]


def graduated(quantity: int, tiers: Sequence[dict[str, Any]]) -> list[tuple[int, Decimal]]:
    """PRC-13: units per tier; each tier's bound is an inclusive upper bound on the cumulative usage."""
    parts = []
    below = 0
    for tier in tiers:
        up_to = tier.get("up_to")
        top = quantity if up_to is None else min(quantity, int(up_to))
        if top > below:
            parts.append((top - below, Decimal(tier["price"])))
            below = top
        if up_to is None or quantity <= int(up_to):
            break
    return parts


PASSED_THROUGH = "; an infrastructure charge passed through from the bill, not a software charge [PRC-14, LST-10]"


def _tiered(subscription: Subscription, records: Sequence[Usage]) -> list[Line]:
    per_period: dict[tuple[str, datetime], int] = defaultdict(int)
    tiers_of: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    passed_through: set[str] = set()  # items reported from an infrastructure bill (PRC-14 `bill`)
    for record in records:
        pricing = subscription.pricing_at(record.hour)
        tiered = pricing.get("tiered")
        if not _paid(pricing) or not tiered:
            continue
        items = {item["name"]: item for item in tiered["items"]}
        if record.dimension not in items:
            continue
        period_start = record.hour.replace(minute=0, second=0, microsecond=0)
        if tiered["period"] == "day":
            period_start = period_start.replace(hour=0)
        key = (record.dimension, period_start)
        per_period[key] += record.quantity
        tiers_of.setdefault(key, items[record.dimension]["tiers"])
        if items[record.dimension].get("reporting") == "bill":
            passed_through.add(record.dimension)
    totals: dict[tuple[str, Decimal], int] = defaultdict(int)
    periods: dict[str, int] = defaultdict(int)
    for (item, _), quantity in per_period.items():
        periods[item] += 1
        for units, price in graduated(quantity, tiers_of[(item, _)]):
            totals[(item, price)] += units
    return [
        _line(
            subscription,
            "tiered",
            Decimal(units),
            price,
            f"{units} {item} in the tier priced {price}, graduated per billing period over {periods[item]} "
            f"period(s) of cumulative usage [PRC-13]{PASSED_THROUGH if item in passed_through else ''}",
            dimension=item,
            category=INFRASTRUCTURE if item in passed_through else SOFTWARE,
        )
        for (item, price), units in sorted(totals.items(), key=lambda kv: (kv[0][0], -kv[0][1]))
    ]


def _ml(subscription: Subscription, records: Sequence[Usage]) -> list[Line]:
    seconds: dict[tuple[str, str, Decimal], int] = defaultdict(int)
    for record in records:
        pricing = subscription.pricing_at(record.hour)
        use, _, instance_type = record.dimension.partition(":")
        prices = (pricing.get("ml") or {}).get(use) or {}
        if not _paid(pricing) or instance_type not in prices:
            continue
        seconds[(use, instance_type, Decimal(prices[instance_type]))] += record.quantity
    return [
        _line(
            subscription,
            use,
            Decimal(total),
            price,
            f"{total} instance-seconds of {use.replace('_', ' ')} on {instance_type} at {price}/h, metered per second "
            f"[PRC-12, MTR-06]",
            instance_type=instance_type,
            exact=Decimal(total) * price / SECONDS_PER_HOUR,
        )
        for (use, instance_type, price), total in sorted(seconds.items())
    ]
