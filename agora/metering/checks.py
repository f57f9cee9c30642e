"""The checks of a record before it is stored (MTR-03/04, allocations), what a product accepts (its
dimensions, regions and kind, cached for a few seconds), and the customers a batch names, found with one
query per product."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, select

from agora.auth import Principal
from agora.cache import TtlCache
from agora.config import get_settings
from agora.metering.records import (
    MAX_ALLOCATIONS,
    MAX_PERIOD,
    MAX_QUANTITY,
    MAX_TAGS,
    TAG_KEY,
    TAG_VALUE,
    WINDOW,
    Outcome,
    Problem,
    Reader,
    Reading,
    Source,
    connection_of,
    iso,
    refused,
)
from agora.models import Buyer, Product, ProductRegion, Role, Subscription
from agora.pricing.schema import PricingDocument

# --- what a product accepts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeteredProduct:
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
_products: TtlCache[str, MeteredProduct | None] = TtlCache(PRODUCT_TTL)


def forget_products() -> None:
    _products.clear()


def cached_product(session: Reader, code: str) -> MeteredProduct | None:
    """Products change rarely and every record names one, so each process keeps what it read for a few
    seconds: a new dimension or region is honoured within `PRODUCT_TTL`. Subscriptions are never trusted from
    a cache (see `CustomerMemory`)."""
    return _products.get(code, lambda: _load_product(session, code))


def _load_product(session: Reader, code: str) -> MeteredProduct | None:
    """The product as metering needs it: two indexed reads, and the pricing parsed once per version."""
    found = session.execute(
        select(Product.id, Product.seller_id, Product.kind, Product.pricing).where(Product.code == code)
    ).first()
    if found is None:
        return None
    product_id, seller_id, kind, pricing = found
    regions = frozenset(session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product_id)))
    names, platform = _dimensions_of(json.dumps(pricing, sort_keys=True))
    return MeteredProduct(product_id, code, seller_id, kind, regions, names, dict(platform))


class Customer(NamedTuple):  # a tuple: one is built per record of a batch
    subscription_id: int
    buyer_id: int
    started_at: datetime
    ended_at: datetime | None
    identifier: str | None = None  # the subscription's customer identifier
    account: str | None = None  # the buyer's account, when looked up by account or by buyer
    remembered: bool = False  # from `CustomerMemory`: its start and end may have changed since


class CustomerMemory:
    """PostgreSQL, one per database and process: the subscriptions metering found by customer identifier, so
    that a seller's next batch for the same customers skips the lookup (a fifth of a BatchMeterUsage
    request's cost, on both sides of the connection). A product's customer identifier names one subscription
    for good (unique, never reassigned); what may change is its start and end, so a remembered subscription
    is never trusted: the insert itself checks that each of its records falls inside the subscription's
    current term (`metering.service`), and a record it turns away is checked again from the database. Bounded:
    emptied when it holds `LIMIT` customers."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self._known: dict[tuple[int, str], Customer] = {}

    def get(self, product_id: int, identifier: str) -> Customer | None:
        return self._known.get((product_id, identifier))

    def keep(self, product_id: int, customer: Customer) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        assert customer.identifier is not None
        self._known[(product_id, customer.identifier)] = customer._replace(remembered=True)


# --- checks ---------------------------------------------------------------------------------------------


