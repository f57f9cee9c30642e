"""The one ingestion service every front door calls: native batches, AWS MeterUsage/BatchMeterUsage,
Alibaba PushMeteringData, and the platform's own measurements (MTR-01…06).

`ingest` checks every record first (MTR-03/04, in `checks`), settles duplicates inside the batch, then
writes the accepted ones with multi-row `INSERT … ON CONFLICT DO NOTHING`; the unique key is MTR-05, so a
resend that raced another is caught by the database, not by a prior read. Records are durable when the
caller's unit of work commits, which every front door does before it answers; `ingest_in`, the hot path,
commits itself, holding the write lock for the insert alone. Records and outcomes are in `records`, usage
read back in `usage`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agora import clock, observability
from agora.auth import Principal
from agora.billing.rating import month_bounds, next_period, period_of
from agora.bulk import array_literal
from agora.config import get_settings
from agora.db import Database
from agora.metering.checks import (
    CustomerMemory,
    MeteredProduct,
    cached_product,
    check_product,
    check_record,
    customer_for,
    customers_of,
    not_own_customer,
    not_subscribed,
)
from agora.metering.records import (
    MAX_PERIOD,
    USAGE,
    WINDOW,
    Allocation,
    BatchRefused,
    Outcome,
    Problem,
    Reader,
    Reading,
    Source,
    Status,
    connection_of,
    epoch,
    epoch_micros,
    from_epoch,
    iso,
    new_record_ids,
    refused,
)
from agora.models import BillingPeriod, Role, Subscription, UsageDaySum

# --- ingestion ------------------------------------------------------------------------------------------


def ingest(
    session: Session,
    principal: Principal | None,
    readings: Sequence[Reading],
    *,
    region: str | None = None,
    source: Source,
    fatal: frozenset[Problem] = frozenset(),
    check_window: bool = True,
    kinds: frozenset[str] | None = None,
) -> list[Outcome]:
    """Check and store `readings`; one outcome per reading, in order.

    `principal` is the seller or buyer sending (None for the platform). `region` is the region the
    request was addressed to (MTR-03). If a check refuses a reading for a problem in `fatal`, nothing is
    stored and `BatchRefused` names the first such reading; duplicates are settled by the insert itself
    and come back as outcomes, so a caller that refuses a whole batch for them rolls its unit back.
    `check_window=False` is for the platform's own measurements: the 6-hour window (MTR-04) is a rule
    for records *sent*, and a run stopped after a day writes its early hours at stop. `kinds`, when given,
    are the product kinds the front door meters (`SELLER_REPORTED` for BatchMeterUsage).
    """
    try:
        prepared = prepare(
            session,
            principal,
            readings,
            region=region,
            source=source,
            fatal=fatal,
            check_window=check_window,
            kinds=kinds,
        )
    except BatchRefused as refusal:
        observability.count_refused_batch(source.value, str(refusal.outcome.problem), len(readings))
        raise
    outcomes = store(session, prepared)
    refusing = next((o.problem for o in outcomes if o.problem is not None and o.problem in fatal), None)
    if refusing is not None:  # the caller refuses the batch for it and rolls back (see above)
        observability.count_refused_batch(source.value, str(refusing), len(readings))
    else:
        observability.count_outcomes(source.value, outcomes)
    return outcomes


@dataclass
class Prepared:
    """Checked readings, ready to store: the outcomes known so far (None where the insert decides) and the
    rows to insert. `prepare` only reads, so a front door may run it outside the write transaction."""

    readings: Sequence[Reading]
    outcomes: list[Outcome | None]
    rows: list[dict[str, Any]]
    row_index: list[int]
    repeats: list[tuple[int, tuple[int, int, str, str]]]  # the same key again inside the batch


def prepare(
    session: Reader,
    principal: Principal | None,
    readings: Sequence[Reading],
    *,
    region: str | None = None,
    source: Source,
    fatal: frozenset[Problem] = frozenset(),
    check_window: bool = True,
    kinds: frozenset[str] | None = None,
    memory: CustomerMemory | None = None,
    recall: bool = True,
) -> Prepared:
    """Every check of `ingest` (MTR-03/04, allocations, customers, client tokens); writes nothing. With
    `memory` (`_ingest_in`), a remembered customer's records are checked against its subscription by the
    insert instead (`checked_at`); `recall` false reads every customer from the database and remembers it."""
    now = clock.now()
    region = region or get_settings().region
    products: dict[str, MeteredProduct | None] = {}
    for reading in readings:
        if reading.product_code not in products:
            products[reading.product_code] = cached_product(session, reading.product_code)
    customers = customers_of(session, principal, readings, products, memory, recall=recall)
    tokens = _by_client_token(session, readings)

    product_problems = {
        code: check_product(code, product, principal, region, kinds) for code, product in products.items()
    }

    prepared = Prepared(readings, [], [], [], [])
    outcomes, rows, row_index = prepared.outcomes, prepared.rows, prepared.row_index
    seen: set[tuple[int, int, str, str]] = set()
    received = epoch(now)
    source_value = source.value
    buyer = principal is not None and principal.role is Role.BUYER
    record_ids = new_record_ids(len(readings))  # one call for the randomness; a refused record's id goes unused
    for index, reading in enumerate(readings):
        product = products[reading.product_code]
        outcome = product_problems[reading.product_code]
        customer = None
        if outcome is None:
            assert product is not None
            outcome = check_record(reading, product, principal, source, now, check_window)
        checked_at = None
        if outcome is None:
            assert product is not None
            customer = customer_for(reading, product, principal, customers)
            if customer is not None and customer.remembered:  # its current term is checked by the insert
                checked_at = epoch_micros(reading.timestamp)
            elif customer is None or not (
                customer.started_at <= reading.timestamp
                and (customer.ended_at is None or reading.timestamp < customer.ended_at)
            ):
                outcome = refused(Problem.NOT_SUBSCRIBED, not_subscribed(reading))
            elif buyer:
                outcome = not_own_customer(reading, customer)
        if outcome is not None:
            if outcome.problem in fatal:
                raise BatchRefused(index, outcome)
            outcomes.append(outcome)
            continue
        assert product is not None and customer is not None
        start = epoch(reading.timestamp)
        if not reading.exact:  # the UTC hour (MTR-01), whatever offset the timestamp was given with (+05:30)
            start -= start % 3600
        key = (start, customer.subscription_id, reading.dimension, reading.resource)
        if reading.client_token is not None and reading.client_token in tokens:
            outcomes.append(_same_token(tokens[reading.client_token], key, reading))
            continue
        outcomes.append(None)
        if key in seen:
            prepared.repeats.append((index, key))
            continue
        seen.add(key)
        row_index.append(index)
        rows.append(
            {
                "record_id": record_ids[index],
                "period_start": start,
                "period_end": epoch(reading.period_end) if reading.period_end else None,
                "subscription_id": key[1],
                "product_id": product.id,
                "buyer_id": customer.buyer_id,
                "dimension": reading.dimension,
                "resource": reading.resource,
                "quantity": reading.quantity,
                "source": source_value,
                "received_at": received,
                "allocations": None if reading.allocations is None else _allocations_json(reading.allocations),
                "client_token": reading.client_token,
                "checked_at": checked_at,
            }
        )
    if any(row["period_end"] is not None for row in rows):
        _refuse_overlaps(session, prepared, fatal)
    return prepared


_Series = tuple[int, str, str]  # (subscription, dimension, resource): one customer's measurements of one thing


def _refuse_overlaps(session: Reader, prepared: Prepared, fatal: frozenset[Problem]) -> None:
    """Intervals (Alibaba's StartTime–EndTime) of one customer, dimension and resource must not overlap: usage
    of a stretch of time is reported once (MTR-05). An interval starting where a stored one starts is settled
    by the unique key instead (the same interval again is a duplicate; another end or value, a conflict).
    Checked with one query per batch, on the partial index of interval records, which hourly records (every
    other front door) are not in. Within a batch, the later of two overlapping intervals is refused."""
    rows, row_index = prepared.rows, prepared.row_index
    intervals = [row for row in rows if row["period_end"] is not None]
    taken = _stored_intervals(session, intervals)
    kept: list[dict[str, Any]] = []
    kept_index: list[int] = []
    dropped: dict[tuple[int, int, str, str], Outcome] = {}
    for row, index in zip(rows, row_index, strict=True):
        start, end = row["period_start"], row["period_end"]
        if end is not None:
            series = taken.setdefault((row["subscription_id"], row["dimension"], row["resource"]), [])
            clash = next((i for i in series if i[0] != start and i[0] < end and start < i[1]), None)
            if clash is not None:
                where = "earlier in this batch" if clash[2] else "already received"
                outcome = refused(
                    Problem.OVERLAPPING_PERIOD,
                    f"the period {iso(from_epoch(start))}–{iso(from_epoch(end))} of {row['dimension']} overlaps "
                    f"{iso(from_epoch(clash[0]))}–{iso(from_epoch(clash[1]))}, {where}; each stretch of time "
                    "is reported once [MTR-05]",
                )
                if outcome.problem in fatal:
                    raise BatchRefused(index, outcome)
                prepared.outcomes[index] = outcome
                dropped[_key(row)] = outcome
                continue
            series.append((start, end, True))
        kept.append(row)
        kept_index.append(index)
    prepared.rows, prepared.row_index = kept, kept_index
    for index, key in [repeat for repeat in prepared.repeats if repeat[1] in dropped]:
        prepared.outcomes[index] = dropped[key]
    prepared.repeats = [repeat for repeat in prepared.repeats if repeat[1] not in dropped]


def _stored_intervals(session: Reader, rows: list[dict[str, Any]]) -> dict[_Series, list[tuple[int, int, bool]]]:
    """Stored intervals of these rows' series that may overlap them (none is longer than `MAX_PERIOD`)."""
    c = USAGE.c
    subscriptions = sorted({row["subscription_id"] for row in rows})
    if connection_of(session).dialect.name == "postgresql":
        # Two pushes for one customer queue here until the first commits, so neither misses the other's
        # intervals (SQLite's units of work are serial already). NO KEY UPDATE leaves inserts of usage alone.
        session.execute(
            select(Subscription.id).where(Subscription.id.in_(subscriptions)).with_for_update(key_share=True)
        )
    first = min(row["period_start"] for row in rows)
    found = session.execute(
        select(c.subscription_id, c.dimension, c.resource, c.period_start, c.period_end).where(
            c.period_end.is_not(None),
            c.subscription_id.in_(subscriptions),
            c.dimension.in_(sorted({row["dimension"] for row in rows})),
            c.period_start > first - int(MAX_PERIOD.total_seconds()),
            c.period_start < max(row["period_end"] for row in rows),
            c.period_end > first,
        )
    )
    taken: dict[_Series, list[tuple[int, int, bool]]] = {}  # (start, end, from this batch)
    for subscription_id, dimension, resource, start, end in found:
        taken.setdefault((subscription_id, dimension, resource), []).append((start, end, False))
    return taken


def store(session: Session, prepared: Prepared) -> list[Outcome]:
    """Insert the prepared rows and settle every outcome; the caller commits."""
    outcomes = settle(prepared, write(session, prepared), partial(_existing, session))
    return [outcome for outcome in outcomes if outcome is not None]  # no customer remembered: all settled


def write(session: Reader, prepared: Prepared, chunks: list[_Chunk] | None = None) -> set[str]:
    """Insert the prepared rows, skipping keys already stored, and carry those of a closed month (BIL-03):
    the record ids written. The part of ingestion that holds the write lock, so it does no more than that;
    `chunks` are the statement parameters, built beforehand by a caller that can (`insert_chunks`)."""
    if connection_of(session).dialect.name == "postgresql":
        stored = _insert_postgres(session, prepared.rows)
    else:
        stored = _insert(session, chunks if chunks is not None else insert_chunks(prepared.rows))
    _carry_written(session, prepared.rows, stored)
    return stored


def _carry_written(session: Reader, rows: list[dict[str, Any]], stored: set[str]) -> None:
    if not rows:
        return
    now = clock.now()
    oldest = min(row["period_start"] for row in rows)  # records are mostly this hour's: then nothing more to do
    month = epoch(month_bounds(period_of(now))[0])
    if oldest < month:
        earlier = [row for row in rows if row["period_start"] < month and row["record_id"] in stored]
        if earlier:  # a month may have closed since these hours: they are then billed in the next open one
            carry_late(session, earlier)
    if oldest < summable_before(now):
        touch_days(session, [row["period_start"] for row in rows if row["record_id"] in stored], now)


DAY = 86400


def summable_before(now: datetime) -> int:
    """Records starting before this instant (epoch seconds) are in days `billing.sum_day` may have summed:
    days the metering window (MTR-04) has passed over entirely."""
    cutoff = epoch(now) - int(WINDOW.total_seconds()) - DAY
    return cutoff - cutoff % DAY + DAY


ALONE_MARGIN = timedelta(minutes=1)


def insert_alone(rows: list[dict[str, Any]], now: datetime) -> bool:
    """Whether storing these rows is their insert alone, with nothing to carry or mark (`_carry_written`): none
    starts before this month, nor in a day `billing.sum_day` may have summed. The usual batch, this hour's
    records. A minute before a month ends the answer is no, so that a month turning between this answer and the
    insert still finds its late records carried (its close waits for the metering window anyway)."""
    oldest = min(row["period_start"] for row in rows)
    return oldest >= epoch(month_bounds(period_of(now + ALONE_MARGIN))[0]) and oldest >= summable_before(now)


def touch_days(session: Reader, starts: Sequence[int], now: datetime) -> None:
    """Records of these starts were just stored or voided: a day among them that may already have been
    summed is marked dirty, so that a month's close sums it again from its records. A day not summed yet
    gets its mark now and keeps it: whichever of the two commits first, the day is never taken as clean."""
    summable = summable_before(now)
    days = {start - start % DAY for start in starts if start < summable}
    if days:
        mark_days(session, days, dirty=True)


def mark_days(session: Reader, days: Iterable[int], *, dirty: bool) -> None:
    """Record days as summed (`dirty` false: a day already marked keeps its mark) or as dirty."""
    table: Table = UsageDaySum.__table__  # type: ignore[assignment]
    build = postgresql.insert if connection_of(session).dialect.name == "postgresql" else sqlite.insert
    statement = build(table).values([{"day": day, "dirty": dirty} for day in sorted(days)])
    if dirty:
        statement = statement.on_conflict_do_update(index_elements=["day"], set_={"dirty": True})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["day"])
    session.execute(statement)


