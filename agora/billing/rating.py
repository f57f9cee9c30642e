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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from agora.money import round_cents
from agora.pricing.changes import price_change_applies_from
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


class Usage(NamedTuple):
    """Usage of one subscription: a stored record (`hour` is its period start, UTC), or records summed
    at a coarser grain (`grain`) whose starts run from `hour` to `last` and which number `records`. With
    `tier`, the close has already graduated a tiered item (`summed_tiers`): `quantity` is the units in
    tier number `tier` over the month's `records` tier periods."""

    hour: datetime
    dimension: str
    quantity: int
    resource: str = ""
    last: datetime | None = None
    records: int = 1
    tier: int | None = None


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


def period_of(instant: datetime) -> str:
    return f"{instant:%Y-%m}"


def next_period(period: str) -> str:
    return period_of(month_bounds(period)[1])


def rate(subscription: Subscription, usage: Iterable[Usage], period: str) -> list[Line]:
    """The monthly invoice lines of one subscription for `period` (YYYY-MM), in a stable order."""
    start, end = month_bounds(period)
    records = [u for u in usage if start <= u.hour < end]
    lines = _charges(subscription, records, fee=_monthly(subscription, start, end))
    return [line for line in lines if line.quantity or line.amount]


def _charges(subscription: Subscription, records: Iterable[Usage], fee: Sequence[Line] = ()) -> list[Line]:
    """The lines of `records`, in their stable order: instance-hours, the `fee`, ML, usage, tiers."""
    hourly, ml, metered = _split(records)
    lines = _hourly(subscription, hourly) + list(fee) + _ml(subscription, ml)
    return lines + _usage(subscription, metered) + _tiered(subscription, metered)


def _split(records: Iterable[Usage]) -> tuple[list[Usage], list[Usage], list[Usage]]:
    """Instance-hours, ML seconds, and the dimensions sellers and platform items meter."""
    hourly: list[Usage] = []
    ml: list[Usage] = []
    metered: list[Usage] = []
    for record in records:
        kind = record.dimension.partition(":")[0]
        (hourly if kind == "hourly" else ml if kind in PLATFORM_CHARGES else metered).append(record)
    return hourly, ml, metered


def rate_late(subscription: Subscription, usage: Iterable[Usage], period: str) -> list[Line]:
    """Lines for usage of earlier months that was stored after its month had closed, billed with `period`
    (BIL-03). Each record is rated at the prices of its own hour; there is no fee in them."""
    by_month: dict[str, list[Usage]] = defaultdict(list)
    for record in usage:
        by_month[period_of(record.hour)].append(record)
    lines = []
    for own, records in sorted(by_month.items()):
        note = f"; usage of {own} stored after {own} had closed, billed in {period} [BIL-03]"
        lines += [replace(line, explain=line.explain + note) for line in _charges(subscription, records)]
    return [line for line in lines if line.quantity or line.amount]


Grain = Literal["hour", "day", "month"]


def grain(subscription: Subscription, period: str) -> Grain:
    """The coarsest grain at which a month's usage of `subscription` can be summed before rating without
    changing a cent: `hour` when coverage is decided hour by hour (a trial, its RFD-02 week, annual
    purchases), when its price changes inside the month, or for hourly tiers; `day` for daily tiers;
    else `month` (instance-hours are then still kept per instance, for the explanation)."""
    start, end = month_bounds(period)
    if _decided_hourly(subscription, start, end):
        return "hour"
    tiered = subscription.pricing_at(max(start, subscription.started_at)).get("tiered")
    if tiered:
        return "hour" if tiered["period"] == "hour" else "day"
    return "month"


