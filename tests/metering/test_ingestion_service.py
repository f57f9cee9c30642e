"""The ingestion service below the front doors: record ids, and a record stored by another request between
the checks (read outside the write lock) and the insert."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from agora import clock
from agora.auth import Principal
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import Outcome, Problem, Reading, Source, Status, new_record_ids
from agora.models import Product, Role, Seller, UsageRecord
from tests.factories.metering import SAAS, metered_market

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


@pytest.fixture
def seller(db: Database, manual_clock: clock.ManualClock) -> Iterator[Principal]:
    manual_clock.set(NOW)
    metered_market(db, NOW - timedelta(days=10))
    with db.reader() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
    assert seller_id is not None and handle is not None
    yield Principal(Role.SELLER, seller_id, handle)


def reading(quantity: int, dimension: str = "users", minute: int = 7) -> Reading:
    return Reading(SAAS, dimension, quantity, HOUR + timedelta(minutes=minute), customer_identifier="cust-1")


def stored(db: Database) -> list[tuple[str, str, int]]:
    with db.reader() as session:
        rows = session.execute(
            select(UsageRecord.record_id, UsageRecord.dimension, UsageRecord.quantity).order_by(UsageRecord.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]


def test_record_ids_are_distinct_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_record_ids(2000)
    after = time.time_ns() // 1_000_000
    assert len(ids) == len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case form
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # the leading 48 bits are the milliseconds of creation
    assert new_record_ids(0) == []
    assert new_record_ids(1)[0][:13] >= max(ids)[:13]  # a later batch sorts with or after this one


@pytest.mark.rule("MTR-05")
def test_a_key_stored_by_another_request_after_the_checks_is_answered_from_the_stored_record_MTR_05(
    db: Database, seller: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks read a snapshot outside the write lock, so another request may store the same key before
    this one's insert. The insert skips it, and the answer comes from what was stored: a duplicate with the
    stored record's id when the quantity is the same, a conflict when not; the batch's new records are
    stored; nothing is stored twice."""
    real_prepare = metering.prepare
    competing: list[list[Outcome]] = []

    def prepare_then_race(*args: Any, **kwargs: Any) -> metering.Prepared:
        prepared = real_prepare(*args, **kwargs)
        if not competing:  # the first request's checks are done: another request stores two of its keys
            monkeypatch.setattr(metering, "prepare", real_prepare)
            competing.append(
                metering.ingest_in(db, seller, [reading(10), reading(3, "requests")], source=Source.SELLER)
            )
        return prepared

    monkeypatch.setattr(metering, "prepare", prepare_then_race)
    outcomes = metering.ingest_in(
        db,
        seller,
        [reading(10, minute=40), reading(4, "requests"), reading(1, "users", minute=7 + 60)],
        source=Source.SELLER,
    )
    [first, second] = competing[0]
    assert first.status is Status.ACCEPTED and second.status is Status.ACCEPTED

    same, conflict, new = outcomes
    assert same.status is Status.DUPLICATE and same.record_id == first.record_id
    assert conflict.status is Status.REFUSED and conflict.problem is Problem.DUPLICATE_CONFLICT
    assert "already received with quantity 3" in conflict.message
    assert new.status is Status.ACCEPTED and new.record_id not in (first.record_id, second.record_id)
    assert stored(db) == [
        (first.record_id, "users", 10),
        (second.record_id, "requests", 3),
        (new.record_id, "users", 1),
    ]