@dataclass(eq=False)
class _Write:
    """One request's insert, as a job of the group commit (`Database.write_together`). On PostgreSQL the
    inserts of a group are one statement (`together`): one round trip and one plan for all their rows. When
    every job of a group is `one_statement` (its rows need nothing but the insert: `insert_alone`), that
    statement runs in autocommit, its own transaction: no BEGIN and COMMIT round trips."""

    prepared: Prepared
    chunks: list[_Chunk] | None = None
    one_statement: bool = False

    def __call__(self, connection: Connection) -> set[str]:
        if self.one_statement:
            return _insert_postgres(connection, self.prepared.rows)
        return write(connection, self.prepared, self.chunks)

    @staticmethod
    def together(writes: list[_Write], connection: Connection) -> list[set[str]]:
        if connection.dialect.name != "postgresql" or len(writes) == 1:
            return [w(connection) for w in writes]
        stored = _insert_postgres(connection, [row for w in writes for row in w.prepared.rows])
        for w in writes:
            if not w.one_statement:
                _carry_written(connection, w.prepared.rows, stored)
        return [stored] * len(writes)  # record ids are unique: each request finds its own in the one set


_Existing = Callable[[list[dict[str, Any]]], dict[tuple[int, int, str, str], tuple[int, str, int | None]]]


