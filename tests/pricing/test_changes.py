"""When price changes reach subscriptions: CHG-01 (new subscriptions at once), CHG-02 (existing ones on
the first of the month after notice + 90 days), CHG-03 (annual renewals only with 90 days' notice)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.pricing.changes import (
    existing_subscriber_effective_date,
    is_new_subscription,
    price_change_applies_from,
    renewal_takes_new_price,
)

DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 9, 30))
QUICK = settings(max_examples=200, deadline=None, database=None)


@pytest.mark.rule("CHG-02")
@pytest.mark.parametrize(
    ("notice_on", "effective"),
    [
        (date(2026, 3, 16), date(2026, 7, 1)),  # the source's example: 90 days end June 14
        (date(2026, 1, 31), date(2026, 6, 1)),  # month-end notice: ends May 1
        (date(2026, 11, 30), date(2027, 3, 1)),  # ends Feb 28 2027
        (date(2026, 10, 2), date(2027, 1, 1)),  # ends Dec 31: the year turns on the effective date
        (date(2026, 10, 3), date(2027, 2, 1)),  # ends Jan 1: still waits for the next month's first
        (date(2026, 12, 2), date(2027, 4, 1)),  # December notice crosses the year
        (date(2027, 12, 1), date(2028, 3, 1)),  # ends Feb 29 2028 (leap day)
        (date(2027, 12, 2), date(2028, 4, 1)),  # ends Mar 1 2028, the day after the leap day
        (date(2026, 12, 1), date(2027, 4, 1)),  # same notice a non-leap year earlier ends Mar 1
    ],
)
def test_chg02_existing_subscribers_first_of_month_after_90_days(notice_on: date, effective: date) -> None:
    assert existing_subscriber_effective_date(notice_on) == effective


@pytest.mark.rule("CHG-02")
def test_chg02_not_before_the_90_days_are_over() -> None:
    # the naive "90 days later" (June 14) or "first of the 3rd month" (June 1) would be wrong
    assert existing_subscriber_effective_date(date(2026, 3, 16)) not in (date(2026, 6, 14), date(2026, 6, 1))


@pytest.mark.rule("CHG-02")
@given(notice_on=DATES)
@QUICK
def test_chg02_effective_date_properties(notice_on: date) -> None:
    effective = existing_subscriber_effective_date(notice_on)
    end = notice_on + timedelta(days=90)
    assert effective.day == 1
    assert end < effective <= end + timedelta(days=31)
    assert (effective - timedelta(days=1)).month == end.month  # the very next first of a month
    assert existing_subscriber_effective_date(notice_on + timedelta(days=1)) >= effective


@pytest.mark.rule("CHG-03")
def test_chg03_renewal_takes_new_price_with_90_days_notice() -> None:
    renewal = date(2027, 3, 1)
    assert renewal_takes_new_price(renewal - timedelta(days=90), renewal)
    assert renewal_takes_new_price(date(2026, 1, 1), renewal)
    assert not renewal_takes_new_price(renewal - timedelta(days=89), renewal)
    assert not renewal_takes_new_price(renewal, renewal)
    assert not renewal_takes_new_price(renewal + timedelta(days=5), renewal)


@pytest.mark.rule("CHG-03")
@given(changed_on=DATES, days=st.integers(-400, 400))
@QUICK
def test_chg03_threshold_is_exactly_90_days(changed_on: date, days: int) -> None:
    assert renewal_takes_new_price(changed_on, changed_on + timedelta(days=days)) == (days >= 90)


NOTICE = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


@pytest.mark.rule("CHG-01")
def test_chg01_new_subscriptions_get_the_change_immediately() -> None:
    later = NOTICE + timedelta(hours=1)
    assert is_new_subscription(later, NOTICE)
    assert is_new_subscription(NOTICE, NOTICE)
    assert price_change_applies_from(later, NOTICE) == later


@pytest.mark.rule("CHG-01")
def test_chg01_existing_subscriptions_wait_for_chg02_date() -> None:
    earlier = NOTICE - timedelta(minutes=1)
    assert not is_new_subscription(earlier, NOTICE)
    assert price_change_applies_from(earlier, NOTICE) == datetime(2026, 7, 1, tzinfo=UTC)


@pytest.mark.rule("CHG-02")
def test_chg02_notice_day_is_the_utc_day() -> None:
    # 22:00 on Oct 2 in UTC-5 is Oct 3 in UTC: 90 days end Jan 1, so the change waits until Feb 1
    notice = datetime(2026, 10, 2, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    subscribed = datetime(2026, 1, 1, tzinfo=UTC)
    assert price_change_applies_from(subscribed, notice) == datetime(2027, 2, 1, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        is_new_subscription(datetime(2026, 3, 16), NOTICE)
