"""Which price version governs a subscription at an instant (`agora.pricing.versions.applicable`): version 1
until a change, CHG-01 for subscriptions started at or after a notice, CHG-02 for those started before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.pricing.versions import Version, applicable

LAUNCH = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
NOTICE = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)  # the PRICING example: 90 days end June 14 → July 1
EFFECTIVE = datetime(2026, 7, 1, tzinfo=UTC)
OLD: dict[str, Any] = {"hourly": {"m5.large": "0.10"}}
NEW: dict[str, Any] = {"hourly": {"m5.large": "0.12"}}
NEWER: dict[str, Any] = {"hourly": {"m5.large": "0.15"}}

V1 = Version(1, LAUNCH, OLD)
V2 = Version(2, NOTICE, NEW)
EXISTING = datetime(2026, 2, 1, tzinfo=UTC)  # subscribed before the notice


@pytest.mark.rule("CHG-01")
def test_chg_01_version_1_applies_until_a_change() -> None:
    """CHG-01: with no change noticed yet, the launch price governs every subscription at every instant."""
    assert applicable([V1], LAUNCH, LAUNCH) == V1
    assert applicable([V1], LAUNCH, datetime(2036, 1, 1, tzinfo=UTC)) == V1
    assert applicable([V1, V2], EXISTING, NOTICE - timedelta(microseconds=1)) == V1


def test_no_versions_is_an_error() -> None:
    with pytest.raises(ValueError, match="launch price"):
        applicable([], EXISTING, NOTICE)


@pytest.mark.rule("CHG-01")
def test_chg_01_subscription_at_or_after_the_notice_gets_the_new_price_at_once() -> None:
    assert applicable([V1, V2], NOTICE, NOTICE) == V2
    later = NOTICE + timedelta(days=3)
    assert applicable([V1, V2], later, later) == V2
    assert applicable([V1, V2], later, later + timedelta(days=400)) == V2


@pytest.mark.rule("CHG-02")
def test_chg_02_existing_subscription_keeps_the_old_price_until_the_first_of_the_month_after_90_days() -> None:
    assert applicable([V1, V2], EXISTING, NOTICE) == V1
    assert applicable([V1, V2], EXISTING, datetime(2026, 6, 14, 12, tzinfo=UTC)) == V1  # the 90 days end
    assert applicable([V1, V2], EXISTING, datetime(2026, 6, 30, 23, 59, tzinfo=UTC)) == V1
    assert applicable([V1, V2], EXISTING, EFFECTIVE - timedelta(microseconds=1)) == V1
    assert applicable([V1, V2], EXISTING, EFFECTIVE) == V2
    assert applicable([V1, V2], EXISTING, EFFECTIVE + timedelta(days=100)) == V2


@pytest.mark.rule("CHG-02")
def test_chg_02_one_instant_before_the_notice_is_still_an_existing_subscription() -> None:
    assert applicable([V1, V2], NOTICE - timedelta(microseconds=1), datetime(2026, 6, 30, tzinfo=UTC)) == V1


@pytest.mark.rule("CHG-01")
def test_chg_01_versions_are_taken_by_number_not_by_list_order() -> None:
    later = NOTICE + timedelta(days=1)
    assert applicable([V2, V1], later, later) == V2
    assert applicable([V2, V1], EXISTING, later) == V1


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_chg_01_chg_02_two_changes_in_a_row() -> None:
    """v2 noticed March 16 (existing: July 1), v3 noticed May 20 (existing: Sept 1)."""
    v3_notice = datetime(2026, 5, 20, 15, 0, tzinfo=UTC)
    v3 = Version(3, v3_notice, NEWER)
    versions = [V1, V2, v3]
    september = datetime(2026, 9, 1, tzinfo=UTC)

    # started before both notices: v1, then v2 on July 1, then v3 on September 1
    assert applicable(versions, EXISTING, v3_notice) == V1
    assert applicable(versions, EXISTING, EFFECTIVE - timedelta(seconds=1)) == V1
    assert applicable(versions, EXISTING, EFFECTIVE) == V2
    assert applicable(versions, EXISTING, september - timedelta(seconds=1)) == V2
    assert applicable(versions, EXISTING, september) == v3

    # started between the notices: new for v2 (at once), existing for v3 (September 1)
    between = datetime(2026, 4, 1, tzinfo=UTC)
    assert applicable(versions, between, between) == V2
    assert applicable(versions, between, september - timedelta(seconds=1)) == V2
    assert applicable(versions, between, september) == v3

    # started after both: the newest at once
    after = v3_notice + timedelta(minutes=1)
    assert applicable(versions, after, after) == v3


@pytest.mark.rule("CHG-02")
def test_chg_02_a_second_change_before_the_first_takes_effect_skips_it() -> None:
    """Both noticed in March: an existing subscriber goes straight from v1 to v3 on July 1."""
    v3 = Version(3, datetime(2026, 3, 20, tzinfo=UTC), NEWER)
    assert applicable([V1, V2, v3], EXISTING, EFFECTIVE - timedelta(seconds=1)) == V1
    assert applicable([V1, V2, v3], EXISTING, EFFECTIVE) == v3


# --- properties ---------------------------------------------------------------------------------------------

START = datetime(2025, 1, 1, tzinfo=UTC)
SECONDS = st.integers(0, 3 * 365 * 24 * 3600)


@st.composite
def schedules(draw: st.DrawFn) -> list[Version]:
    """Version 1 at START, then up to 5 changes, each noticed no earlier than the one before."""
    gaps = draw(st.lists(SECONDS.map(lambda s: timedelta(seconds=s // 4)), max_size=5))
    versions = [Version(1, START, {"n": 1})]
    for gap in gaps:
        versions.append(Version(len(versions) + 1, versions[-1].noticed_at + gap, {"n": len(versions) + 1}))
    return versions


def _newest_noticed(versions: list[Version], at: datetime) -> int:
    return max((v.number for v in versions if v.noticed_at <= at), default=1)


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
@given(versions=schedules(), subscribed=SECONDS, moments=st.lists(SECONDS, min_size=2, max_size=8))
@settings(max_examples=200, deadline=None, database=None)
def test_chg_01_chg_02_version_never_decreases_and_never_runs_ahead_of_notices(
    versions: list[Version], subscribed: int, moments: list[int]
) -> None:
    subscribed_at = START + timedelta(seconds=subscribed)
    numbers = []
    for at in sorted(START + timedelta(seconds=s) for s in moments):
        number = applicable(versions, subscribed_at, at).number
        assert number <= _newest_noticed(versions, at)
        numbers.append(number)
    assert numbers == sorted(numbers)


@pytest.mark.rule("CHG-01")
@given(versions=schedules(), subscribed=SECONDS)
@settings(max_examples=200, deadline=None, database=None)
def test_chg_01_a_subscription_starts_on_the_newest_noticed_version(versions: list[Version], subscribed: int) -> None:
    subscribed_at = START + timedelta(seconds=subscribed)
    assert applicable(versions, subscribed_at, subscribed_at).number == _newest_noticed(versions, subscribed_at)
