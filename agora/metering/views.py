"""Usage as the seller portal reads it: a seller's products' usage over a range of UTC days, summed per day,
product, dimension and customer (the chart, its table and the CSV export answer from the same query), and
the records behind it, which the seller may confirm as metering errors (RFD-02). A seller only ever reads
its own products' records. Confirmed metering errors are left out of the sums: they are not billed usage."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.errors import Forbidden, Invalid
from agora.metering.records import USAGE, from_epoch
from agora.models import Buyer, Product, Role, Subscription

DAY = 86_400
DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_RECORDS = 200  # the records listed for marking as metering errors, newest first
CSV_COLUMNS = ("day", "product", "dimension", "customer_identifier", "customer_account", "quantity")


@dataclass(frozen=True)
class UsageRange:
    """What the seller asked for: [first, last] UTC days, both included, and optional filters."""

    first: date
    last: date
    product: str | None = None
    dimension: str | None = None
    customer: str | None = None

    @property
    def start(self) -> int:
        return int(datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC).timestamp())

    @property
    def end(self) -> int:
        return self.start + ((self.last - self.first).days + 1) * DAY

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def query_string(self) -> str:
        from urllib.parse import urlencode

        values = {"start": self.first.isoformat(), "end": self.last.isoformat()}
        values |= {
            k: v
            for k, v in (("product", self.product), ("dimension", self.dimension), ("customer", self.customer))
            if v
        }
        return urlencode(values)


def _day(text: str | None, name: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid.at(name, "must be a date written YYYY-MM-DD") from None


def parse_range(
    start: str | None,
    end: str | None,
    product: str | None = None,
    dimension: str | None = None,
    customer: str | None = None,
) -> UsageRange:
    """The range from the page's form: by default the last 30 days up to today (UTC); at most 366 days."""
    today = clock.now().date()
    last = _day(end, "end", today)
    first = _day(start, "start", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise Invalid.at("start", "must be on or before the end date")
    if (last - first).days + 1 > MAX_DAYS:
        raise Invalid.at("start", f"a range covers at most {MAX_DAYS} days")
    for name, value in (("product", product), ("dimension", dimension), ("customer", customer)):
        if value is not None and len(value) > 160:
            raise Invalid.at(name, "is too long")
    return UsageRange(
        first,
        last,
        (product or "").strip() or None,
        (dimension or "").strip() or None,
        (customer or "").strip() or None,
    )


def _seller(principal: Principal) -> int:
    if principal.role is not Role.SELLER:
        raise Forbidden("usage by customer is the seller's view")
    return principal.id


def _filtered(statement: Any, principal: Principal, wanted: UsageRange) -> Any:
    c = USAGE.c
    statement = statement.where(
        Product.seller_id == _seller(principal), c.period_start >= wanted.start, c.period_start < wanted.end
    )
    if wanted.product:
        statement = statement.where(Product.code == wanted.product)
    if wanted.dimension:
        statement = statement.where(c.dimension == wanted.dimension)
    if wanted.customer:
        statement = statement.where(Subscription.customer_identifier == wanted.customer)
    return statement


@dataclass
class UsageView:
    range: UsageRange
    rows: list[dict[str, Any]]  # per day, product, dimension, customer: the CSV's rows
    totals: list[dict[str, Any]]  # per product, dimension, customer over the range
    chart: dict[str, Any]  # {"labels": days, "series": [{"label": "product · dimension", "values": [...]}]}
    table: list[dict[str, Any]] = field(default_factory=list)  # the chart's numbers: {"day", "values"}


def daily(session: Session, principal: Principal, wanted: UsageRange) -> list[dict[str, Any]]:
    """Usage per UTC day, product, dimension and customer: the one query behind the page and its CSV."""
    c = USAGE.c
    day = (c.period_start // DAY).label("day")
    statement = (
        select(day, Product.code, c.dimension, Subscription.customer_identifier, Buyer.account, func.sum(c.quantity))
        .join(Product, Product.id == c.product_id)
        .join(Subscription, Subscription.id == c.subscription_id)
        .join(Buyer, Buyer.id == c.buyer_id)
        .where(c.error_id.is_(None))
        .group_by(day, Product.code, c.dimension, Subscription.customer_identifier, Buyer.account)
        .order_by(day, Product.code, c.dimension, Subscription.customer_identifier)
    )
    return [
        {
            "day": from_epoch(int(n) * DAY).date().isoformat(),
            "product": code,
            "dimension": dimension,
            "customer_identifier": customer,
            "customer_account": account,
            "quantity": int(quantity),
        }
        for n, code, dimension, customer, account, quantity in session.execute(_filtered(statement, principal, wanted))
    ]


def usage(session: Session, principal: Principal, wanted: UsageRange) -> UsageView:
    rows = daily(session, principal, wanted)
    labels = [d.isoformat() for d in wanted.days()]
    position = {label: n for n, label in enumerate(labels)}
    series: dict[str, list[int]] = {}
    totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for row in rows:
        name = f"{row['product']} · {row['dimension']}"
        values = series.setdefault(name, [0] * len(labels))
        values[position[row["day"]]] += row["quantity"]
        totals[(row["product"], row["dimension"], row["customer_identifier"], row["customer_account"])] += row[
            "quantity"
        ]
    names = sorted(series)
    chart = {"labels": labels, "series": [{"label": name, "values": series[name]} for name in names]}
    table = [{"day": label, "values": [series[name][n] for name in names]} for n, label in enumerate(labels)]
    table = [row for row in table if any(row["values"])]
    return UsageView(
        range=wanted,
        rows=rows,
        totals=[
            {"product": p, "dimension": d, "customer_identifier": c, "customer_account": a, "quantity": q}
            for (p, d, c, a), q in sorted(totals.items())
        ],
        chart=chart,
        table=table,
    )


def records(
    session: Session, principal: Principal, wanted: UsageRange, limit: int = MAX_RECORDS
) -> list[dict[str, Any]]:
    """The newest records of the range, with whether each may still be marked as a metering error (only
    records the seller's software sent, not yet confirmed; RFD-02)."""
    c = USAGE.c
    statement = (
        select(
            c.id,
            c.period_start,
            c.dimension,
            c.resource,
            c.quantity,
            c.source,
            c.error_id,
            Product.code,
            Subscription.customer_identifier,
            Buyer.account,
        )
        .join(Product, Product.id == c.product_id)
        .join(Subscription, Subscription.id == c.subscription_id)
        .join(Buyer, Buyer.id == c.buyer_id)
        .order_by(c.period_start.desc(), c.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": row.id,
            "hour": from_epoch(row.period_start),
            "product": row.code,
            "dimension": row.dimension,
            "resource": row.resource or None,
            "customer_identifier": row.customer_identifier,
            "customer_account": row.account,
            "quantity": row.quantity,
            "source": row.source,
            "error": row.error_id,
            "markable": row.error_id is None and row.source != "platform",
        }
        for row in session.execute(_filtered(statement, principal, wanted))
    ]


def products(session: Session, principal: Principal) -> list[tuple[str, str]]:
    """(code, title) of the seller's products, for the filter."""
    rows = session.execute(
        select(Product.code, Product.title).where(Product.seller_id == _seller(principal)).order_by(Product.title)
    )
    return [(code, title) for code, title in rows]
