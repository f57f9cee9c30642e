"""Each ended day of usage is summed once (`billing.sum_day`), and the month's close adds the days up instead
of reading every record again (BIL-03). Nothing about that may change a cent or a word of a line: a day a
record reaches after it was summed (a platform measurement written at a run's stop, a voided metering
error) is summed again from its records, and so is every day of a subscription whose terms changed since
(an annual purchase makes its coverage hourly, SUB-03)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from agora import clock, jobs
from agora.billing import rating, runs, service
from agora.db import Database
from agora.metering import platform
from agora.metering.records import from_epoch
from agora.metering.service import touch_days
from agora.models import (
    AnnualPurchase,
    Buyer,
    Product,
    Subscription,
    UsageDay,
    UsageDaySum,
    UsageRecord,
)
from bench import billing as bench

DAY = 86400
FIRST = int(bench.START.timestamp())


def sum_the_month(db: Database, manual_clock: clock.ManualClock) -> None:
    """Run the days' jobs as a worker would, each due 7 hours after its day (one hour past MTR-04's window)."""
    with db.unit_of_work() as session:
        service.schedule_day_sum(session, bench.START.date())
    manual_clock.set(bench.START + timedelta(days=31, hours=7))
    jobs.Worker(db).run_until_idle()


def summed_market(db: Database, manual_clock: clock.ManualClock, records: int) -> list[tuple[int, int, str]]:
    """Ten buyers across the pricing families, `records` of March usage, every day of March summed; the
    subscriptions, as `bench.populate` gives them."""
    subscriptions = bench.populate(db, 10)
    bench.load_usage(db, subscriptions, records)
    sum_the_month(db, manual_clock)
    return subscriptions


def first_hourly(subscriptions: list[tuple[int, int, str]]) -> int:
    return next(sub for sub, _, how in subscriptions if how == "hourly")


def clean_days(db: Database) -> set[int]:
    with db.reader() as session:
        rows = session.execute(select(UsageDaySum.day, UsageDaySum.dirty))
        return {(day - FIRST) // DAY + 1 for day, dirty in rows if not dirty}


def close_and_rate(db: Database, manual_clock: clock.ManualClock, at: timedelta = timedelta(days=32)) -> None:
    """Close the month `at` after it began and compare every invoice with rating each subscription's raw
    records."""
    manual_clock.set(bench.START + at)
    invoices = {invoice["buyer"]: invoice for invoice in runs.close(db, bench.PERIOD)}
    expected: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    with db.reader() as session:
        usage: dict[int, list[rating.Usage]] = defaultdict(list)
        live = (UsageRecord.voided_at.is_(None)) & (UsageRecord.billed_in.is_(None))
        for record in session.scalars(select(UsageRecord).where(live)):
            usage[record.subscription_id].append(
                rating.Usage(from_epoch(record.period_start), record.dimension, record.quantity, record.resource)
            )
        pairs = list(
            session.execute(select(Subscription, Buyer.account).join(Buyer, Buyer.id == Subscription.buyer_id))
        )
        terms = service._Terms(session, [subscription for subscription, _ in pairs])
        for subscription, account in pairs:
            for line in rating.rate(terms.of(subscription), usage[subscription.id], bench.PERIOD):
                expected[account].append(
                    (line.charge, rating.decimal_text(line.quantity), f"{line.amount:.2f}", line.explain)
                )
    assert set(expected) == set(invoices)
    for account, invoice in invoices.items():
        billed = [(line["charge"], line["quantity"], line["amount"], line["explain"]) for line in invoice["lines"]]
        assert sorted(billed) == sorted(expected[account]), account


@pytest.mark.rule("BIL-03")
def test_a_close_adding_up_days_summed_as_they_ended_bills_what_the_records_bill_BIL_03(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    subscriptions = bench.populate(db, 25)  # every pricing family, hourly tiers among them (PRC-13)
    bench.load_usage(db, subscriptions, 6000)
    sum_the_month(db, manual_clock)
    assert clean_days(db) == set(range(1, 32))
    with db.reader() as session:
        summed = session.scalar(select(func.count()).select_from(UsageDay))
        records = session.scalar(select(func.count()).select_from(UsageRecord))
    assert 0 < summed < records

    # The close reads the days, not the records: with the records gone it would bill the same.
    manual_clock.set(bench.START + timedelta(days=32))
    with db.unit_of_work() as session:
        month = service.month_terms(session, bench.PERIOD)
        from_days = service._summed_month(session, month, bench.START, bench.START + timedelta(days=31))
        from_records = service._rollup(
            db.engine, month.sql(), month.tiers, service._sliced([(bench.START, bench.START + timedelta(days=31))])
        )
    assert _totals(from_days) == _totals(from_records)
    close_and_rate(db, manual_clock)


def _totals(rows: list[dict[str, object]]) -> dict[tuple[object, ...], Decimal]:
    totals: dict[tuple[object, ...], Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[(row["subscription_id"], row["dimension"], row["resource"], row["tier"])] += Decimal(
            str(row["quantity"])
        )
    return dict(totals)


@pytest.mark.rule("BIL-03")
@pytest.mark.rule("MTR-06")
def test_a_platform_record_written_after_its_day_was_summed_makes_the_day_summed_again_BIL_03_MTR_06(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    subscriptions = summed_market(db, manual_clock, 2000)
    hourly = first_hourly(subscriptions)
    manual_clock.set(bench.START + timedelta(days=31, hours=8))  # a run stopped now writes its early hours
    with db.unit_of_work() as session:
        subscription = session.get_one(Subscription, hourly)
        product = session.get_one(Product, subscription.product_id)
        at = datetime(2026, 3, 10, 5, tzinfo=UTC)
        reading = platform.usage_reading(subscription, product, "hourly:m5.large", 1, at, "i-late")
        [outcome] = platform.store(session, [reading], region="us-east-1")
        assert outcome.ok, outcome
    assert clean_days(db) == set(range(1, 32)) - {10}
    close_and_rate(db, manual_clock)
    with db.reader() as session:  # the late run's hour is on the invoice
        assert session.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.resource == "i-late"))


@pytest.mark.rule("BIL-03")
@pytest.mark.rule("RFD-02")
def test_a_voided_record_makes_its_summed_day_summed_again_BIL_03_RFD_02(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    summed_market(db, manual_clock, 2000)
    with db.unit_of_work() as session:  # as `metering_errors.confirm` voids one before the close is due
        record = session.scalars(
            select(UsageRecord).where(UsageRecord.period_start >= FIRST + 4 * DAY).order_by(UsageRecord.id).limit(1)
        ).one()
        record.voided_at = int(clock.now().timestamp())
        touch_days(session, [record.period_start], clock.now())
        day = (record.period_start - FIRST) // DAY + 1
    assert clean_days(db) == set(range(1, 32)) - {day}
    close_and_rate(db, manual_clock)


@pytest.mark.rule("BIL-03")
@pytest.mark.rule("SUB-03")
def test_terms_changed_after_the_days_were_summed_make_the_subscription_summed_again_BIL_03_SUB_03(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    subscriptions = summed_market(db, manual_clock, 3000)
    hourly = first_hourly(subscriptions)
    with db.unit_of_work() as session:  # bought for mid-March: coverage is now decided hour by hour
        session.add(
            AnnualPurchase(
                subscription_id=hourly,
                instance_type="m5.large",
                quantity=1,
                unit_price=Decimal("500"),
                amount_cents=50000,
                starts_at=datetime(2026, 3, 15, tzinfo=UTC),
                ends_at=datetime(2027, 3, 15, tzinfo=UTC),
            )
        )
    with db.reader() as session:
        month = service.month_terms(session, bench.PERIOD)
        stored = set(session.scalars(select(UsageDay.terms).where(UsageDay.subscription_id == hourly)))
    assert stored and month.key(hourly) not in stored
    close_and_rate(db, manual_clock)


def test_a_month_closed_before_its_days_were_summed_is_summed_from_its_records(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    """`agora bill` may close a month the moment it ends: its last day, not summed yet, is read from the
    records, and its day job, coming after the close, leaves the closed month alone."""
    subscriptions = bench.populate(db, 10)
    bench.load_usage(db, subscriptions, 2000)
    with db.unit_of_work() as session:
        service.schedule_day_sum(session, bench.START.date())
    close_and_rate(db, manual_clock, at=timedelta(days=31, hours=1))  # March 31st is summed at 07:00
    assert clean_days(db) == set(range(1, 31))
    manual_clock.set(bench.START + timedelta(days=33))
    jobs.Worker(db).run_until_idle()  # March 31st's job finds its month closed; April 1st is summed
    assert clean_days(db) == set(range(1, 31)) | {32}
    manual_clock.set(datetime(2026, 5, 2, 8, tzinfo=UTC))
    jobs.Worker(db).run_until_idle()  # May's first day: March was closed before April, its days are let go
    with db.reader() as session:
        march = UsageDay.day < int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())
        assert session.scalar(select(func.count()).select_from(UsageDay).where(march)) == 0
    assert {day for day in clean_days(db) if day <= 31} == set()
    assert set(range(32, 62)) <= clean_days(db)  # April's days (summed, none with usage) are kept
