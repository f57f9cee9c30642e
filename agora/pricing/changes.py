"""When a price change reaches a subscription (CHG-01…03): pure date arithmetic, no clock.

Dates are UTC calendar days. The 90-day period of CHG-02 starts on the notice date and ends on
notice + 90 days (the PRICING example: notice March 16 → period ends June 14), and the change takes
effect on the first day of the month after that end day — so an end on the 1st of a month still waits
for the 1st of the next month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

NOTICE_PERIOD = timedelta(days=90)  # CHG-02 and CHG-03


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def existing_subscriber_effective_date(notice_on: date) -> date:
    """CHG-02: the day a change noticed on `notice_on` starts to apply to existing subscribers."""
    return _first_of_next_month(notice_on + NOTICE_PERIOD)


def renewal_takes_new_price(changed_on: date, renewal_on: date) -> bool:
    """CHG-03: an annual auto-renewal on `renewal_on` renews at the new price only if the change was made
    at least 90 days before it; the running annual term itself never changes price."""
    return renewal_on - changed_on >= NOTICE_PERIOD


def is_new_subscription(subscribed_at: datetime, notice_at: datetime) -> bool:
    """CHG-01: a subscription started at or after the change is new and takes the new price at once."""
    _require_aware(subscribed_at, notice_at)
    return subscribed_at >= notice_at


def price_change_applies_from(subscribed_at: datetime, notice_at: datetime) -> datetime:
    """The first instant a price change noticed at `notice_at` governs a subscription started at
    `subscribed_at`: its own start if it is new (CHG-01), else midnight UTC of the CHG-02 date."""
    if is_new_subscription(subscribed_at, notice_at):
        return subscribed_at
    notice_on = notice_at.astimezone(UTC).date()
    return datetime.combine(existing_subscriber_effective_date(notice_on), time(0), tzinfo=UTC)


def _require_aware(*moments: datetime) -> None:
    if any(m.tzinfo is None or m.utcoffset() is None for m in moments):
        raise ValueError("datetimes must carry a timezone (Agora stores UTC)")