def check_product(
    code: str,
    product: MeteredProduct | None,
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


def check_reading(
    reading: Reading, product: MeteredProduct, source: Source, now: datetime, check_window: bool = True
) -> Outcome | None:
    """The checks of MTR-04 and the allocation rules on one record of a product that passed `check_product`;
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
            f"timestamp {iso(timestamp)} is in the future (server time {iso(now)}) [MTR-04]",
        )
    if check_window and now - timestamp >= WINDOW:
        return refused(
            Problem.TIMESTAMP_OUT_OF_BOUNDS,
            f"timestamp {iso(timestamp)} is 6 hours or more before receipt ({iso(now)}) [MTR-04]",
        )
    return _check_allocations(reading)


def check_record(
    reading: Reading,
    product: MeteredProduct,
    principal: Principal | None,
    source: Source,
    now: datetime,
    check_window: bool = True,
) -> Outcome | None:
    """`check_reading` and `check_customer_fields`: None when the record may be stored. The usual record
    passes all of them, which is tested first in one expression (it implies each check passes); the checks
    themselves run only when something is off, to name it."""
    timestamp, quantity, identifier, account = (
        reading.timestamp,
        reading.quantity,
        reading.customer_identifier,
        reading.customer_account,
    )
    sent = source is not Source.PLATFORM
    if (
        type(quantity) is int
        and 0 <= quantity <= MAX_QUANTITY
        and timestamp.tzinfo is not None
        and reading.period_end is None
        and reading.allocations is None
        and (not check_window or now - timestamp < WINDOW)
        and timestamp <= now
        and (not sent or reading.dimension in product.dimensions)
        and (not sent or reading.dimension not in product.platform_items)
        and not (identifier and account)
        and (identifier or account or principal is None or principal.role is Role.BUYER)
    ):
        return None
    return check_reading(reading, product, source, now, check_window) or check_customer_fields(reading, principal)


def check_customer_fields(reading: Reading, principal: Principal | None) -> Outcome | None:
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


def not_subscribed(reading: Reading) -> str:
    who = reading.customer_identifier or reading.customer_account or "the caller"
    return f"customer {who} has no subscription to {reading.product_code} at {iso(reading.timestamp)} [MTR-04]"


# --- customers ------------------------------------------------------------------------------------------


def customers_of(
    session: Reader,
    principal: Principal | None,
    readings: Sequence[Reading],
    products: dict[str, MeteredProduct | None],
    memory: CustomerMemory | None = None,
    *,
    recall: bool = True,
) -> dict[tuple[int, str, str], list[Customer]]:
    """Subscriptions of the batch's customers in one query: keyed by (product id, 'id'|'account'|'buyer',
    value); a buyer may hold several subscriptions to a product over time. With `memory`, customers named by
    identifier come from it where it has them (marked `remembered`; not when `recall` is false), and those
    read are added to it."""
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
    connection = connection_of(session)
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    results: list[tuple[str, Iterable[Any]]] = []  # (which lookup, its rows)
    postgres = connection.dialect.name == "postgresql"
    found: dict[tuple[int, str, str], list[Customer]] = {}
    if memory is not None and recall:
        for product_id, identifier in list(by_identifier):
            remembered = memory.get(product_id, identifier)
            if remembered is not None:
                found[(product_id, "id", identifier)] = [remembered]
                by_identifier.discard((product_id, identifier))
    for product_id in sorted({p for p, _ in by_identifier}):
        ids = sorted(i for p, i in by_identifier if p == product_id)
        cursor = connection.connection.cursor()
        if postgres:  # one text for any number of customers: parsed once, prepared by the driver
            cursor.execute(_BY_IDENTIFIER_POSTGRES, (text_array(ids), product_id))
        else:
            cursor.execute(
                _BY_IDENTIFIER_SQL.format(p=placeholder, ids=", ".join([placeholder] * len(ids))), (product_id, *ids)
            )
        results.append(("id", cursor.fetchall()))
        cursor.close()
    for product_id in sorted({p for p, _ in by_account}):
        accounts = sorted(a for p, a in by_account if p == product_id)
        results.append(("account", connection.execute(_BY_ACCOUNT, {"product_id": product_id, "values": accounts})))
    if principal is not None and principal.role is Role.BUYER:
        product_ids = sorted({p.id for p in products.values() if p is not None})
        results.append(("buyer", connection.execute(_BY_BUYER, {"buyer_id": principal.id, "values": product_ids})))
    # Each row is keyed by what its lookup asked for, which is what `customer_for` looks it up by.
    times: dict[Any, datetime] = {}  # subscriptions often share a start or an end: parse each value once
    starts: dict[Any, datetime] = {}
    for kind, rows in results:
        for sub_id, product_id, identifier, buyer_id, started, ended, account in rows:
            # Usage is timestamped to the second: the second a subscription began in counts as subscribed.
            start = starts.get(started) or starts.setdefault(started, _utc(started).replace(microsecond=0))
            end = None if ended is None else times.get(ended) or times.setdefault(ended, _utc(ended))
            value = identifier if kind == "id" else account if kind == "account" else str(buyer_id)
            customer = Customer(sub_id, buyer_id, start, end, identifier, account)
            found.setdefault((product_id, kind, value), []).append(customer)
            if memory is not None and kind == "id":
                memory.keep(product_id, customer)
    return found


# The hot lookup as text (run on the driver's cursor, so rows come back as the driver gives them). The buyer's
# account is not read: it is compared only for a buyer metering its own usage, whose subscriptions `_BY_BUYER`
# finds; on PostgreSQL the join cost as much server time as the index probes themselves.
_BY_IDENTIFIER_SQL = (
    "SELECT id, product_id, customer_identifier, buyer_id, started_at, ended_at, NULL FROM subscriptions "
    "WHERE product_id = {p} AND customer_identifier IN ({ids})"
)


# PostgreSQL: one probe of the (product_id, customer_identifier) unique index per customer asked for, whatever
# the statistics say. Planned freely, a table whose statistics predate its subscriptions (a database just
# loaded, before autovacuum's ANALYZE) is read whole for each request: 1.1 ms of server CPU for 25 customers
# of 10,000, against 0.25 ms. OFFSET 0 keeps the lateral subquery from being flattened into a join.
_BY_IDENTIFIER_POSTGRES = (
    "SELECT s.id, s.product_id, s.customer_identifier, s.buyer_id, s.started_at, s.ended_at, NULL "
    "FROM unnest(%s::text[]) AS k(identifier) "
    "CROSS JOIN LATERAL (SELECT id, product_id, customer_identifier, buyer_id, started_at, ended_at "
    "FROM subscriptions WHERE product_id = %s "
    "AND customer_identifier = k.identifier OFFSET 0) AS s"
)


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal, passed as one parameter and cast in the statement (cheaper than the
    driver's array adapter, which inspects every element)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


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


def not_own_customer(reading: Reading, customer: Customer) -> Outcome | None:
    """A buyer's software meters the buyer's own subscription: naming another customer is refused, never
    quietly metered on the caller's subscription instead."""
    if (reading.customer_identifier and reading.customer_identifier != customer.identifier) or (
        reading.customer_account and reading.customer_account != customer.account
    ):
        named = reading.customer_identifier or reading.customer_account
        return refused(
            Problem.INVALID_CUSTOMER,
            f"customer {named} is not the caller's subscription to {reading.product_code}: a buyer meters its own"
            " usage; leave the customer out or name your own [MTR-04]",
        )
    return None


def customer_for(
    reading: Reading,
    product: MeteredProduct,
    principal: Principal | None,
    customers: dict[tuple[int, str, str], list[Customer]],
) -> Customer | None:
    if principal is not None and principal.role is Role.BUYER:
        candidates = customers.get((product.id, "buyer", str(principal.id)), [])
    elif reading.customer_identifier:
        candidates = customers.get((product.id, "id", reading.customer_identifier), [])
    elif reading.customer_account:
        candidates = customers.get((product.id, "account", reading.customer_account), [])
    else:
        return None
    return _active_at(candidates, reading.timestamp)


def _active_at(candidates: Iterable[Customer], at: datetime) -> Customer | None:
    best = None
    for customer in candidates:
        if customer.started_at <= at and (customer.ended_at is None or at < customer.ended_at):
            return customer
        best = customer if best is None or customer.started_at > best.started_at else best
    return best  # not active then: the caller reports it as not subscribed
