"""The one ingestion service every front door calls: native batches, AWS MeterUsage/BatchMeterUsage,
Alibaba PushMeteringData, and the platform's own measurements (MTR-01…06).

`ingest` checks every record first (MTR-03/04), settles duplicates inside the batch, then writes the
accepted ones with one `INSERT … ON CONFLICT DO NOTHING`; the unique key is MTR-05, so a resend that
raced another is caught by the database, not by a prior read. Records are durable when the caller's
unit of work commits, which every front door does before it answers.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.billing.rating import month_bounds, next_period, period_of
from agora.cache import TtlCache
from agora.config import get_settings
from agora.db import Database
from agora.models import BillingPeriod, Buyer, Product, ProductRegion, Role, Subscription, UsageRecord
from agora.pricing.schema import PricingDocument

WINDOW = timedelta(hours=6)  # MTR-04: the 6 hours before receipt
MAX_PERIOD = timedelta(days=1)  # the longest interval a record may cover (a daily billing period)
MAX_QUANTITY = 2**53  # far beyond any meter; refuses values that would overflow downstream arithmetic
MAX_TAGS = 5
MAX_ALLOCATIONS = 2500
TAG_KEY = re.compile(r"^[a-zA-Z0-9+ -=._:/@]{1,100}$")
TAG_VALUE = re.compile(r"^[a-zA-Z0-9+ -=._:/@]{1,256}$")
DIMENSION = re.compile(r"^\S.{0,159}$", re.DOTALL)

USAGE: Table = UsageRecord.__table__  # type: ignore[assignment]

Reader = Session | Connection  # a unit of work's session, or a bare connection (the hot path's)


def _connection(source: Reader) -> Connection:
    return source.connection() if isinstance(source, Session) else source


class Problem(StrEnum):
    """Why a record was refused. Each front door maps these to its vendor's codes."""

    UNKNOWN_PRODUCT = "unknown_product"
    WRONG_REGION = "wrong_region"
    UNKNOWN_DIMENSION = "unknown_dimension"
    NOT_SUBSCRIBED = "not_subscribed"
    INVALID_QUANTITY = "invalid_quantity"
    TIMESTAMP_OUT_OF_BOUNDS = "timestamp_out_of_bounds"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    TOKEN_CONFLICT = "token_conflict"  # a client token reused for another record
    INVALID_ALLOCATIONS = "invalid_allocations"
    INVALID_TAG = "invalid_tag"
    INVALID_CUSTOMER = "invalid_customer"
    WRONG_PRODUCT_KIND = "wrong_product_kind"  # a front door that does not meter this kind of product
    OVERLAPPING_PERIOD = "overlapping_period"  # an interval overlapping one already received (MTR-05)


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # an identical resend: stored once, answered as success (MTR-05)
    REFUSED = "refused"


class Source(StrEnum):
    SELLER = "seller"  # the seller's software, for its customers (BatchMeterUsage, PushMeteringData)
    BUYER = "buyer"  # software the buyer runs, with the buyer's keys (MeterUsage)
    PLATFORM = "platform"  # measured by Agora itself (MTR-06)


# Kinds whose usage the seller reports for its customers (AWS BatchMeterUsage). Server images and containers
# are metered by the buyer's deployment (MeterUsage), ML products by the platform (MTR-06).
SELLER_REPORTED = frozenset({"saas", "managed_service"})


@dataclass(frozen=True, slots=True)
class Allocation:
    quantity: int
    tags: tuple[tuple[str, str], ...] = ()


class Reading(NamedTuple):
    """One record as a front door received it. `timestamp` is rounded down to its hour (MTR-01) unless
    `exact` is set (Alibaba intervals and per-second platform measurements keep their start). A tuple, as
    are outcomes: a native batch builds a thousand of each per request."""

    product_code: str
    dimension: str
    quantity: int
    timestamp: datetime
    customer_identifier: str | None = None
    customer_account: str | None = None
    allocations: tuple[Allocation, ...] | None = None
    resource: str = ""
    period_end: datetime | None = None
    exact: bool = False
    client_token: str | None = None


class Outcome(NamedTuple):
    status: Status
    record_id: str | None = None
    problem: Problem | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.REFUSED