def settle(prepared: Prepared, stored: set[str], existing: _Existing) -> list[Outcome | None]:
    """Every outcome, once the rows are written: `stored` are the ids written, and `existing` reads back the
    stored records of the keys the insert skipped (asked only when there are such keys). None for a record
    of a remembered customer that was not written, and for the same record again in the batch: the insert
    may have turned it away for its subscription's current term, which is checked before any duplicate, so
    the caller checks those again from the database (`_ingest_in`)."""
    rows, row_index, readings = prepared.rows, prepared.row_index, prepared.readings
    outcomes = list(prepared.outcomes)
    settled: dict[tuple[int, int, str, str], tuple[int, str, int | None]] = {}
    clashes = []
    for row, index in zip(rows, row_index, strict=True):
        if row["record_id"] in stored:
            outcomes[index] = Outcome(Status.ACCEPTED, row["record_id"])
            settled[_key(row)] = (row["quantity"], row["record_id"], row["period_end"])
        elif row["checked_at"] is None:
            clashes.append((row, index))
    if clashes:  # already stored by an earlier request (or a concurrent one)
        settled.update(existing([row for row, _ in clashes]))
        for row, index in clashes:
            if _key(row) in settled:
                outcomes[index] = _compare(*settled[_key(row)], readings[index])
            else:  # its client token was taken by a concurrent request for another record
                outcomes[index] = refused(Problem.TOKEN_CONFLICT, _TOKEN_REUSED)
    for index, key in prepared.repeats:
        outcomes[index] = _compare(*settled[key], readings[index]) if key in settled else None
    return outcomes


