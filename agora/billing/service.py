"""Billing runs and invoices: the shell around the pure rating core (`agora.billing.rating`).

A month closes in two durable steps (BIL-03): `billing.close_period` sums the month's usage into
`usage_rollups` in one SQL pass and fans out one `billing.invoice_buyer` job per buyer with anything to
bill; each of those rates the buyer's subscriptions and writes the month's invoice, and the last of them to
finish enqueues the sellers' payout (`billing.disburse`, BIL-05). An invoice's unique
`source` makes every step safe to repeat: a re-run, or a run resumed after a crash, writes nothing twice.
Upfront purchases (contracts, annual subscriptions) are invoiced when they are made (BIL-02).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Table, delete, func, select, text
from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.billing import rating
from agora.billing.rating import Line, month_bounds, next_period, period_of
from agora.bulk import AnyRow, among, insert_rows
from agora.metering.records import WINDOW, from_epoch
from agora.metering.service import mark_days, periods_lock
from agora.models import (
    AnnualPurchase,
    BillingPeriod,
    Buyer,
    Contract,
    ContractCharge,
    Invoice,
    InvoiceLine,
    Job,
    JobState,
    Offer,
    Product,
    Subscription,
    UsageDay,
    UsageDaySum,
    UsageRollup,
)
from agora.money import from_cents, round_cents, to_cents
from agora.pricing.service import versions
from agora.pricing.versions import Version

INVOICES: Table = Invoice.__table__  # type: ignore[assignment]
LINES: Table = InvoiceLine.__table__  # type: ignore[assignment]
ROLLUPS: Table = UsageRollup.__table__  # type: ignore[assignment]
DAYS: Table = UsageDay.__table__  # type: ignore[assignment]
CLOSE_DELAY = timedelta(hours=24)  # BIL-03: a period closes 24 hours after its end


# --- upfront invoices (BIL-02) -------------------------------------------------------------------------------


def invoice_contract_charge(session: Session, charge: ContractCharge) -> Invoice:
    contract = session.get_one(Contract, charge.contract_id)
    subscription = session.get_one(Subscription, contract.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    line = Line(
        product.code,
        "contract",
        None,
        None,
        Decimal(1),
        from_cents(charge.amount_cents),
        from_cents(charge.amount_cents),
        f"contract {charge.reason} for {contract.duration_months} month(s), "
        f"{contract.starts_at:%Y-%m-%d}–{contract.ends_at:%Y-%m-%d}, invoiced in full at purchase [BIL-02, PRC-10]",
        subscription.id,
    )
    return _issue(session, f"upfront:contract_charge:{charge.id}", subscription.buyer_id, "upfront", charge.at, [line])


def invoice_annual_purchase(session: Session, purchase: AnnualPurchase) -> Invoice:
    subscription = session.get_one(Subscription, purchase.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    line = Line(
        product.code,
        "annual",
        purchase.instance_type,
        None,
        Decimal(purchase.quantity),
        purchase.unit_price,
        from_cents(purchase.amount_cents),
        f"{purchase.quantity} annual subscription(s) of {purchase.instance_type}, "
        f"{purchase.starts_at:%Y-%m-%d}–{purchase.ends_at:%Y-%m-%d}, invoiced in full at purchase [BIL-02, SUB-03]",
        subscription.id,
    )
    return _issue(
        session, f"upfront:annual:{purchase.id}", subscription.buyer_id, "upfront", purchase.starts_at, [line]
    )


def invoice_offer_instalment(session: Session, subscription: Subscription, offer: Offer, index: int) -> Invoice:
    schedule = offer.schedule or []
    entry = schedule[index]
    amount = round_cents(Decimal(str(entry["amount"])))
    product = session.get_one(Product, subscription.product_id)
    line = Line(
        product.code,
        "contract",
        None,
        None,
        Decimal(1),
        amount,
        amount,
        f"private offer {offer.id} instalment {index + 1} of {len(schedule)}, due {entry['at']} [BIL-02, OFR-01]",
        subscription.id,
    )
    return _issue(session, f"upfront:offer:{offer.id}:{index}", subscription.buyer_id, "upfront", clock.now(), [line])


def _issue(
    session: Session, source: str, buyer_id: int, kind: str, issued_at: datetime, lines: Sequence[Line]
) -> Invoice:
    """Create the invoice of `source` once; asking again returns the one already issued."""
    existing = session.scalar(select(Invoice).where(Invoice.source == source))
    if existing is not None:
        return existing
    [issued] = _issue_many(session, [(source, buyer_id, lines)], kind, issued_at, period_of(issued_at))
    return session.get_one(Invoice, issued.id)


@jobs.handler("billing.offer_instalment")
def offer_instalment(session: Session, payload: dict[str, Any]) -> None:
    subscription = session.get_one(Subscription, payload["subscription_id"])
    invoice_offer_instalment(session, subscription, session.get_one(Offer, payload["offer_id"]), payload["index"])


# --- closing a month (BIL-01, BIL-03) ------------------------------------------------------------------------


def schedule_close(session: Session, period: str) -> None:
    """The month's billing run, due 24 hours after the month ends (BIL-03); scheduling it twice is a no-op."""
    start, end = month_bounds(period)
    jobs.enqueue(
        session, "billing.close_period", {"period": period}, run_at=end + CLOSE_DELAY, dedupe_key=f"close:{period}"
    )
    schedule_day_sum(session, start.date())