def _decided_hourly(subscription: Subscription, start: datetime, end: datetime) -> bool:
    """Whether anything in [start, end) is decided hour by hour: a trial or its RFD-02 week, an annual
    purchase, or a change of price version."""
    if subscription.trial_ends_at is not None and subscription.trial_ends_at + REFUND_AFTER_TRIAL > start:
        return True
    if any(a.starts_at < end and start < a.ends_at for a in subscription.annual):
        return True
    for version in sorted(subscription.versions, key=lambda v: v.number)[1:]:
        switch = max(version.noticed_at, price_change_applies_from(subscription.started_at, version.noticed_at))
        if start < switch < end:
            return True
    return False


TierBounds = list[tuple[int, int | None]]  # each tier's (lower, upper] bound on a period's usage, in order


def summed_tiers(subscription: Subscription, period: str) -> dict[str, TierBounds]:
    """The tiered items whose units the close may graduate per tier period and sum over the month
    (`Usage.tier`): those of a subscription with one price all month and nothing else decided hour by
    hour, with ascending bounds. Rating those sums gives exactly the lines the periods themselves give."""
    start, end = month_bounds(period)
    pricing = subscription.pricing_at(max(start, subscription.started_at))
    tiered = pricing.get("tiered") if _paid(pricing) else None
    if not tiered or _decided_hourly(subscription, start, end):
        return {}
    summed = {}
    for item in tiered["items"]:
        bounds: TierBounds = []
        lower = 0
        for up_to, _ in _bounds(item["tiers"]):
            if up_to is not None and up_to <= lower:
                break  # not ascending: leave this item's periods to the rating core
            bounds.append((lower, up_to))
            if up_to is None:
                summed[item["name"]] = bounds
                break
            lower = up_to
    return summed


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
    # (first hour, last hour, instance-hours, resource) billed per instance type and price
    billed: dict[tuple[str, Decimal], list[tuple[datetime, datetime, int, str]]] = defaultdict(list)
    for record in records:
        instance_type = record.dimension.partition(":")[2]
        if record.last is None or record.last == record.hour:
            for _ in range(record.quantity):
                by_hour[record.hour].append((instance_type, record.resource))
            continue
        # Hours summed by the close: only done where nothing is decided hour by hour (`grain`).
        if _coverage_between(subscription, record.hour, record.last):
            raise ValueError(f"usage of subscription {subscription.id} summed across hours that need coverage")
        pricing = subscription.pricing_at(record.hour)
        if _paid(pricing):
            price = Decimal((pricing.get("hourly") or {}).get(instance_type, 0))
            billed[(instance_type, price)].append((record.hour, record.last, record.quantity, record.resource))
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
            billed[(instance_type, prices.get(instance_type, Decimal(0)))].append((hour, hour, 1, resource))
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
                Decimal(sum(count for _, _, count, _ in hours)),
                price,
                _hourly_explain(instance_type, hours, trial_free[instance_type], annual_free[instance_type]),
                instance_type=instance_type,
            )
        )
    return lines


def _coverage_between(subscription: Subscription, first: datetime, last: datetime) -> bool:
    """Whether a trial, its RFD-02 week or an annual purchase touches any clock hour from `first` to `last`."""
    ends = subscription.trial_ends_at
    if ends is not None and subscription.started_at <= last + HOUR and first < ends + REFUND_AFTER_TRIAL:
        return True
    return any(a.starts_at <= last and first < a.ends_at for a in subscription.annual)


def _hourly_explain(
    instance_type: str, hours: list[tuple[datetime, datetime, int, str]], trial: int, annual: int
) -> str:
    runs: dict[str, tuple[datetime, datetime, int]] = {}
    for first, last, count, resource in hours:
        instance = resource.partition("#")[0] or "instance"
        seen = runs.get(instance)
        runs[instance] = (
            (first, last, count) if seen is None else (min(seen[0], first), max(seen[1], last), seen[2] + count)
        )
    parts = []
    for instance, (first, last, count) in sorted(runs.items()):
        parts.append(f"{instance} {_hour_label(first)}–{(last + HOUR):%H:00}, {count} h")
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
    if not _ever_priced(subscription, "usage"):
        return []
    totals: dict[tuple[str, Decimal], int] = defaultdict(int)
    hours: dict[tuple[str, Decimal], int] = defaultdict(int)
    rates_of: dict[int, dict[str, Decimal]] = {}  # per pricing document
    for record in records:
        pricing = subscription.pricing_at(record.hour)
        rates = rates_of.get(id(pricing))
        if rates is None:
            usage = pricing.get("usage") if _paid(pricing) else None
            rates = rates_of[id(pricing)] = {d["name"]: Decimal(d["rate"]) for d in (usage or {}).get("dimensions", [])}
        rate = rates.get(record.dimension)
        if rate is not None:
            totals[(record.dimension, rate)] += record.quantity
            hours[(record.dimension, rate)] += record.records
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
    return _graduated(quantity, tuple(_bounds(tiers)))