_TOKEN_REUSED = "this client token was already used for a different record"


# --- late usage (BIL-03) ---------------------------------------------------------------------------------

_PERIODS_LOCK = 0x4147_4F52_4101  # PostgreSQL advisory lock between closing a month and storing its usage


def periods_lock(session: Reader, *, shared: bool) -> None:
    """Closing a month takes this exclusively and storing usage of an earlier month takes it shared, so
    every record of a month is either in that month's close or finds the month closed and is carried (on
    PostgreSQL; SQLite runs one writer at a time, which gives the same). Held until the commit."""
    if connection_of(session).dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(:key)"), {"key": _PERIODS_LOCK})


def carry_late(session: Reader, rows: Sequence[dict[str, Any]]) -> None:
    """Records just stored for an earlier month: those whose month has closed are billed in the first
    open month after it (`billed_in`); the others wait for their own month's close."""
    periods_lock(session, shared=True)
    months = {row["period_start"]: period_of(from_epoch(row["period_start"])) for row in rows}
    closed = set(session.scalars(select(BillingPeriod.period).where(BillingPeriod.period >= min(months.values()))))
    if not closed.intersection(months.values()):
        return
    c = USAGE.c
    statement = (
        update(USAGE)
        .where(
            c.period_start == bindparam("k_start"),
            c.subscription_id == bindparam("k_subscription"),
            c.dimension == bindparam("k_dimension"),
            c.resource == bindparam("k_resource"),
        )
        .values(billed_in=bindparam("k_billed_in"))
    )
    late = []
    for row in rows:
        own = months[row["period_start"]]
        if own in closed:
            target = next_period(own)
            while target in closed:
                target = next_period(target)
            late.append(
                {
                    "k_start": row["period_start"],
                    "k_subscription": row["subscription_id"],
                    "k_dimension": row["dimension"],
                    "k_resource": row["resource"],
                    "k_billed_in": target,
                }
            )
    connection_of(session).execute(statement, late)