@jobs.handler("billing.close_period")
def close_period(session: Session, payload: dict[str, Any]) -> None:
    """Mark the month closed, sum its usage once, then one invoice job per batch of buyers; and schedule
    next month's run. Usage of the month stored from now on is billed in the next one (BIL-03)."""
    period = payload["period"]
    start, end = month_bounds(period)
    periods_lock(session, shared=False)
    if session.get(BillingPeriod, period) is None:
        session.add(BillingPeriod(period=period, closed_at=clock.now()))
        session.flush()
    connection = session.connection()
    month = month_terms(session, period)
    session.execute(delete(UsageRollup).where(UsageRollup.period == period))
    rows = _summed_month(session, month, start, end)
    buyer_of = {subscription.id: subscription.buyer_id for subscription in month.subscriptions}
    missing = {row["subscription_id"] for row in rows} - buyer_of.keys()
    if missing:  # usage outside a subscription's active time is refused, but a rollup never drops a row
        found = connection.execute(
            select(Subscription.id, Subscription.buyer_id).where(among(session, Subscription.id, missing))
        )
        buyer_of.update({subscription_id: buyer_id for subscription_id, buyer_id in found})
    insert_rows(
        connection,
        ROLLUPS,
        [{"period": period, "late": False, "buyer_id": buyer_of[row["subscription_id"]], **row} for row in rows],
    )
    connection.execute(_LATE_ROLLUP, {"period": period, "billed_in": period, "late": True})
    buyers = set(connection.scalars(select(UsageRollup.buyer_id).where(UsageRollup.period == period).distinct()))
    buyers |= {subscription.buyer_id for subscription in month.subscriptions}
    ordered = sorted(buyers)
    for first in range(0, len(ordered), BUYERS_PER_JOB):
        chunk = ordered[first : first + BUYERS_PER_JOB]
        jobs.enqueue(
            session, INVOICE_JOB, {"period": period, "buyer_ids": chunk}, dedupe_key=invoice_key(period, chunk[0])
        )
    schedule_close(session, next_period(period))
    pay_sellers_once_invoiced(session, period)  # a month with no buyer to invoice still pays its upfront lines


Tier = tuple[int, str, int, int, int | None]  # subscription, item, tier number, lower and upper bound


class MonthTerms(NamedTuple):
    """What summing a month's usage needs from its subscriptions' terms: each subscription's grain
    (`rating.grain`), the tier bounds the close graduates by (`rating.summed_tiers`), and both as one text
    per subscription (`keys`), which a day summed earlier must still match to be used."""

    subscriptions: Sequence[AnyRow]
    grains: dict[str, list[int]]
    tiers: list[Tier]
    keys: dict[int, str]

    def key(self, subscription_id: int) -> str:
        return self.keys.get(subscription_id, UNCLASSIFIED)

    def sql(self, only: Sequence[int] | None = None) -> Any:
        return _rollup_sql(self.grains, graduate=bool(self.tiers), only=only)


UNCLASSIFIED = json.dumps(["hour", []])  # a subscription not active in the month is summed per hour


def month_terms(session: Session, period: str) -> MonthTerms:
    start, end = month_bounds(period)
    subscriptions = session.connection().execute(select(*TERMS_COLUMNS).where(_active_in(start, end))).all()
    catalog = _Terms(session, subscriptions)
    grains: dict[str, list[int]] = defaultdict(list)
    tiers: list[Tier] = []
    keys = {}
    for subscription in subscriptions:
        terms = catalog.of(subscription)
        grain = rating.grain(terms, period)
        grains[grain].append(subscription.id)
        summed = sorted(rating.summed_tiers(terms, period).items())
        for item, bounds in summed:
            tiers += [(subscription.id, item, n, lower, upper) for n, (lower, upper) in enumerate(bounds)]
        keys[subscription.id] = json.dumps([grain, summed])
    return MonthTerms(subscriptions, grains, tiers, keys)


