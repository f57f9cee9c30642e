"""What metering passes around: a record as a front door received it (`Reading`), what became of it
(`Outcome`, `Problem`, `Status`), where it came from (`Source`), and the limits and time helpers every part
of metering shares (MTR-01…06)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from agora.models import UsageRecord

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


def connection_of(source: Reader) -> Connection:
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(instant: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    return (instant - _EPOCH) // _MICROSECOND


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso(instant: datetime) -> str:
    try:
        return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # 9999-12-31T23:00:00-01:00 has no UTC datetime; a refusal must not become a 500
        return instant.isoformat()