def _by_client_token(session: Reader, readings: Sequence[Reading]) -> dict[str, tuple[Any, ...]]:
    tokens = {r.client_token for r in readings if r.client_token is not None}
    if not tokens:
        return {}
    c = USAGE.c
    rows = session.execute(
        select(
            c.client_token, c.period_start, c.subscription_id, c.dimension, c.resource, c.quantity, c.record_id
        ).where(c.client_token.in_(tokens))
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def _same_token(stored: tuple[Any, ...], key: tuple[int, int, str, str], reading: Reading) -> Outcome:
    """A retry with the same client token gets the first answer; another record with it is refused."""
    if tuple(stored[:4]) == key and stored[4] == reading.quantity:
        return Outcome(Status.DUPLICATE, stored[5], message="this client token's record was already received")
    return refused(Problem.TOKEN_CONFLICT, _TOKEN_REUSED)


def check_only(
    session: Reader, principal: Principal | None, reading: Reading, *, region: str | None, source: Source
) -> Outcome | None:
    """The checks of `ingest` without storing (AWS DryRun): None when the record would be accepted."""
    prepared = prepare(session, principal, [reading], region=region, source=source)
    outcome = prepared.outcomes[0]
    if outcome is None:  # the insert would decide: a record already stored for the key answers instead
        stored = _existing(session, prepared.rows).get(_key(prepared.rows[0]))
        outcome = _compare(*stored, reading) if stored is not None else None
    return outcome if outcome is not None and not outcome.ok else None


def ingest_in(
    db: Database,
    principal: Principal | None,
    readings: Sequence[Reading],
    *,
    region: str | None = None,
    source: Source,
    fatal: frozenset[Problem] = frozenset(),
    kinds: frozenset[str] | None = None,
) -> list[Outcome]:
    """`_ingest_in`, tried once more when its database connection turned out dead (the server restarted since
    the pool opened it; PostgreSQL's metering pool does not ping) or its insert lost a deadlock: a failed
    attempt wrote nothing, and one whose commit went through unanswered is found by the second try as its own
    duplicate (MTR-05), so the answer still names the record stored."""
    try:
        return _ingest_in(db, principal, readings, region=region, source=source, fatal=fatal, kinds=kinds)
    except Exception as error:
        if not db.worth_retrying(error):
            raise
    return _ingest_in(db, principal, readings, region=region, source=source, fatal=fatal, kinds=kinds)


def _ingest_in(
    db: Database,
    principal: Principal | None,
    readings: Sequence[Reading],
    *,
    region: str | None,
    source: Source,
    fatal: frozenset[Problem],
    kinds: frozenset[str] | None,
    recall: bool = True,
) -> list[Outcome]:
    """`ingest` in its own transactions, committed on return. The checks read a snapshot (on SQLite they never
    wait for a writer); only the insert holds the write lock, in one transaction with the inserts of the
    process's other requests arriving meanwhile (group commit). Everything else, the statement's parameters
    and the outcomes included, is done outside that lock: a request holding it competes for the interpreter
    with the process's other requests, and every writer of the database waits for it."""
    memory = None
    seller = principal is not None and principal.role is Role.SELLER
    if seller and db.dialect == "postgresql" and Problem.NOT_SUBSCRIBED not in fatal:
        memory = db.customer_memory  # a refusal for it is never the batch's: the insert may find it late
    try:
        with db.read_only() as connection:
            prepared = prepare(
                connection,
                principal,
                readings,
                region=region,
                source=source,
                fatal=fatal,
                kinds=kinds,
                memory=memory,
                recall=recall,
            )
    except BatchRefused as refusal:
        observability.count_refused_batch(source.value, str(refusal.outcome.problem), len(readings))
        raise
    if not prepared.rows:
        outcomes = [outcome for outcome in prepared.outcomes if outcome is not None]
        observability.count_outcomes(source.value, outcomes)
        return outcomes
    if db.dialect == "postgresql":
        stored = db.write_together(_Write(prepared, one_statement=insert_alone(prepared.rows, clock.now())))
    else:
        stored = db.write_together(_Write(prepared, insert_chunks(prepared.rows)))

    def existing(rows: list[dict[str, Any]]) -> dict[tuple[int, int, str, str], tuple[int, str, int | None]]:
        with db.read_only() as connection:  # committed: a skipped key's record is committed too
            return _existing(connection, rows)

    settled = settle(prepared, stored, existing)
    again = [index for index, outcome in enumerate(settled) if outcome is None]
    observability.count_outcomes(source.value, [outcome for outcome in settled if outcome is not None])
    if again:  # turned away by the insert: the subscription has ended (or changed) since it was remembered
        checked = _ingest_in(
            db,
            principal,
            [readings[index] for index in again],
            region=region,
            source=source,
            fatal=frozenset(),  # the rest of the batch is committed: a refusal now is this record's alone
            kinds=kinds,
            recall=False,  # read from the database, and remembered as read
        )
        for index, outcome in zip(again, checked, strict=True):
            settled[index] = outcome
    return [outcome for outcome in settled if outcome is not None]  # none is left None


def _key(row: dict[str, Any]) -> tuple[int, int, str, str]:
    return (row["period_start"], row["subscription_id"], row["dimension"], row["resource"])


def _compare(quantity: int, record_id: str, period_end: int | None, reading: Reading) -> Outcome:
    end = epoch(reading.period_end) if reading.period_end is not None else None
    if end != period_end:  # an interval (Alibaba) is its start and its end: another end is another record
        stored = iso(from_epoch(period_end)) if period_end is not None else "the hour's end"
        given = iso(from_epoch(end)) if end is not None else "the hour's end"
        return refused(
            Problem.DUPLICATE_CONFLICT,
            f"a record for {reading.dimension} starting {iso(reading.timestamp)} was already received for the"
            f" period ending {stored} (quantity {quantity}); it cannot be replaced with one ending {given} [MTR-05]",
        )
    if quantity == reading.quantity:
        return Outcome(Status.DUPLICATE, record_id, message="an identical record was already received")
    return refused(
        Problem.DUPLICATE_CONFLICT,
        f"a record for {reading.dimension} in this period was already received with quantity {quantity};"
        f" it cannot be replaced with {reading.quantity} [MTR-05]",
    )


_COLUMNS = (
    "record_id",
    "period_start",
    "period_end",
    "subscription_id",
    "product_id",
    "buyer_id",
    "dimension",
    "resource",
    "quantity",
    "source",
    "received_at",
    "allocations",
    "client_token",
)


@lru_cache(maxsize=64)
def _insert_sql(rows: int, placeholder: str) -> str:
    """One multi-row INSERT that skips stored keys. Built as text once per batch size: this statement is the
    metering hot path, and compiling it per request costs more than running it. No RETURNING: the driver
    would fetch its rows one step (and, in SQLite, one release of the interpreter lock) at a time while
    the write lock is held; the count of rows written tells whether all were."""
    row = "(" + ", ".join([placeholder] * len(_COLUMNS)) + ")"
    return f"INSERT INTO usage_records ({', '.join(_COLUMNS)}) VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING"


_ROW_VALUES = itemgetter(*_COLUMNS)
_ALLOCATIONS = _COLUMNS.index("allocations")
_CHUNK = 500  # rows per statement: well under SQLite's 32,766 bound parameters


class _Chunk(NamedTuple):
    record_ids: list[str]
    values: list[Any]  # every column of every row, in `_COLUMNS` order


def insert_chunks(rows: list[dict[str, Any]]) -> list[_Chunk]:
    """The insert's parameters, a statement's worth of rows at a time."""
    chunks = []
    for start in range(0, len(rows), _CHUNK):
        values: list[Any] = []
        for row in rows[start : start + _CHUNK]:
            row_values = _ROW_VALUES(row)
            if row_values[_ALLOCATIONS] is not None:
                row_values = (
                    *row_values[:_ALLOCATIONS],
                    json.dumps(row_values[_ALLOCATIONS]),
                    *row_values[_ALLOCATIONS + 1 :],
                )
            values.extend(row_values)
        chunks.append(_Chunk([row["record_id"] for row in rows[start : start + _CHUNK]], values))
    return chunks


def _insert(session: Reader, chunks: list[_Chunk]) -> set[str]:
    """Insert, skipping keys already stored; the record ids that were actually written. Run on the driver's
    cursor: for a batch of 25 records, SQLAlchemy's execution costs as much as SQLite's insert."""
    if not chunks:
        return set()
    connection = connection_of(session)
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    stored: set[str] = set()
    cursor = connection.connection.cursor()
    try:
        for ids, values in chunks:
            cursor.execute(_insert_sql(len(ids), placeholder), values)
            if cursor.rowcount == len(ids):
                stored.update(ids)
            else:  # some keys were stored already: which of these new ids made it in
                cursor.execute(_written_sql(len(ids), placeholder), ids)
                stored.update(found for (found,) in cursor.fetchall())
    finally:
        cursor.close()
    return stored


# PostgreSQL: the rows as one array per column, unnested. The statement's text is the same for any number of
# rows, so the driver parses it once and the server plans it once per connection (psycopg prepares a
# statement run five times); a VALUES list of 13 placeholders a row would be parsed by the driver on every
# call (it caches only short statements) and planned by the server every time. RETURNING names the rows
# written: on a conflict the others are found without a second query.
_UNNEST_TYPES = {
    "record_id": "text",
    "period_start": "int8",
    "period_end": "int8",
    "subscription_id": "int8",
    "product_id": "int8",
    "buyer_id": "int8",
    "dimension": "text",
    "resource": "text",
    "quantity": "int8",
    "source": "text",
    "received_at": "int8",
    "allocations": "text",
    "client_token": "text",
    "checked_at": "int8",  # not stored: see below
}
_UNNEST = (*_COLUMNS, "checked_at")
_OFTEN_NULL = frozenset({"period_end", "allocations", "client_token", "checked_at"})  # NULL in the usual batch
# A row whose customer came from `CustomerMemory` carries `checked_at`, its record's instant in microseconds,
# and is written only if its subscription covers that instant now (the second it began in counts, as in
# `checks.customers_of`); a row it turns away is neither stored nor found as a duplicate, and `_ingest_in`
# checks it again from the database. The others (NULL) were checked against a subscription just read.
_INSERT_POSTGRES = (
    f"INSERT INTO usage_records ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(f'{c}::jsonb' if c == 'allocations' else c for c in _COLUMNS)} "
    f"FROM unnest({', '.join(f'%s::{_UNNEST_TYPES[c]}[]' for c in _UNNEST)}) AS t({', '.join(_UNNEST)}) "
    "WHERE t.checked_at IS NULL OR EXISTS (SELECT FROM subscriptions s WHERE s.id = t.subscription_id "
    "AND s.product_id = t.product_id AND s.buyer_id = t.buyer_id "
    "AND date_trunc('second', s.started_at) <= timestamptz 'epoch' + t.checked_at * interval '1 microsecond' "
    "AND (s.ended_at IS NULL OR timestamptz 'epoch' + t.checked_at * interval '1 microsecond' < s.ended_at)) "
    "ON CONFLICT DO NOTHING RETURNING record_id"
)


def _insert_postgres(session: Reader, rows: list[dict[str, Any]]) -> set[str]:
    """Insert on PostgreSQL, skipping keys already stored (MTR-05): the record ids written. The rows go in in
    the order received (row ids follow it, as on SQLite). Two transactions inserting some of the same keys in
    opposite orders (a retry sent to another server while its first attempt is being written) may deadlock:
    PostgreSQL then fails one, which `ingest_in` tries again (`Database.worth_retrying`)."""
    if not rows:
        return set()
    literals = []
    for column in _UNNEST:
        if column in _OFTEN_NULL and all(row[column] is None for row in rows):
            literals.append("{}")  # unnest pads a shorter array with NULLs: nothing to build or parse
            continue
        values = [row[column] for row in rows]
        if column == "allocations":
            values = [None if value is None else json.dumps(value) for value in values]
        literals.append(array_literal(values, _UNNEST_TYPES[column] == "text"))
    cursor = connection_of(session).connection.cursor()
    try:
        cursor.execute(_INSERT_POSTGRES, literals)
        return {found for (found,) in cursor.fetchall()}
    finally:
        cursor.close()


@lru_cache(maxsize=64)
def _written_sql(count: int, placeholder: str) -> str:
    return f"SELECT record_id FROM usage_records WHERE record_id IN ({', '.join([placeholder] * count)})"


def _existing(
    session: Reader, rows: list[dict[str, Any]]
) -> dict[tuple[int, int, str, str], tuple[int, str, int | None]]:
    """The stored (quantity, record id, period end) of these rows' keys. Filtered by the key's leading columns
    so the unique index answers it (SQLite does not use an index for a row-value IN list)."""
    c = USAGE.c
    keys = {_key(row) for row in rows}
    found = session.execute(
        select(c.period_start, c.subscription_id, c.dimension, c.resource, c.quantity, c.record_id, c.period_end).where(
            c.period_start.in_({k[0] for k in keys}), c.subscription_id.in_({k[1] for k in keys})
        )
    )
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5], r[6]) for r in found if (r[0], r[1], r[2], r[3]) in keys}


def _allocations_json(allocations: tuple[Allocation, ...] | None) -> list[dict[str, Any]] | None:
    if allocations is None:
        return None
    return [{"quantity": a.quantity, "tags": dict(a.tags)} for a in allocations]
