"""The rating core on plain data: exact cents for every rule it implements, and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.billing.rating import Annual, Subscription, TierBounds, Usage, graduated, rate
from agora.pricing.versions import Version

T = datetime(2026, 3, 1, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def sub(pricing: dict[str, Any], **fields: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": 1,
        "product": "p",
        "started_at": T,
        "ended_at": None,
        "versions": [Version(1, T - timedelta(days=30), pricing)],
    }
    values.update(fields)
    return Subscription(**values)


def hours(instance: str, instance_type: str, start: datetime, count: int) -> list[Usage]:
    return [Usage(start + timedelta(hours=k), f"hourly:{instance_type}", 1, f"{instance}#1") for k in range(count)]


def total(lines: list[Any]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))


HOURLY = {"hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"}}


@pytest.mark.rule("MTR-06")
def test_hourly_instance_hours_are_billed_at_the_type_price_MTR_06() -> None:
    [line] = rate(sub(HOURLY), hours("i-1", "m5.large", at(1, 10), 4), "2026-03")
    assert (line.charge, line.instance_type, line.quantity, line.unit_price, line.amount) == (
        "hourly",
        "m5.large",
        Decimal(4),
        Decimal("0.10"),
        Decimal("0.40"),
    )
    assert line.explain.startswith("i-1 2026-03-01 10:00–14:00, 4 h, not covered by trial or annual")


@pytest.mark.rule("SUB-01")
def test_the_trial_frees_the_most_expensive_instance_hour_in_each_clock_hour_SUB_01() -> None:
    subscription = sub(HOURLY, trial_ends_at=T + timedelta(days=14))
    usage = hours("a", "m5.large", at(2), 3) + hours("b", "m5.xlarge", at(2), 3)
    lines = rate(subscription, usage, "2026-03")
    assert [(x.instance_type, x.quantity, x.amount) for x in lines] == [("m5.large", 3, Decimal("0.30"))]
    assert "not covered by trial or annual" in lines[0].explain


@pytest.mark.rule("SUB-01")
def test_after_the_trial_every_instance_hour_is_billed_SUB_01() -> None:
    subscription = sub(HOURLY, trial_ends_at=at(2))
    usage = hours("a", "m5.xlarge", at(1, 22), 4)  # 22:00, 23:00 in the trial; 00:00, 01:00 after
    [line] = rate(subscription, usage, "2026-03")
    assert (line.quantity, line.amount) == (2, Decimal("0.40"))


@pytest.mark.rule("SUB-03")
def test_x_annual_subscriptions_cover_x_of_y_concurrent_instances_SUB_03() -> None:
    annual = [Annual("m5.large", 2, T, T + timedelta(days=365))]
    subscription = sub(HOURLY, annual=annual)
    usage = hours("a", "m5.large", at(3), 5) + hours("b", "m5.large", at(3), 5) + hours("c", "m5.large", at(3), 5)
    [line] = rate(subscription, usage, "2026-03")
    assert (line.quantity, line.amount) == (5, Decimal("0.50"))
    assert "annual subscriptions covered 10 other m5.large h" in line.explain


@pytest.mark.rule("SUB-03")
def test_after_the_annual_term_usage_is_hourly_again_SUB_03() -> None:
    annual = [Annual("m5.large", 1, T - timedelta(days=365), at(10))]
    [line] = rate(sub(HOURLY, annual=annual), hours("a", "m5.large", at(9, 22), 4), "2026-03")
    assert line.quantity == 2


@pytest.mark.rule("SUB-04")
@pytest.mark.parametrize(
    ("started", "ended", "amount"),
    [
        (at(1), None, "300.00"),  # active the whole month: exactly the fee
        (at(16, 9), None, "160.00"),  # sign-up March 16 → 16 days → 16/30
        (at(1), at(10, 12), "100.00"),  # cancelled March 10: 10 days, the cancellation day counts
        (at(5), at(5, 18), "10.00"),  # one day
        (T - timedelta(days=40), None, "300.00"),
    ],
)
def test_monthly_fees_are_prorated_by_thirtieths_SUB_04(started: datetime, ended: datetime | None, amount: str) -> None:
    [line] = rate(sub({"monthly": "300"}, started_at=started, ended_at=ended), [], "2026-03")
    assert line.amount == Decimal(amount)


@pytest.mark.rule("SUB-04")
def test_a_31_day_partial_month_is_capped_at_the_fee_SUB_04() -> None:
    # Active from Jan 1 00:00 to Jan 31 18:00: 31 active days → capped at the fee.
    subscription = sub({"monthly": "300"}, started_at=datetime(2026, 1, 1, tzinfo=UTC), ended_at=at(31, 18, month=1))
    [line] = rate(subscription, [], "2026-01")
    assert line.amount == Decimal("300.00")


@pytest.mark.rule("SUB-05")
def test_hourly_and_monthly_charges_are_computed_independently_SUB_05() -> None:
    pricing = {"hourly": {"m5.large": "0.10"}, "monthly": "30"}
    lines = rate(sub(pricing, started_at=at(16)), hours("a", "m5.large", at(16), 10), "2026-03")
    assert sorted((x.charge, x.amount) for x in lines) == [("hourly", Decimal("1.00")), ("monthly", Decimal("16.00"))]


def test_usage_dimensions_are_billed_at_their_rate() -> None:
    pricing = {"usage": {"category": "users", "dimensions": [{"name": "users", "description": "u", "rate": "0.125"}]}}
    usage = [Usage(at(2, h), "users", 3) for h in range(3)]
    [line] = rate(sub(pricing), usage, "2026-03")
    assert (line.charge, line.dimension, line.quantity, line.amount) == ("usage", "users", 9, Decimal("1.13"))


@pytest.mark.rule("BIL-04")
def test_a_line_is_rounded_once_half_up_not_per_record_BIL_04() -> None:
    pricing = {"usage": {"category": "users", "dimensions": [{"name": "u", "description": "u", "rate": "0.005"}]}}
    usage = [Usage(at(2, h), "u", 1) for h in range(3)]  # 3 × 0.005 = 0.015 → 0.02 (per record it would be 0.03)
    [line] = rate(sub(pricing), usage, "2026-03")
    assert line.amount == Decimal("0.02")


TIERED = {
    "tiered": {
        "period": "hour",
        "items": [
            {
                "name": "queries",
                "reporting": "seller",
                "tiers": [{"up_to": 1000, "price": "0.01"}, {"up_to": None, "price": "0.005"}],
            }
        ],
    }
}


@pytest.mark.rule("PRC-13")
def test_graduated_tiers_apply_per_period_to_its_cumulative_usage_PRC_13() -> None:
    usage = [Usage(at(2, 10), "queries", 700), Usage(at(2, 10, 30), "queries", 600), Usage(at(2, 11), "queries", 500)]
    lines = rate(sub(TIERED), usage, "2026-03")
    # hour 10: 1300 → 1000 × 0.01 + 300 × 0.005; hour 11: 500 × 0.01
    assert [(x.quantity, x.unit_price, x.amount) for x in lines] == [
        (1500, Decimal("0.01"), Decimal("15.00")),
        (300, Decimal("0.005"), Decimal("1.50")),
    ]


@pytest.mark.rule("PRC-13")
def test_a_daily_tier_period_sums_the_whole_day_PRC_13() -> None:
    daily = {"tiered": {**TIERED["tiered"], "period": "day"}}
    usage = [Usage(at(2, h), "queries", 100) for h in range(12)]
    lines = rate(sub(daily), usage, "2026-03")
    assert [(x.quantity, x.amount) for x in lines] == [(1000, Decimal("10.00")), (200, Decimal("1.00"))]


def test_tier_bounds_are_inclusive_upper_bounds() -> None:
    tiers = [{"up_to": 10, "price": "1"}, {"up_to": None, "price": "0.5"}]
    assert graduated(10, tiers) == [(10, Decimal(1))]
    assert graduated(11, tiers) == [(10, Decimal(1)), (1, Decimal("0.5"))]


@pytest.mark.rule("PRC-12")
def test_ml_training_is_metered_per_second_at_the_hourly_price_PRC_12() -> None:
    pricing = {"ml": {"training": {"ml.m5.large": "1.00"}, "realtime_inference": {"ml.m5.large": "0.50"}}}
    usage = [Usage(at(2, 10), "training:ml.m5.large", 180), Usage(at(2, 10), "realtime_inference:ml.m5.large", 2700)]
    lines = rate(sub(pricing), usage, "2026-03")
    assert sorted((x.charge, x.amount) for x in lines) == [
        ("realtime_inference", Decimal("0.38")),  # 2700 s × 0.50/h = 0.375
        ("training", Decimal("0.05")),  # 180 s × 1.00/h = 0.05
    ]


@pytest.mark.rule("CHG-02")
def test_a_price_change_reaches_existing_subscribers_at_its_effective_month_CHG_02() -> None:
    versions = [
        Version(1, datetime(2025, 12, 1, tzinfo=UTC), {"hourly": {"m5.large": "0.10"}}),
        Version(2, datetime(2025, 12, 15, tzinfo=UTC), {"hourly": {"m5.large": "0.30"}}),  # +90 d → Apr 1
    ]
    subscription = sub({}, versions=versions, started_at=datetime(2025, 12, 5, tzinfo=UTC))
    march = rate(subscription, hours("a", "m5.large", at(31, 22), 4), "2026-03")
    april = rate(subscription, hours("a", "m5.large", at(31, 22), 4), "2026-04")
    assert [(x.quantity, x.unit_price) for x in march] == [(2, Decimal("0.10"))]
    assert [(x.quantity, x.unit_price) for x in april] == [(2, Decimal("0.30"))]


@pytest.mark.rule("CHG-01")
def test_a_new_subscriber_pays_the_new_price_at_once_CHG_01() -> None:
    versions = [
        Version(1, datetime(2025, 12, 1, tzinfo=UTC), {"hourly": {"m5.large": "0.10"}}),
        Version(2, datetime(2026, 2, 15, tzinfo=UTC), {"hourly": {"m5.large": "0.30"}}),
    ]
    [line] = rate(sub({}, versions=versions), hours("a", "m5.large", at(2), 1), "2026-03")
    assert line.unit_price == Decimal("0.30")


@pytest.mark.parametrize("pricing", [{"free": True}, {"byol": True}])
def test_free_and_byol_subscriptions_make_no_charges(pricing: dict[str, Any]) -> None:
    assert rate(sub(pricing), hours("a", "m5.large", at(2), 5), "2026-03") == []


# --- properties --------------------------------------------------------------------------------------------

instance_hours = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["m5.large", "m5.xlarge"]), st.integers(0, 30 * 24)),
    max_size=60,
)


def _usage_of(items: list[tuple[str, str, int]]) -> list[Usage]:
    seen = set()
    usage = []
    for instance, instance_type, hour in items:
        if (instance, hour) not in seen:
            seen.add((instance, hour))
            usage.append(Usage(T + timedelta(hours=hour), f"hourly:{instance_type}", 1, f"{instance}#1"))
    return usage


@settings(max_examples=150, deadline=None)
@given(items=instance_hours, trial_days=st.integers(0, 31), annual=st.integers(0, 3))
def test_property_trial_and_annual_never_make_a_charge_negative_or_larger(
    items: list[tuple[str, str, int]], trial_days: int, annual: int
) -> None:
    usage = _usage_of(items)
    plain = total(rate(sub(HOURLY), usage, "2026-03"))
    covered = sub(
        HOURLY,
        trial_ends_at=T + timedelta(days=trial_days) if trial_days else None,
        annual=[Annual("m5.large", annual, T, T + timedelta(days=365))] if annual else [],
    )
    lines = rate(covered, usage, "2026-03")
    assert all(line.amount >= 0 for line in lines)
    assert Decimal(0) <= total(lines) <= plain


@settings(max_examples=150, deadline=None)
@given(items=instance_hours)
def test_property_re_rating_the_same_inputs_gives_the_same_lines(items: list[tuple[str, str, int]]) -> None:
    usage = _usage_of(items)
    assert rate(sub(HOURLY), usage, "2026-03") == rate(sub(HOURLY), list(reversed(usage)), "2026-03")


@settings(max_examples=200, deadline=None)
@given(
    day=st.integers(1, 31), hour=st.integers(0, 23), length=st.integers(0, 40), fee=st.decimals("0", "10000", places=2)
)
def test_property_proration_never_exceeds_the_fee(day: int, hour: int, length: int, fee: Decimal) -> None:
    started = at(day, hour)
    subscription = sub({"monthly": str(fee)}, started_at=started, ended_at=started + timedelta(days=length, hours=1))
    lines = rate(subscription, [], "2026-03")
    assert total(lines) <= fee


@settings(max_examples=150, deadline=None)
@given(
    quantities=st.lists(st.integers(0, 5000), min_size=1, max_size=30),
    splits=st.lists(st.integers(1, 4), min_size=30, max_size=30),
)
def test_property_splitting_a_period_s_usage_across_records_never_changes_the_total(
    quantities: list[int], splits: list[int]
) -> None:
    whole = [Usage(at(2, h % 24, 0), "queries", q) for h, q in enumerate(quantities)]
    parts = []
    for h, (q, n) in enumerate(zip(quantities, splits, strict=False)):
        shares = [q // n] * n
        shares[0] += q - sum(shares)
        parts += [Usage(at(2, h % 24, k), "queries", share) for k, share in enumerate(shares)]
    assert total(rate(sub(TIERED), whole, "2026-03")) == total(rate(sub(TIERED), parts, "2026-03"))


# --- the close sums usage at each subscription's grain; rating the sums must change nothing -----------------

MIXED = {
    "hourly": {"m5.large": "0.10", "m5.xlarge": "0.20"},
    "usage": {"category": "users", "dimensions": [{"name": "users", "description": "U", "unit": "U", "rate": "0.013"}]},
    "ml": {"training": {"ml.m5.large": "1.07"}},
}


def _rolled(usage: list[Usage], width: int | None, tiers: dict[str, TierBounds]) -> list[Usage]:
    """What `billing.service._rollup_sql` stores for a grain: sums per bucket, dimension and (for
    instance-hours only) resource, keeping the first and last start and the record count; and for the
    items of `summed_tiers`, each tier's units summed over the buckets."""
    groups: dict[tuple[int, str, str], list[Usage]] = {}
    for u in usage:
        seconds = int(u.hour.timestamp())
        bucket = 0 if width is None else seconds - seconds % width
        resource = u.resource if u.dimension.startswith("hourly:") else ""
        groups.setdefault((bucket, u.dimension, resource), []).append(u)
    rolled = [
        Usage(min(g).hour, dimension, sum(u.quantity for u in g), resource, max(g).hour, len(g))
        for (_, dimension, resource), g in groups.items()
    ]
    graduated = [u for u in rolled if u.dimension in tiers]
    for item in {u.dimension for u in graduated}:
        periods = [u for u in graduated if u.dimension == item]
        for tier, (lower, upper) in enumerate(tiers[item]):
            units = sum(max(0, (u.quantity if upper is None else min(u.quantity, upper)) - lower) for u in periods)
            first, last = min(u.hour for u in periods), max(u.last or u.hour for u in periods)
            rolled.append(Usage(first, item, units, "", last, len(periods), tier))
    return [u for u in rolled if u.dimension not in tiers or u.tier is not None]