def _summed_month(session: Session, month: MonthTerms, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The month's usage summed at each subscription's grain, tiers graduated: the days summed as they ended
    (`sum_day`) added up, and from the records what they cannot give — the days not summed or dirty, and
    the subscriptions whose terms have changed since their days were summed."""
    engine = session.get_bind().engine
    clean = set(
        session.scalars(
            select(UsageDaySum.day).where(
                UsageDaySum.day >= _epoch(start), UsageDaySum.day < _epoch(end), UsageDaySum.dirty.is_(False)
            )
        )
    )
    rows: list[dict[str, Any]] = []
    changed: set[int] = set()
    if clean:
        d = DAYS.c
        summed = session.execute(
            select(
                d.subscription_id,
                d.terms,
                func.min(d.hour).label("hour"),
                func.max(d.last_hour).label("last_hour"),
                d.dimension,
                d.resource,
                func.sum(d.quantity).label("quantity"),
                func.sum(d.records).label("records"),
                d.tier,
            )
            .where(d.day.in_(sorted(clean)))
            .group_by(d.subscription_id, d.terms, d.dimension, d.resource, d.tier, d.bucket)
        )
        for row in summed:
            if row.terms != month.key(row.subscription_id):
                changed.add(row.subscription_id)
            rows.append(
                {
                    "subscription_id": row.subscription_id,
                    "hour": row.hour,
                    "last_hour": row.last_hour,
                    "dimension": row.dimension,
                    "resource": row.resource,
                    "quantity": int(row.quantity),
                    "records": int(row.records),
                    "tier": row.tier,
                }
            )
        rows = [row for row in rows if row["subscription_id"] not in changed]
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    unsummed = _runs([day for day in days if _epoch(day) not in clean])
    rows += _rollup(engine, month.sql(), month.tiers, _sliced(unsummed))
    if changed:
        resummed = _runs([day for day in days if _epoch(day) in clean])
        rows += _rollup(engine, month.sql(only=sorted(changed)), month.tiers, _sliced(resummed))
    return rows


def _runs(days: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days as [start, end) ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for day in days:
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


def _sliced(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The ranges cut into about one slice per core, at whole days, for `_rollup` to sum at once."""
    slices = []
    for start, end in ranges:
        days = (end - start).days
        pieces = min(days, ROLLUP_SLICES)
        cuts = [start + timedelta(days=days * n // pieces) for n in range(pieces)] + [end]
        slices += [(a, b) for a, b in pairwise(cuts) if a < b]
    return slices


SUM_DAY_JOB = "billing.sum_day"
SUM_DELAY = WINDOW + timedelta(hours=1)  # after the day's end: no record of it can still be on its way in


def schedule_day_sum(session: Session, day: date) -> None:
    """`day`'s summing job, due once the metering window has passed over the whole day; once per day."""
    due = _midnight(day) + timedelta(days=1) + SUM_DELAY
    jobs.enqueue(session, SUM_DAY_JOB, {"day": day.isoformat()}, run_at=due, dedupe_key=f"sum-day:{day}")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def start_day_sums(session: Session) -> None:
    """Sum each day as it ends, from yesterday on (each day's job schedules the next day's)."""
    schedule_day_sum(session, (clock.now() - timedelta(days=1)).date())


@jobs.handler(SUM_DAY_JOB)
def sum_day(session: Session, payload: dict[str, Any]) -> None:
    """Sum one ended day of usage as the month's close would (`usage_days`), so that the close adds up the
    month's days instead of reading every record again; then schedule the next day's. A day of a month
    already closed is left alone: its close has summed it."""
    day = date.fromisoformat(payload["day"])
    schedule_day_sum(session, day + timedelta(days=1))
    start = _midnight(day)
    period = period_of(start)
    if session.get(BillingPeriod, period) is not None:
        return
    _forget_closed_months(session, period)
    month = month_terms(session, period)
    rows = _rollup(session.get_bind().engine, month.sql(), month.tiers, [(start, start + timedelta(days=1))])
    connection = session.connection()
    connection.execute(delete(UsageDay).where(UsageDay.day == _epoch(start)))
    month_grain = set(month.grains.get("month", ()))
    insert_rows(
        connection,
        DAYS,
        [
            {
                "day": _epoch(start),
                "terms": month.key(row["subscription_id"]),
                "bucket": 0 if row["tier"] is not None or row["subscription_id"] in month_grain else row["hour"],
                **row,
            }
            for row in rows
        ],
    )
    mark_days(session, [_epoch(start)], dirty=False)


def _forget_closed_months(session: Session, period: str) -> None:
    """The summed days of closed months before the one before `period`: their closes have used them."""
    previous = period_of(month_bounds(period)[0] - timedelta(days=1))
    cut = _epoch(month_bounds(previous)[0])
    days = session.scalars(select(UsageDaySum.day).where(UsageDaySum.day < cut)).all()
    months = {period_of(from_epoch(day)) for day in days}
    closed = set(session.scalars(select(BillingPeriod.period).where(BillingPeriod.period.in_(months))))
    for month in sorted(closed):
        first, last = (_epoch(instant) for instant in month_bounds(month))
        session.execute(delete(UsageDay).where(UsageDay.day >= first, UsageDay.day < last))
        session.execute(delete(UsageDaySum).where(UsageDaySum.day >= first, UsageDaySum.day < last))


INVOICE_JOB = "billing.invoice_buyers"


def invoice_key(period: str, first_buyer_id: int | str) -> str:
    return f"invoice:{period}:{first_buyer_id}"


def pay_sellers_once_invoiced(session: Session, period: str, *, finishing: str | None = None) -> None:
    """Enqueue the month's payout (BIL-05) once every invoice job of the month is done, so that it sees every
    invoice: the last invoice job to finish enqueues it, in its own transaction (`finishing` is that job's
    key — its own "done" mark is written with this transaction). A payout is made once per seller and
    month, so paying before the last invoice exists would leave that invoice's lines unpaid for good.

    Two jobs finishing at once must not each see the other still running: on PostgreSQL each takes the
    month's row lock first, so the second counts after the first has committed; SQLite has one writer at a
    time and refuses to commit a transaction that read before another writer committed. A job that fails
    for good holds the payout back until it is retried and done. A job that runs again (a retaken lease)
    enqueues nothing twice: the payout's key is unique, and a payout pays only lines not yet paid."""
    session.execute(select(BillingPeriod.period).where(BillingPeriod.period == period).with_for_update())
    pending = (
        select(func.count())
        .select_from(Job)
        .where(
            Job.name == INVOICE_JOB,
            Job.dedupe_key.startswith(invoice_key(period, ""), autoescape=True),
            Job.state != JobState.DONE.value,
        )
    )
    if finishing is not None:
        pending = pending.where(Job.dedupe_key != finishing)
    if not session.scalar(pending):
        jobs.enqueue(session, "billing.disburse", {"period": period}, dedupe_key=f"disburse:{period}")


def _active_in(start: datetime, end: datetime) -> Any:
    """Subscriptions active at some time in [start, end)."""
    return (Subscription.started_at < end) & (Subscription.ended_at.is_(None) | (Subscription.ended_at > start))


def _epoch(instant: datetime) -> int:
    return int(instant.timestamp())


_ROLLUP_COLUMNS = (
    "period, buyer_id, subscription_id, hour, last_hour, dimension, resource, quantity, records, late, tier"
)
# Instance-hours keep their instance (the explanation lists runs); other usage is summed across resources.
_RESOURCE = "CASE WHEN dimension LIKE 'hourly:%' THEN resource ELSE '' END"


ROLLUP_SLICES = max(2, os.cpu_count() or 1)


def _rollup(
    engine: Engine, sql: Any, tiers: Sequence[Tier], slices: Sequence[tuple[datetime, datetime]]
) -> list[dict[str, Any]]:
    """Run the rollup over each slice of the month at once, each on its own read-only connection (the
    database works on every slice at once; SQLite readers never wait). Records are committed data, and a
    record that arrives for this month from now on is carried to the next one, so the slices see exactly
    the month's usage. A group that spans slices becomes a row per slice, which rates the same: rating
    sums rows."""
    if not slices:
        return []

    def one(bounds: tuple[datetime, datetime]) -> list[dict[str, Any]]:
        # Closing the connection rolls its read transaction back, the temporary table with it.
        with engine.execution_options(agora_deferred=True).connect() as connection:
            if connection.dialect.name == "postgresql":  # hash the month's groups in memory, not on disk
                connection.execute(text("SET LOCAL work_mem = '256MB'"))
            if tiers:
                _load_tiers(connection, tiers)
            result = connection.execute(sql, {"start": _epoch(bounds[0]), "end": _epoch(bounds[1])})
            return [dict(row._mapping) for row in result.all()]

    with ThreadPoolExecutor(max_workers=len(slices)) as pool:
        return [row for part in pool.map(one, slices) for row in part]


def _rollup_sql(grains: dict[str, list[int]], *, graduate: bool, only: Sequence[int] | None = None) -> Any:
    """The month's usage summed per subscription at its grain (`rating.grain`), in one pass. A subscription
    the close did not classify keeps the finest grain, an hour, which is always exact. With `graduate`,
    the tier periods of the items in `rollup_tiers` are then graduated and summed per tier, so a month of
    hourly tiers is a row per tier rather than one per hour. With `only`, these subscriptions' usage alone."""
    cases = []
    for grain, width in (("month", None), ("day", 86400)):
        if grains.get(grain):
            ids = ", ".join(str(int(i)) for i in grains[grain])
            bucket = "0" if width is None else f"period_start - (period_start % {width})"
            cases.append(f"WHEN subscription_id IN ({ids}) THEN {bucket}")
    bucket = (
        f"CASE {' '.join(cases)} ELSE period_start - (period_start % 3600) END"
        if cases
        else "period_start - (period_start % 3600)"
    )
    chosen = f"AND subscription_id IN ({', '.join(str(int(i)) for i in only)}) " if only else ""
    # Grouped in this key order, the database sorts the month fastest; the buyer is the subscription's.
    summed = (
        "SELECT subscription_id, MIN(period_start) AS first_start, MAX(period_start) AS last_start, dimension, "
        f"{_RESOURCE} AS resource, SUM(quantity) AS quantity, COUNT(*) AS records FROM usage_records "
        f"WHERE period_start >= :start AND period_start < :end AND billed_in IS NULL AND voided_at IS NULL {chosen}"
        f"GROUP BY subscription_id, dimension, {bucket}, {_RESOURCE}"
    )
    if not graduate:
        return text(
            "SELECT subscription_id, first_start AS hour, last_start AS last_hour, dimension, resource, quantity, "
            f"records, NULL AS tier FROM ({summed}) AS g"
        )
    # PRC-13 per tier period: the units above the tier's lower bound, up to its upper bound.
    units = (
        "CASE WHEN t.tier IS NULL THEN g.quantity WHEN g.quantity <= t.lower_bound THEN 0 "
        "WHEN t.upper_bound IS NULL OR g.quantity <= t.upper_bound THEN g.quantity - t.lower_bound "
        "ELSE t.upper_bound - t.lower_bound END"
    )
    return text(
        "SELECT g.subscription_id, MIN(g.first_start) AS hour, "
        f"MAX(g.last_start) AS last_hour, g.dimension, g.resource, SUM({units}) AS quantity, "
        f"SUM(CASE WHEN t.tier IS NULL THEN g.records ELSE 1 END) AS records, t.tier FROM ({summed}) AS g "
        "LEFT JOIN rollup_tiers AS t ON t.subscription_id = g.subscription_id AND t.dimension = g.dimension "
        # A row's first start names its bucket (buckets are disjoint); tier rows sum over all of them.
        "GROUP BY g.subscription_id, g.dimension, g.resource, t.tier, "
        "CASE WHEN t.tier IS NULL THEN g.first_start ELSE 0 END"
    )


def _load_tiers(connection: Connection, tiers: Sequence[tuple[int, str, int, int, int | None]]) -> None:
    """The tier bounds the rollup graduates by, in a temporary table of this connection's transaction."""
    on_commit = " ON COMMIT DROP" if connection.dialect.name == "postgresql" else ""
    connection.execute(
        text(
            "CREATE TEMPORARY TABLE rollup_tiers (subscription_id INTEGER NOT NULL, dimension VARCHAR(160) NOT NULL, "
            "tier INTEGER NOT NULL, lower_bound BIGINT NOT NULL, upper_bound BIGINT, "
            f"PRIMARY KEY (subscription_id, dimension, tier)){on_commit}"
        )
    )
    connection.execute(
        text("INSERT INTO rollup_tiers VALUES (:subscription_id, :dimension, :tier, :lower_bound, :upper_bound)"),
        [
            {"subscription_id": s, "dimension": d, "tier": n, "lower_bound": lower, "upper_bound": upper}
            for s, d, n, lower, upper in tiers
        ],
    )
    if connection.dialect.name == "postgresql":
        # A temporary table has no statistics until analysed: the planner took its thousands of rows for a
        # few hundred and sorted the month's groups to merge-join them; counted, it hashes them instead.
        connection.execute(text("ANALYZE rollup_tiers"))


# Usage of earlier months stored after they closed, carried into this one: per hour (BIL-03).
_LATE_ROLLUP = text(
    f"INSERT INTO usage_rollups ({_ROLLUP_COLUMNS}) "
    f"SELECT :period, MAX(buyer_id), subscription_id, MIN(period_start), MAX(period_start), dimension, "
    f"{_RESOURCE}, SUM(quantity), COUNT(*), :late, NULL FROM usage_records "
    "WHERE billed_in = :billed_in AND voided_at IS NULL "
    f"GROUP BY subscription_id, period_start - (period_start % 3600), dimension, {_RESOURCE}"
)


BUYERS_PER_JOB = 200  # per-buyer work, batched so a month of 10,000 buyers is 50 jobs, not 10,000


@jobs.handler(INVOICE_JOB)
def invoice_buyers(session: Session, payload: dict[str, Any]) -> None:
    period, buyer_ids = payload["period"], payload["buyer_ids"]
    monthly_invoices(session, buyer_ids, period)
    pay_sellers_once_invoiced(session, period, finishing=invoice_key(period, buyer_ids[0]))


def monthly_invoice(session: Session, buyer_id: int, period: str) -> Invoice | None:
    """The buyer's invoice for `period`: one line per product × charge (BIL-01). None when nothing is owed
    and nothing was used."""
    invoice_id = monthly_invoices(session, [buyer_id], period).get(buyer_id)
    return None if invoice_id is None else session.get_one(Invoice, invoice_id)


def monthly_invoices(session: Session, buyer_ids: Sequence[int], period: str) -> dict[int, int]:
    """`monthly_invoice` for many buyers, reading what they share once (each buyer's invoice is still its
    own, with its own unique source, so a repeated or resumed run writes nothing twice): buyer → invoice id.
    Core rows throughout, not ORM objects: a month's close runs this for every buyer."""
    start, end = month_bounds(period)
    sources = {f"monthly:{buyer_id}:{period}": buyer_id for buyer_id in buyer_ids}
    session.flush()  # statements on the connection do not flush what the session holds, as its queries do
    connection = session.connection()
    found = connection.execute(select(Invoice.source, Invoice.id).where(among(session, Invoice.source, sources)))
    done = {sources[source]: invoice_id for source, invoice_id in found}
    todo = [buyer_id for buyer_id in buyer_ids if buyer_id not in done]
    if not todo:
        return done
    usage: dict[int, list[rating.Usage]] = defaultdict(list)
    late: dict[int, list[rating.Usage]] = defaultdict(list)
    instants: dict[int, datetime] = {}
    rows = connection.execute(
        select(
            UsageRollup.subscription_id,
            UsageRollup.hour,
            UsageRollup.last_hour,
            UsageRollup.dimension,
            UsageRollup.resource,
            UsageRollup.quantity,
            UsageRollup.records,
            UsageRollup.late,
            UsageRollup.tier,
        ).where(
            UsageRollup.period == period,
            UsageRollup.buyer_id.between(min(todo), max(todo)),  # an index range, whatever the statistics say
            among(session, UsageRollup.buyer_id, todo),
        )
    )
    for subscription_id, hour, last_hour, dimension, resource, quantity, records, is_late, tier in rows.all():
        first = instants.get(hour)
        if first is None:
            first = instants[hour] = from_epoch(hour)
        last = instants.get(last_hour)
        if last is None:
            last = instants[last_hour] = from_epoch(last_hour)
        (late if is_late else usage)[subscription_id].append(
            rating.Usage(first, dimension, quantity, resource, last, records, tier)
        )
    subscriptions = connection.execute(
        select(*TERMS_COLUMNS)
        .where(
            among(session, Subscription.buyer_id, todo),
            _active_in(start, end) | among(session, Subscription.id, [*usage, *late]),
        )
        .order_by(Subscription.id)
    ).all()
    catalog = _Terms(session, subscriptions)
    lines_of: dict[int, list[Line]] = defaultdict(list)
    for subscription in subscriptions:
        terms = catalog.of(subscription)
        lines_of[subscription.buyer_id] += rating.rate(terms, usage.get(subscription.id, []), period)
        if subscription.id in late:
            lines_of[subscription.buyer_id] += rating.rate_late(terms, late[subscription.id], period)
    issued = []
    for buyer_id in todo:
        lines = sorted(
            lines_of.get(buyer_id, []),
            key=lambda line: (line.product, line.charge, line.instance_type or "", line.dimension or ""),
        )
        if lines:
            issued.append((f"monthly:{buyer_id}:{period}", buyer_id, lines))
    created = _issue_many(session, issued, "monthly", end, period)
    for invoice in created:
        done[invoice.buyer_id] = invoice.id
    from agora.billing import automatic  # imports this module

    automatic.after_monthly_invoices(session, created)  # BIL-05 preview refunds, RFD-02 metering errors
    return done


class Issued(NamedTuple):
    """An invoice just written by `_issue_many` (its row, without loading it back as an object)."""

    id: int
    source: str
    buyer_id: int
    period: str
    issued_at: datetime


def _issue_many(
    session: Session, invoices: Sequence[tuple[str, int, Sequence[Line]]], kind: str, issued_at: datetime, period: str
) -> list[Issued]:
    """Insert many invoices and their lines in two statements (a month closes 10,000 buyers at a time)."""
    if not invoices:
        return []
    session.flush()  # the subscriptions, purchases and charges the lines name
    now = clock.now()
    rows = [
        {
            "source": source,
            "buyer_id": buyer_id,
            "kind": kind,
            "period": period,
            "state": "finalized",
            "currency": "USD",
            "total_cents": sum(to_cents(line.amount) for line in lines),  # BIL-04: the sum of rounded lines
            "issued_at": issued_at,
            "created_at": now,
        }
        for source, buyer_id, lines in invoices
    ]
    connection = session.connection()
    written = dict(insert_rows(connection, INVOICES, rows, returning=(INVOICES.c.source, INVOICES.c.id)))
    codes = {line.product for _, _, lines in invoices for line in lines}
    sellers = select(Product.id, Product.code, Product.seller_id).where(among(session, Product.code, codes))
    products = {code: (product_id, seller_id) for product_id, code, seller_id in connection.execute(sellers)}
    line_rows = [
        {
            "invoice_id": written[source],
            "position": position,
            "subscription_id": line.subscription_id,
            "product_id": products[line.product][0],
            "seller_id": products[line.product][1],
            "category": line.category,
            "charge": line.charge,
            "instance_type": line.instance_type,
            "dimension": line.dimension,
            "quantity": rating.decimal_text(line.quantity),
            "unit_price": rating.decimal_text(line.unit_price),
            "amount_cents": to_cents(line.amount),
            "explain": line.explain,
        }
        for source, _, lines in invoices
        for position, line in enumerate(lines)
    ]
    insert_rows(connection, LINES, line_rows)
    return [Issued(written[source], source, buyer_id, period, issued_at) for source, buyer_id, _ in invoices]


# What rating needs of a subscription: the ORM object, or these columns of it read as a row.
TERMS_COLUMNS = (
    Subscription.id,
    Subscription.buyer_id,
    Subscription.product_id,
    Subscription.offer_id,
    Subscription.started_at,
    Subscription.ended_at,
    Subscription.trial_ends_at,
)
Terms = Subscription | AnyRow


class _Terms:
    """Price versions, offers and annual purchases of a batch of subscriptions, each read once."""

    def __init__(self, session: Session, subscriptions: Sequence[Terms]) -> None:
        self.session = session
        ids = [s.id for s in subscriptions]
        self.products = {
            p.id: p
            for p in session.scalars(select(Product).where(Product.id.in_({s.product_id for s in subscriptions})))
        }
        self.versions: dict[int, list[Version]] = {}
        self.annual: dict[int, list[rating.Annual]] = defaultdict(list)
        for a in session.scalars(select(AnnualPurchase).where(among(session, AnnualPurchase.subscription_id, ids))):
            self.annual[a.subscription_id].append(rating.Annual(a.instance_type, a.quantity, a.starts_at, a.ends_at))

    def of(self, subscription: Terms) -> rating.Subscription:
        product = self.products[subscription.product_id]
        if subscription.offer_id is not None:
            offer = self.session.get_one(Offer, subscription.offer_id)
            price_versions = [Version(0, offer.accepted_at or subscription.started_at, offer.pricing)]
        else:
            if product.id not in self.versions:
                self.versions[product.id] = [
                    Version(v.number, v.noticed_at, v.pricing) for v in versions(self.session, product)
                ]
            price_versions = self.versions[product.id]
        return rating.Subscription(
            id=subscription.id,
            product=product.code,
            started_at=subscription.started_at,
            ended_at=subscription.ended_at,
            versions=price_versions,
            trial_ends_at=subscription.trial_ends_at,
            annual=self.annual.get(subscription.id, []),
        )


def rating_terms(session: Session, subscriptions: Sequence[Subscription]) -> dict[int, rating.Subscription]:
    """The rating core's view of these subscriptions, as the month's close builds it (to re-rate a month)."""
    catalog = _Terms(session, subscriptions)
    return {subscription.id: catalog.of(subscription) for subscription in subscriptions}


# --- reading invoices back -----------------------------------------------------------------------------------


def invoices_json(session: Session, invoices: Sequence[Invoice | AnyRow]) -> list[dict[str, Any]]:
    """Many invoices (objects, or rows of `INVOICE_COLUMNS`) in the `invoice_json` shape, their lines read
    in one query as rows."""
    lines: dict[int, list[tuple[Any, str]]] = defaultdict(list)
    query = (
        select(*LINE_COLUMNS, Product.code)
        .join(Product, Product.id == InvoiceLine.product_id)
        .where(among(session, InvoiceLine.invoice_id, [invoice.id for invoice in invoices]))
        .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
    )
    for line in session.execute(query):
        lines[line.invoice_id].append((line, line.code))
    buyers = select(Buyer.id, Buyer.account).where(among(session, Buyer.id, {i.buyer_id for i in invoices}))
    accounts = {buyer_id: account for buyer_id, account in session.execute(buyers)}
    return [
        _invoice_document(invoice, accounts[invoice.buyer_id], lines[invoice.id], invoice.total_cents)
        for invoice in invoices
    ]


# What an invoice document shows, read as rows rather than objects where many are shown at once.
INVOICE_COLUMNS = (
    Invoice.id,
    Invoice.buyer_id,
    Invoice.period,
    Invoice.kind,
    Invoice.state,
    Invoice.issued_at,
    Invoice.currency,
    Invoice.total_cents,
    Invoice.corrects_id,
)
LINE_COLUMNS = (
    InvoiceLine.invoice_id,
    InvoiceLine.category,
    InvoiceLine.charge,
    InvoiceLine.instance_type,
    InvoiceLine.dimension,
    InvoiceLine.quantity,
    InvoiceLine.unit_price,
    InvoiceLine.amount_cents,
    InvoiceLine.explain,
)


CATEGORIES = (rating.SOFTWARE, rating.INFRASTRUCTURE)
# The DESIGN.md shapes (`agora simulate --json`, `agora bill --json`): what the API adds is left out there.
DESIGN_LINE_KEYS = ("product", "charge", "instance_type", "dimension", "quantity", "unit_price", "amount", "explain")
SIMULATE_KEYS = ("buyer", "period", "kind", "currency", "total", "lines")
BILL_KEYS = ("id", "buyer", "period", "kind", "state", "issued_at", "currency", "total", "lines")


def design_shape(document: dict[str, Any], keys: Sequence[str] = SIMULATE_KEYS) -> dict[str, Any]:
    """An invoice document cut down to a DESIGN.md output shape."""
    shaped = {key: document[key] for key in keys}
    shaped["lines"] = [{key: line[key] for key in DESIGN_LINE_KEYS} for line in document["lines"]]
    return shaped


def _invoice_document(
    invoice: Invoice | AnyRow, account: str, rows: Sequence[tuple[InvoiceLine | AnyRow, str]], total_cents: int
) -> dict[str, Any]:
    """Each line says whether it is a software or an infrastructure charge, and `subtotals` sums each
    apart (LST-10)."""
    subtotals = dict.fromkeys(CATEGORIES, 0)
    for line, _ in rows:
        subtotals[line.category] += line.amount_cents
    return {
        "id": invoice.id,
        "buyer": account,
        "period": invoice.period,
        "kind": invoice.kind,
        "state": invoice.state,
        "issued_at": invoice.issued_at.isoformat().replace("+00:00", "Z"),
        "currency": invoice.currency,
        "total": f"{from_cents(total_cents):.2f}",
        "subtotals": {category: f"{from_cents(cents):.2f}" for category, cents in subtotals.items()},
        "corrects": invoice.corrects_id,
        "lines": [
            {
                "product": code,
                "charge": line.charge,
                "category": line.category,
                "instance_type": line.instance_type,
                "dimension": line.dimension,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": f"{from_cents(line.amount_cents):.2f}",
                "explain": line.explain,
            }
            for line, code in rows
        ],
    }


def invoice_json(session: Session, invoice: Invoice, *, seller_id: int | None = None) -> dict[str, Any]:
    """The DESIGN.md invoice shape. A seller sees only its own lines (and their total)."""
    query = select(InvoiceLine, Product.code).join(Product, Product.id == InvoiceLine.product_id)
    query = query.where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position)
    if seller_id is not None:
        query = query.where(InvoiceLine.seller_id == seller_id)
    rows = session.execute(query).all()
    buyer = session.get_one(Buyer, invoice.buyer_id)
    total = invoice.total_cents if seller_id is None else sum(line.amount_cents for line, _ in rows)
    return _invoice_document(invoice, buyer.account, [(line, code) for line, code in rows], total)