def _bounds(tiers: Sequence[dict[str, Any]]) -> list[tuple[int | None, Decimal]]:
    return [(None if t.get("up_to") is None else int(t["up_to"]), Decimal(t["price"])) for t in tiers]


def _graduated(quantity: int, tiers: Sequence[tuple[int | None, Decimal]]) -> list[tuple[int, Decimal]]:
    parts = []
    below = 0
    for up_to, price in tiers:
        top = quantity if up_to is None else min(quantity, up_to)
        if top > below:
            parts.append((top - below, price))
            below = top
        if up_to is None or quantity <= up_to:
            break
    return parts


def _ever_priced(subscription: Subscription, component: str) -> bool:
    """Whether any price version of the subscription charges for `component` (so its records need a look)."""
    return any(_paid(v.pricing) and v.pricing.get(component) for v in subscription.versions)


PASSED_THROUGH = "; an infrastructure charge passed through from the bill, not a software charge [PRC-14, LST-10]"


def _tiered(subscription: Subscription, records: Sequence[Usage]) -> list[Line]:
    if not _ever_priced(subscription, "tiered"):
        return []
    per_period: dict[tuple[str, datetime], int] = defaultdict(int)
    tiers_of: dict[tuple[str, datetime], tuple[tuple[int | None, Decimal], ...]] = {}
    # per pricing document: its tiered items' bounds, and whether tiers run per day (else per hour)
    terms: dict[int, tuple[dict[str, tuple[tuple[int | None, Decimal], ...]], bool]] = {}
    passed_through: set[str] = set()  # items reported from an infrastructure bill (PRC-14 `bill`)
    totals: dict[tuple[str, Decimal], int] = defaultdict(int)
    periods: dict[str, int] = defaultdict(int)
    for record in records:
        pricing = subscription.pricing_at(record.hour)
        known = terms.get(id(pricing))
        if known is None:
            tiered = (pricing.get("tiered") if _paid(pricing) else None) or {}
            items = {item["name"]: tuple(_bounds(item["tiers"])) for item in tiered.get("items", [])}
            known = terms[id(pricing)] = (items, tiered.get("period") == "day")
            passed_through.update(i["name"] for i in tiered.get("items", []) if i.get("reporting") == "bill")
        items, daily = known
        bounds = items.get(record.dimension)
        if bounds is None:
            continue
        if record.tier is not None:  # graduated by the close (`summed_tiers`)
            totals[(record.dimension, bounds[record.tier][1])] += record.quantity
            if record.tier == 0:
                periods[record.dimension] += record.records
            continue
        key = (record.dimension, _period_start(record.hour, daily))
        per_period[key] += record.quantity
        if key not in tiers_of:  # the first record's tiers govern its period
            tiers_of[key] = bounds
    for key, quantity in per_period.items():
        periods[key[0]] += 1
        for units, price in _graduated(quantity, tiers_of[key]):
            totals[(key[0], price)] += units
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
        if units
    ]


@lru_cache(maxsize=65536)
def _period_start(hour: datetime, daily: bool) -> datetime:
    """The tier period an instant falls in: its clock hour, or its UTC day."""
    return hour.replace(hour=0 if daily else hour.hour, minute=0, second=0, microsecond=0)


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