@settings(max_examples=200, deadline=None)
@given(
    items=instance_hours,
    metered=st.lists(st.tuples(st.integers(0, 30 * 24 * 60), st.integers(0, 2000)), max_size=40),
    tiers=st.sampled_from([None, "hour", "day"]),
    trial_days=st.integers(-40, 31),
    annual=st.integers(0, 2),
    change_day=st.integers(-200, 40),
)
def test_property_rating_usage_summed_at_its_grain_gives_the_same_lines(
    items: list[tuple[str, str, int]],
    metered: list[tuple[int, int]],
    tiers: str | None,
    trial_days: int,
    annual: int,
    change_day: int,
) -> None:
    from agora.billing.rating import grain, summed_tiers

    pricing: dict[str, Any] = dict(MIXED)
    if tiers:
        pricing["tiered"] = {"period": tiers, "items": TIERED["tiered"]["items"]}
    dearer = {**pricing, "hourly": {"m5.large": "0.15", "m5.xlarge": "0.30"}}
    started = T - timedelta(days=60)
    subscription = sub(
        pricing,
        started_at=started,
        versions=[Version(1, started - timedelta(days=1), pricing), Version(2, T + timedelta(days=change_day), dearer)],
        trial_ends_at=T + timedelta(days=trial_days) if trial_days > -40 else None,
        annual=[Annual("m5.large", annual, T + timedelta(days=10), T + timedelta(days=375))] if annual else [],
    )
    usage = _usage_of(items)
    for minute, quantity in metered:
        instant = T + timedelta(minutes=minute)
        usage += [Usage(instant, "users", quantity), Usage(instant, "training:ml.m5.large", quantity)]
        if tiers:
            usage.append(Usage(instant, "queries", quantity))
    usage = list({(u.hour, u.dimension, u.resource): u for u in usage}.values())  # the MTR-05 key
    width = {"hour": 3600, "day": 86400, "month": None}[grain(subscription, "2026-03")]
    rolled = _rolled(usage, width, summed_tiers(subscription, "2026-03"))
    assert rate(subscription, rolled, "2026-03") == rate(subscription, usage, "2026-03")