def refused(problem: Problem, message: str) -> Outcome:
    return Outcome(Status.REFUSED, problem=problem, message=message)


class BatchRefused(Exception):
    """A record failed a check that refuses its whole batch (AWS BatchMeterUsage semantics)."""

    def __init__(self, index: int, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.index = index
        self.outcome = outcome


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122: 10xx


def new_record_ids(count: int) -> list[str]:
    """Time-ordered ids (UUIDv7 layout: 48 bits of milliseconds, 74 random): unique without coordination,
    and readable in creation order. Made a batch at a time: one clock read and one call for the randomness."""
    millis = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{millis[:8]}-{millis[8:]}-7"
    randomness = os.urandom(10 * count).hex()
    return [
        f"{head}{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"
        for r in (randomness[n : n + 20] for n in range(0, 20 * count, 20))
    ]


def epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- what a product accepts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Product:
    id: int
    code: str
    seller_id: int
    kind: str
    regions: frozenset[str]
    dimensions: frozenset[str]
    platform_items: dict[str, str]  # item → how the platform measures it (PRC-14)


def metered_dimensions(pricing: dict[str, Any] | None) -> tuple[set[str], dict[str, str]]:
    """Dimensions a seller or the buyer's software may report, and items only the platform reports."""
    if not pricing:
        return set(), {}
    document = PricingDocument.model_validate(pricing)
    names = {d.name for d in document.usage.dimensions} if document.usage else set()
    platform: dict[str, str] = {}
    if document.tiered:
        for item in document.tiered.items:
            if item.reporting == "seller":
                names.add(item.name)
            else:
                platform[item.name] = item.reporting
    return names, platform


@lru_cache(maxsize=1024)
def _dimensions_of(pricing_json: str) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    names, platform = metered_dimensions(json.loads(pricing_json))
    return frozenset(names), tuple(sorted(platform.items()))


PRODUCT_TTL = 5.0  # seconds a process trusts what it read about a product (dimensions, regions, seller)
_products: TtlCache[str, _Product | None] = TtlCache(PRODUCT_TTL)


def forget_products() -> None:
    _products.clear()


def _cached_product(session: Reader, code: str) -> _Product | None:
    """Products change rarely and every record names one, so each process keeps what it read for a few
    seconds: a new dimension or region is honoured within `PRODUCT_TTL`. Subscriptions are never cached."""
    return _products.get(code, lambda: _load_product(session, code))


def _load_product(session: Reader, code: str) -> _Product | None:
    """The product as metering needs it: two indexed reads, and the pricing parsed once per version."""
    found = session.execute(
        select(Product.id, Product.seller_id, Product.kind, Product.pricing).where(Product.code == code)
    ).first()
    if found is None:
        return None
    product_id, seller_id, kind, pricing = found
    regions = frozenset(session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product_id)))
    names, platform = _dimensions_of(json.dumps(pricing, sort_keys=True))
    return _Product(product_id, code, seller_id, kind, regions, names, dict(platform))


class _Customer(NamedTuple):  # a tuple: one is built per record of a batch
    subscription_id: int
    buyer_id: int
    started_at: datetime
    ended_at: datetime | None


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
    return store(session, prepared)


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
) -> Prepared:
    """Every check of `ingest` (MTR-03/04, allocations, customers, client tokens); writes nothing."""
    now = clock.now()
    region = region or get_settings().region
    products: dict[str, _Product | None] = {}
    for reading in readings:
        if reading.product_code not in products:
            products[reading.product_code] = _cached_product(session, reading.product_code)
    customers = _customers(session, principal, readings, products)
    tokens = _by_client_token(session, readings)

    product_problems = {
        code: _check_product(code, product, principal, region, kinds) for code, product in products.items()
    }

    prepared = Prepared(readings, [], [], [], [])
    outcomes, rows, row_index = prepared.outcomes, prepared.rows, prepared.row_index
    seen: set[tuple[int, int, str, str]] = set()
    received = epoch(now)
    for index, reading in enumerate(readings):
        product = products[reading.product_code]
        outcome = product_problems[reading.product_code]
        customer = None
        if outcome is None:
            assert product is not None
            outcome = _check(reading, product, source, now, check_window) or _check_customer_fields(reading, principal)
        if outcome is None:
            assert product is not None
            customer = _customer_for(reading, product, principal, customers)
            if customer is None or not (
                customer.started_at <= reading.timestamp
                and (customer.ended_at is None or reading.timestamp < customer.ended_at)
            ):
                outcome = refused(Problem.NOT_SUBSCRIBED, _not_subscribed(reading))
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
                "record_id": None,  # given below, all at once
                "period_start": start,
                "period_end": epoch(reading.period_end) if reading.period_end else None,
                "subscription_id": key[1],
                "product_id": product.id,
                "buyer_id": customer.buyer_id,
                "dimension": reading.dimension,
                "resource": reading.resource,
                "quantity": reading.quantity,
                "source": source.value,
                "received_at": received,
                "allocations": _allocations_json(reading.allocations),
                "client_token": reading.client_token,
            }
        )
    for row, record_id in zip(rows, new_record_ids(len(rows)), strict=True):
        row["record_id"] = record_id
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
                    f"the period {_iso(from_epoch(start))}–{_iso(from_epoch(end))} of {row['dimension']} overlaps "
                    f"{_iso(from_epoch(clash[0]))}–{_iso(from_epoch(clash[1]))}, {where}; each stretch of time "
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
    if _connection(session).dialect.name == "postgresql":
        # Two pushes for one customer queue here until the first commits, so neither misses the other's
        # intervals (SQLite's units of work are serial already). NO KEY UPDATE leaves inserts of usage alone.
        session.execute(
            select(_SUBSCRIPTIONS.c.id).where(_SUBSCRIPTIONS.c.id.in_(subscriptions)).with_for_update(key_share=True)
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
    return settle(prepared, write(session, prepared), partial(_existing, session))


def write(session: Reader, prepared: Prepared, chunks: list[_Chunk] | None = None) -> set[str]:
    """Insert the prepared rows, skipping keys already stored, and carry those of a closed month (BIL-03):
    the record ids written. The part of ingestion that holds the write lock, so it does no more than that;
    `chunks` are the statement parameters, built beforehand by a caller that can (`insert_chunks`)."""
    stored = _insert(session, chunks if chunks is not None else insert_chunks(prepared.rows))
    if prepared.rows:
        month = epoch(month_bounds(period_of(clock.now()))[0])
        earlier = [row for row in prepared.rows if row["period_start"] < month and row["record_id"] in stored]
        if earlier:  # a month may have closed since these hours: they are then billed in the next open one
            carry_late(session, earlier)
    return stored


_Existing = Callable[[list[dict[str, Any]]], dict[tuple[int, int, str, str], tuple[int, str, int | None]]]


def settle(prepared: Prepared, stored: set[str], existing: _Existing) -> list[Outcome]:
    """Every outcome, once the rows are written: `stored` are the ids written, and `existing` reads back the
    stored records of the keys the insert skipped (asked only when there are such keys)."""
    rows, row_index, readings = prepared.rows, prepared.row_index, prepared.readings
    outcomes = list(prepared.outcomes)
    settled: dict[tuple[int, int, str, str], tuple[int, str, int | None]] = {}
    clashes = []
    for row, index in zip(rows, row_index, strict=True):
        if row["record_id"] in stored:
            outcomes[index] = Outcome(Status.ACCEPTED, row["record_id"])
            settled[_key(row)] = (row["quantity"], row["record_id"], row["period_end"])
        else:
            clashes.append((row, index))
    if clashes:  # already stored by an earlier request (or a concurrent one)
        settled.update(existing([row for row, _ in clashes]))
        for row, index in clashes:
            if _key(row) in settled:
                outcomes[index] = _compare(*settled[_key(row)], readings[index])
            else:  # its client token was taken by a concurrent request for another record
                outcomes[index] = refused(Problem.TOKEN_CONFLICT, _TOKEN_REUSED)
    for index, key in prepared.repeats:
        outcomes[index] = _compare(*settled[key], readings[index])
    return [outcome for outcome in outcomes if outcome is not None]


_TOKEN_REUSED = "this client token was already used for a different record"


# --- late usage (BIL-03) ---------------------------------------------------------------------------------

_PERIODS_LOCK = 0x4147_4F52_4101  # PostgreSQL advisory lock between closing a month and storing its usage


def periods_lock(session: Reader, *, shared: bool) -> None:
    """Closing a month takes this exclusively and storing usage of an earlier month takes it shared, so
    every record of a month is either in that month's close or finds the month closed and is carried (on
    PostgreSQL; SQLite runs one writer at a time, which gives the same). Held until the commit."""
    if _connection(session).dialect.name == "postgresql":
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
    _connection(session).execute(statement, late)


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
    """`ingest` in its own transactions, committed on return. The checks read a snapshot (on SQLite they never
    wait for a writer); only the insert holds the write lock, in one transaction with the inserts of the
    process's other requests arriving meanwhile (group commit). Everything else, the statement's parameters
    and the outcomes included, is done outside that lock: a request holding it competes for the interpreter
    with the process's other requests, and every writer of the database waits for it."""
    with db.read_only() as connection:
        prepared = prepare(connection, principal, readings, region=region, source=source, fatal=fatal, kinds=kinds)
    if not prepared.rows:
        return [outcome for outcome in prepared.outcomes if outcome is not None]
    chunks = insert_chunks(prepared.rows)
    stored = db.write_together(partial(write, prepared=prepared, chunks=chunks))

    def existing(rows: list[dict[str, Any]]) -> dict[tuple[int, int, str, str], tuple[int, str, int | None]]:
        with db.read_only() as connection:  # committed: a skipped key's record is committed too
            return _existing(connection, rows)

    return settle(prepared, stored, existing)


def _key(row: dict[str, Any]) -> tuple[int, int, str, str]:
    return (row["period_start"], row["subscription_id"], row["dimension"], row["resource"])


def _compare(quantity: int, record_id: str, period_end: int | None, reading: Reading) -> Outcome:
    end = epoch(reading.period_end) if reading.period_end is not None else None
    if end != period_end:  # an interval (Alibaba) is its start and its end: another end is another record
        stored = _iso(from_epoch(period_end)) if period_end is not None else "the hour's end"
        given = _iso(from_epoch(end)) if end is not None else "the hour's end"
        return refused(
            Problem.DUPLICATE_CONFLICT,
            f"a record for {reading.dimension} starting {_iso(reading.timestamp)} was already received for the"
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
    connection = _connection(session)
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


# --- checks ---------------------------------------------------------------------------------------------


def _check_product(
    code: str,
    product: _Product | None,
    principal: Principal | None,
    region: str,
    kinds: frozenset[str] | None = None,
) -> Outcome | None:
    """The checks of MTR-03/04 that depend only on the product: asked once per product of a batch."""
    if product is None or (
        principal is not None and principal.role is Role.SELLER and product.seller_id != principal.id
    ):
        return refused(Problem.UNKNOWN_PRODUCT, f"no product with code {code!r} [MTR-04]")
    if kinds is not None and product.kind not in kinds:
        return refused(
            Problem.WRONG_PRODUCT_KIND,
            f"{product.code} is a {product.kind} product; this operation meters {' and '.join(sorted(kinds))} products",
        )
    marketplace_region = get_settings().region
    if region != marketplace_region:
        return refused(
            Problem.WRONG_REGION,
            f"this endpoint serves {marketplace_region}; records sent for {region} are refused [MTR-03]",
        )
    if product.regions and region not in product.regions:
        return refused(
            Problem.WRONG_REGION, f"{product.code} is not offered in {region}; send its records there [MTR-03]"
        )
    return None


def _check(
    reading: Reading, product: _Product, source: Source, now: datetime, check_window: bool = True
) -> Outcome | None:
    """The checks of MTR-04 and the allocation rules on one record of a product that passed `_check_product`;
    None when the record may be stored."""
    if source is not Source.PLATFORM:
        if reading.dimension in product.platform_items:
            how = product.platform_items[reading.dimension]
            return refused(
                Problem.UNKNOWN_DIMENSION,
                f"{reading.dimension} of {product.code} is reported by the platform ({how}), not sent [PRC-14]",
            )
        if reading.dimension not in product.dimensions:
            known = ", ".join(sorted(product.dimensions)) or "none"
            return refused(
                Problem.UNKNOWN_DIMENSION,
                f"{product.code} has no dimension {reading.dimension!r} (its dimensions: {known}) [MTR-04]",
            )
    if isinstance(reading.quantity, bool) or not isinstance(reading.quantity, int):
        return refused(Problem.INVALID_QUANTITY, "quantity must be a whole number")
    if reading.quantity < 0:
        return refused(Problem.INVALID_QUANTITY, f"quantity must not be negative, got {reading.quantity} [MTR-04]")
    if reading.quantity > MAX_QUANTITY:
        return refused(Problem.INVALID_QUANTITY, f"quantity {reading.quantity} is too large")
    timestamp = reading.timestamp
    if timestamp.tzinfo is None:
        return refused(Problem.TIMESTAMP_OUT_OF_BOUNDS, "timestamp must carry a time zone (UTC)")
    if reading.period_end is not None and not timestamp < reading.period_end <= timestamp + MAX_PERIOD:
        return refused(
            Problem.TIMESTAMP_OUT_OF_BOUNDS,
            f"a period must end after its start and cover at most {MAX_PERIOD.days} day (daily billing)",
        )
    if timestamp > now:
        return refused(
            Problem.TIMESTAMP_OUT_OF_BOUNDS,
            f"timestamp {_iso(timestamp)} is in the future (server time {_iso(now)}) [MTR-04]",
        )
    if check_window and now - timestamp >= WINDOW:
        return refused(
            Problem.TIMESTAMP_OUT_OF_BOUNDS,
            f"timestamp {_iso(timestamp)} is 6 hours or more before receipt ({_iso(now)}) [MTR-04]",
        )
    return _check_allocations(reading)


def _check_customer_fields(reading: Reading, principal: Principal | None) -> Outcome | None:
    if reading.customer_identifier and reading.customer_account:
        return refused(Problem.INVALID_CUSTOMER, "give a customer identifier or a customer account, not both")
    if principal is not None and principal.role is Role.BUYER:
        return None  # a buyer's software meters the buyer's own subscription
    if principal is not None and not (reading.customer_identifier or reading.customer_account):
        return refused(Problem.INVALID_CUSTOMER, "name the customer: a customer identifier or a customer account")
    return None


def _check_allocations(reading: Reading) -> Outcome | None:
    allocations = reading.allocations
    if allocations is None:
        return None
    if not allocations or len(allocations) > MAX_ALLOCATIONS:
        return refused(Problem.INVALID_ALLOCATIONS, f"give 1 to {MAX_ALLOCATIONS} usage allocations")
    tag_sets: set[frozenset[tuple[str, str]]] = set()
    for n, allocation in enumerate(allocations):
        if allocation.quantity < 0:
            return refused(Problem.INVALID_ALLOCATIONS, f"allocations[{n}]: quantity must not be negative")
        if len(allocation.tags) > MAX_TAGS:
            return refused(Problem.INVALID_TAG, f"allocations[{n}]: at most {MAX_TAGS} tags")
        keys = [key for key, _ in allocation.tags]
        if len(set(keys)) != len(keys):
            return refused(Problem.INVALID_TAG, f"allocations[{n}]: a tag key appears twice")
        for key, value in allocation.tags:
            if not TAG_KEY.match(key) or not TAG_VALUE.match(value):
                return refused(Problem.INVALID_TAG, f"allocations[{n}]: tag {key!r}={value!r} is not a valid tag")
        tag_set = frozenset(allocation.tags)
        if tag_set in tag_sets:
            return refused(Problem.INVALID_ALLOCATIONS, f"allocations[{n}]: each allocation needs its own tag set")
        tag_sets.add(tag_set)
    total = sum(a.quantity for a in allocations)
    if total != reading.quantity:
        return refused(
            Problem.INVALID_ALLOCATIONS,
            f"allocated quantities sum to {total}, not to the record's quantity {reading.quantity}",
        )
    return None


def _allocations_json(allocations: tuple[Allocation, ...] | None) -> list[dict[str, Any]] | None:
    if allocations is None:
        return None
    return [{"quantity": a.quantity, "tags": dict(a.tags)} for a in allocations]


def _iso(instant: datetime) -> str:
    try:
        return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # 9999-12-31T23:00:00-01:00 has no UTC datetime; a refusal must not become a 500
        return instant.isoformat()


def _not_subscribed(reading: Reading) -> str:
    who = reading.customer_identifier or reading.customer_account or "the caller"
    return f"customer {who} has no subscription to {reading.product_code} at {_iso(reading.timestamp)} [MTR-04]"


# --- customers ------------------------------------------------------------------------------------------


def _customers(
    session: Reader,
    principal: Principal | None,
    readings: Sequence[Reading],
    products: dict[str, _Product | None],
) -> dict[tuple[int, str, str], list[_Customer]]:
    """Subscriptions of the batch's customers in one query: keyed by (product id, 'id'|'account'|'buyer',
    value); a buyer may hold several subscriptions to a product over time."""
    by_identifier: set[tuple[int, str]] = set()
    by_account: set[tuple[int, str]] = set()
    for reading in readings:
        product = products.get(reading.product_code)
        if product is None:
            continue
        if reading.customer_identifier:
            by_identifier.add((product.id, reading.customer_identifier))
        elif reading.customer_account:
            by_account.add((product.id, reading.customer_account))
    # Per product, so each lookup is a range of the (product_id, customer_identifier) unique index; the
    # statements are built once and run on the driver's cursor (this is the per-request cost of metering).
    connection = _connection(session)
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    results: list[tuple[str, Iterable[Any]]] = []  # (which lookup, its rows)
    for product_id in sorted({p for p, _ in by_identifier}):
        ids = sorted(i for p, i in by_identifier if p == product_id)
        sql = _BY_IDENTIFIER_SQL.format(p=placeholder, ids=", ".join([placeholder] * len(ids)))
        cursor = connection.connection.cursor()
        cursor.execute(sql, (product_id, *ids))
        results.append(("id", cursor.fetchall()))
        cursor.close()
    for product_id in sorted({p for p, _ in by_account}):
        accounts = sorted(a for p, a in by_account if p == product_id)
        results.append(("account", connection.execute(_BY_ACCOUNT, {"product_id": product_id, "values": accounts})))
    if principal is not None and principal.role is Role.BUYER:
        product_ids = sorted({p.id for p in products.values() if p is not None})
        results.append(("buyer", connection.execute(_BY_BUYER, {"buyer_id": principal.id, "values": product_ids})))
    # Each row is keyed by what its lookup asked for, which is what `_customer_for` looks it up by.
    found: dict[tuple[int, str, str], list[_Customer]] = {}
    times: dict[Any, datetime] = {}  # subscriptions often share a start: parse each value once
    for kind, rows in results:
        for sub_id, product_id, identifier, buyer_id, started, ended, account in rows:
            start = times.get(started) or times.setdefault(started, _utc(started))
            end = None if ended is None else times.get(ended) or times.setdefault(ended, _utc(ended))
            value = identifier if kind == "id" else account if kind == "account" else str(buyer_id)
            found.setdefault((product_id, kind, value), []).append(_Customer(sub_id, buyer_id, start, end))
    return found


# The hot lookup as text (run with exec_driver_sql, so rows come back as the driver gives them).
_BY_IDENTIFIER_SQL = (
    "SELECT s.id, s.product_id, s.customer_identifier, s.buyer_id, s.started_at, s.ended_at, b.account "
    "FROM subscriptions s JOIN buyers b ON b.id = s.buyer_id "
    "WHERE s.product_id = {p} AND s.customer_identifier IN ({ids})"
)


def _utc(value: datetime | str) -> datetime:
    """A driver's timestamp as an aware UTC datetime: SQLite gives naive UTC text, psycopg aware datetimes."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_SUBSCRIPTIONS: Table = Subscription.__table__  # type: ignore[assignment]
_BUYERS: Table = Buyer.__table__  # type: ignore[assignment]
_CUSTOMER_COLUMNS = select(
    _SUBSCRIPTIONS.c.id,
    _SUBSCRIPTIONS.c.product_id,
    _SUBSCRIPTIONS.c.customer_identifier,
    _SUBSCRIPTIONS.c.buyer_id,
    _SUBSCRIPTIONS.c.started_at,
    _SUBSCRIPTIONS.c.ended_at,
    _BUYERS.c.account,
).join(_BUYERS, _BUYERS.c.id == _SUBSCRIPTIONS.c.buyer_id)
_BY_ACCOUNT = _CUSTOMER_COLUMNS.where(
    _SUBSCRIPTIONS.c.product_id == bindparam("product_id"),
    _BUYERS.c.account.in_(bindparam("values", expanding=True)),
)
_BY_BUYER = _CUSTOMER_COLUMNS.where(
    _SUBSCRIPTIONS.c.buyer_id == bindparam("buyer_id"),
    _SUBSCRIPTIONS.c.product_id.in_(bindparam("values", expanding=True)),
)


def _customer_for(
    reading: Reading,
    product: _Product,
    principal: Principal | None,
    customers: dict[tuple[int, str, str], list[_Customer]],
) -> _Customer | None:
    if principal is not None and principal.role is Role.BUYER:
        candidates = customers.get((product.id, "buyer", str(principal.id)), [])
    elif reading.customer_identifier:
        candidates = customers.get((product.id, "id", reading.customer_identifier), [])
    elif reading.customer_account:
        candidates = customers.get((product.id, "account", reading.customer_account), [])
    else:
        return None
    return _active_at(candidates, reading.timestamp)


def _active_at(candidates: Iterable[_Customer], at: datetime) -> _Customer | None:
    best = None
    for customer in candidates:
        if customer.started_at <= at and (customer.ended_at is None or at < customer.ended_at):
            return customer
        best = customer if best is None or customer.started_at > best.started_at else best
    return best  # not active then: the caller reports it as not subscribed


# --- reading usage back ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilter:
    product_code: str | None = None
    customer_identifier: str | None = None
    dimension: str | None = None
    start: datetime | None = None  # inclusive, on the record's period start
    end: datetime | None = None  # exclusive
    after_id: int = 0
    limit: int = 1000


def query(session: Session, principal: Principal, where: UsageFilter) -> list[dict[str, Any]]:
    """Records the caller may see (a seller: its products'; a buyer: its own; an operator: all), oldest
    received first, paged by `after_id`."""
    c = USAGE.c
    statement = (
        select(
            c.id,
            c.record_id,
            c.period_start,
            c.period_end,
            c.dimension,
            c.resource,
            c.quantity,
            c.source,
            c.received_at,
            c.allocations,
            Product.code,
            Subscription.customer_identifier,
            Buyer.account,
        )
        .join(Product, Product.id == c.product_id)
        .join(Subscription, Subscription.id == c.subscription_id)
        .join(Buyer, Buyer.id == c.buyer_id)
        .where(c.id > where.after_id)
        .order_by(c.id)
        .limit(where.limit)
    )
    if principal.role is Role.SELLER:
        statement = statement.where(Product.seller_id == principal.id)
    elif principal.role is Role.BUYER:
        statement = statement.where(c.buyer_id == principal.id)
    if where.product_code:
        statement = statement.where(Product.code == where.product_code)
    if where.customer_identifier:
        statement = statement.where(Subscription.customer_identifier == where.customer_identifier)
    if where.dimension:
        statement = statement.where(c.dimension == where.dimension)
    if where.start:
        statement = statement.where(c.period_start >= epoch(where.start))
    if where.end:
        statement = statement.where(c.period_start < epoch(where.end))
    return [
        {
            "id": row.id,
            "metering_record_id": row.record_id,
            "product": row.code,
            "customer_identifier": row.customer_identifier,
            "customer_account": row.account,
            "dimension": row.dimension,
            "resource": row.resource or None,
            "period_start": _iso(from_epoch(row.period_start)),
            "period_end": _iso(from_epoch(row.period_end)) if row.period_end is not None else None,
            "quantity": row.quantity,
            "source": row.source,
            "received_at": _iso(from_epoch(row.received_at)),
            "allocations": row.allocations,
        }
        for row in session.execute(statement)
    ]
