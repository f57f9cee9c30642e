"""The metering hot path's write (`ingest_in`): the inserts of concurrent requests committed together (on
PostgreSQL as one statement of column arrays), each key stored once whatever the grouping, values that need
quoting in an array literal stored as sent, and a dead PostgreSQL connection retried once (MTR-05)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, func, insert, select, text, update

from agora import clock
from agora.auth import Principal
from agora.db import Database
from agora.metering import service as metering
from agora.metering.checks import CustomerMemory
from agora.metering.records import Allocation, Outcome, Problem, Reading, Source, Status
from agora.models import Buyer, Product, Role, Seller, Subscription, UsageRecord
from tests.factories.metering import SAAS, metered_market

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
HOURS = [datetime(2026, 3, 10, h, 5, tzinfo=UTC) for h in range(7, 13)]
CUSTOMERS = 12
ODD = 'odd "customer", {with} \\ braces'  # every character an array literal must escape


@pytest.fixture
def seller(db: Database, manual_clock: clock.ManualClock) -> Iterator[Principal]:
    manual_clock.set(NOW)
    metered_market(db, NOW - timedelta(days=10))
    with db.unit_of_work() as session:
        product_id = session.scalar(select(Product.id).where(Product.code == SAAS))
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
        identifiers = [f"group-{n}" for n in range(CUSTOMERS)] + [ODD]
        for n, identifier in enumerate(identifiers):
            buyer_id = session.scalar(
                insert(Buyer)
                .values(account=f"{510000000000 + n}", email=f"g{n}@group.example", created_at=NOW - timedelta(days=9))
                .returning(Buyer.id)
            )
            session.execute(
                insert(Subscription).values(
                    buyer_id=buyer_id,
                    product_id=product_id,
                    customer_identifier=identifier,
                    started_at=NOW - timedelta(days=9),
                    created_at=NOW - timedelta(days=9),
                    purchases={},
                )
            )
    assert seller_id is not None and handle is not None
    yield Principal(Role.SELLER, seller_id, handle)


def _count(db: Database) -> int:
    with db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(UsageRecord)) or 0)


@pytest.mark.rule("MTR-05")
def test_concurrent_requests_with_overlapping_records_store_each_once_MTR_05(db: Database, seller: Principal) -> None:
    """Sixteen requests at once, each key sent by two of them (a retry racing its first attempt): whatever
    requests share a group commit, every key is stored once, exactly one answer accepts it, and every other
    answer for it is a duplicate naming the same record."""
    keys = [(f"group-{c}", d, h) for c in range(CUSTOMERS) for d in ("users", "requests") for h in range(len(HOURS))]
    requests = [keys[n * 18 : n * 18 + 25] for n in range(16)]  # 25 records each, consecutive ones overlap by 7
    sent = Counter(key for batch in requests for key in batch)
    assert max(sent.values()) == 2 and len(sent) == len(keys)
    barrier = threading.Barrier(8)

    def send(batch: list[tuple[str, str, int]]) -> list[tuple[tuple[str, str, int], Outcome]]:
        readings = [Reading(SAAS, d, 1 + c.count("1"), HOURS[h], customer_identifier=c) for c, d, h in batch]
        barrier.wait(timeout=30)  # eight at a time arrive together: they queue for the same commits
        outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
        return list(zip(batch, outcomes, strict=True))

    with ThreadPoolExecutor(8) as pool:
        answers = [pair for answered in pool.map(send, requests) for pair in answered]

    assert _count(db) == len(keys)
    accepted = Counter(key for key, outcome in answers if outcome.status is Status.ACCEPTED)
    assert set(accepted) == set(keys) and set(accepted.values()) == {1}
    ids = {key: outcome.record_id for key, outcome in answers if outcome.status is Status.ACCEPTED}
    for key, outcome in answers:
        assert outcome.status in (Status.ACCEPTED, Status.DUPLICATE), outcome
        assert outcome.record_id == ids[key]
    with db.reader() as session:
        assert set(session.scalars(select(UsageRecord.record_id))) == set(ids.values())


def test_values_an_array_literal_must_quote_are_stored_as_sent(db: Database, seller: Principal) -> None:
    """Quotes, commas, braces and backslashes in a customer identifier (the lookup), and quotes and commas in
    allocation tags (the insert's JSON column), reach the database unchanged."""
    tags = (("team", 'a "b", c'), ("path", "x/y:z@w"))
    readings = [
        Reading(SAAS, "users", 7, HOURS[-1], customer_identifier=ODD, allocations=(Allocation(7, tags),)),
        Reading(SAAS, "requests", 3, HOURS[-1], customer_identifier="group-0"),
    ]
    outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    with db.reader() as session:
        stored = session.execute(
            select(
                Subscription.customer_identifier, UsageRecord.quantity, UsageRecord.allocations, UsageRecord.resource
            )
            .join(Subscription, Subscription.id == UsageRecord.subscription_id)
            .order_by(UsageRecord.quantity)
        ).all()
    assert [tuple(row) for row in stored] == [
        ("group-0", 3, None, ""),
        (ODD, 7, [{"quantity": 7, "tags": dict(tags)}], ""),
    ]
    again = metering.ingest_in(db, seller, readings[:1], source=Source.SELLER)
    assert again[0].status is Status.DUPLICATE and again[0].record_id == outcomes[0].record_id


@pytest.mark.rule("MTR-05")
def test_a_connection_the_server_dropped_is_retried_once_and_stores_once_MTR_05(
    db: Database, seller: Principal
) -> None:
    """PostgreSQL's metering pool does not ping before use: when the server has dropped its connections (a
    restart), the request that finds out is tried once more on a new connection, and its records are stored
    once."""
    if db.dialect != "postgresql":
        pytest.skip("the metering pool without a ping is PostgreSQL's")
    first = metering.ingest_in(
        db, seller, [Reading(SAAS, "users", 1, HOURS[0], customer_identifier="group-1")], source=Source.SELLER
    )
    assert first[0].status is Status.ACCEPTED
    with db.engine.connect() as admin:  # the main pool: drop every other connection to this database
        dropped = admin.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert dropped
    readings = [Reading(SAAS, d, 2, HOURS[1], customer_identifier="group-1") for d in ("users", "requests")]
    outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    assert _count(db) == 3


@pytest.mark.rule("MTR-05")
def test_an_insert_that_lost_a_deadlock_is_tried_again_and_stores_once_MTR_05(
    db: Database, seller: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transactions inserting some of the same keys in opposite orders (a retry sent to another server, or
    to the other commit lane of the same one, while its first attempt is being written) may deadlock:
    PostgreSQL fails one, and that request is tried once more — answered, each record stored once."""
    if db.dialect != "postgresql":
        pytest.skip("deadlocks between writers: PostgreSQL")
    import psycopg

    real = metering._insert_postgres
    calls: list[int] = []

    def lose_the_first(session: Connection, rows: list[dict[str, object]]) -> set[str]:
        calls.append(len(rows))
        if len(calls) == 1:
            if not session.connection.driver_connection.autocommit:  # type: ignore[union-attr]
                real(session, rows)  # written, then the transaction is the deadlock's victim: rolled back
            raise psycopg.errors.DeadlockDetected("deadlock detected")  # in autocommit the statement wrote nothing
        return real(session, rows)

    monkeypatch.setattr(metering, "_insert_postgres", lose_the_first)
    readings = [Reading(SAAS, d, 3, HOURS[2], customer_identifier="group-2") for d in ("users", "requests")]
    outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    assert calls == [2, 2]
    assert _count(db) == 2


def test_only_records_that_need_nothing_but_their_insert_are_written_in_autocommit_BIL_03(
    db: Database, seller: Principal, manual_clock: clock.ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL this hour's records go in as one statement in autocommit (no BEGIN and COMMIT round trips).
    Records that may have to be carried into a later month (BIL-03) or that fall in a day that may be summed
    already are written in a transaction with that work, and so is everything sent in the last minute of a
    month, which may turn before the insert."""
    assert metering.insert_alone([{"period_start": int(HOURS[0].timestamp())}], NOW)
    late_in_month = datetime(2026, 3, 31, 23, 59, 30, tzinfo=UTC)
    assert not metering.insert_alone(
        [{"period_start": int(datetime(2026, 3, 31, 23, tzinfo=UTC).timestamp())}], late_in_month
    )
    assert not metering.insert_alone([{"period_start": int(datetime(2026, 2, 28, 23, tzinfo=UTC).timestamp())}], NOW)
    a_summed_day = datetime(2026, 3, 8, 23, tzinfo=UTC)  # summed 7 hours after it ended
    assert not metering.insert_alone([{"period_start": int(a_summed_day.timestamp())}], NOW)
    if db.dialect != "postgresql":
        return
    real = metering._insert_postgres
    modes: list[bool] = []

    def watch(session: Connection, rows: list[dict[str, object]]) -> set[str]:
        modes.append(session.connection.driver_connection.autocommit)  # type: ignore[union-attr]
        return real(session, rows)

    monkeypatch.setattr(metering, "_insert_postgres", watch)
    metering.ingest_in(
        db, seller, [Reading(SAAS, "users", 1, HOURS[5], customer_identifier="group-3")], source=Source.SELLER
    )
    manual_clock.set(datetime(2026, 4, 1, 3, tzinfo=UTC))  # March's last hours, still inside the window
    last_month = [Reading(SAAS, "users", 1, datetime(2026, 3, 31, 23, 5, tzinfo=UTC), customer_identifier="group-3")]
    metering.ingest_in(db, seller, last_month, source=Source.SELLER)
    assert modes == [True, False]
    assert _count(db) == 2


def _end_subscription(db: Database, identifier: str, at: datetime) -> None:
    with db.unit_of_work() as session:
        session.execute(update(Subscription).where(Subscription.customer_identifier == identifier).values(ended_at=at))


@pytest.mark.rule("MTR-04")
def test_a_remembered_customer_whose_subscription_ended_since_is_refused_MTR_04(
    db: Database, seller: Principal, manual_clock: clock.ManualClock
) -> None:
    """On PostgreSQL a process remembers the customers it has looked up, and the insert checks each record
    against its subscription's current term. A subscription that ended after it was remembered (here, in the
    database behind the process's back, as another server would) refuses the records after its end, in the
    same batch as the ones before it, which are stored; a record refused once is refused again."""
    first = metering.ingest_in(
        db, seller, [Reading(SAAS, "users", 1, HOURS[0], customer_identifier="group-4")], source=Source.SELLER
    )
    assert first[0].status is Status.ACCEPTED
    assert (db.dialect == "postgresql") == bool(db.customer_memory._known)  # remembered where it is used
    _end_subscription(db, "group-4", HOURS[3])
    readings = [
        Reading(SAAS, "users", 2, HOURS[2], customer_identifier="group-4"),  # before the end: stored
        Reading(SAAS, "users", 3, HOURS[4], customer_identifier="group-4"),  # after it: refused
        Reading(SAAS, "users", 3, HOURS[4], customer_identifier="group-4"),  # the same again
        Reading(SAAS, "users", 3, HOURS[4], customer_identifier="group-5"),  # another customer: stored
    ]
    outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REFUSED, Status.REFUSED, Status.ACCEPTED]
    assert outcomes[1].problem is Problem.NOT_SUBSCRIBED and outcomes[2].problem is Problem.NOT_SUBSCRIBED
    again = metering.ingest_in(db, seller, readings[1:2], source=Source.SELLER)
    assert again[0].problem is Problem.NOT_SUBSCRIBED
    assert _count(db) == 3


@pytest.mark.rule("MTR-05")
def test_a_remembered_customer_s_resent_record_is_a_duplicate_MTR_05(db: Database, seller: Principal) -> None:
    """A record sent again for a remembered customer is found as the duplicate it is, not checked again as if
    its subscription had ended; one with another quantity is a conflict."""
    reading = Reading(SAAS, "users", 5, HOURS[1], customer_identifier="group-6")
    [first] = metering.ingest_in(db, seller, [reading], source=Source.SELLER)
    [second] = metering.ingest_in(db, seller, [reading], source=Source.SELLER)
    [third] = metering.ingest_in(db, seller, [reading._replace(quantity=6)], source=Source.SELLER)
    assert first.status is Status.ACCEPTED
    assert second.status is Status.DUPLICATE and second.record_id == first.record_id
    assert third.problem is Problem.DUPLICATE_CONFLICT
    assert _count(db) == 1


def test_customer_memory_is_bounded(db: Database, seller: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory of customers is emptied when full, so a process metering for very many customers keeps a
    bounded set; what it forgets is read again."""
    if db.dialect != "postgresql":
        pytest.skip("customers are remembered on PostgreSQL")
    monkeypatch.setattr(CustomerMemory, "LIMIT", 3)
    readings = [Reading(SAAS, "users", 1, HOURS[1], customer_identifier=f"group-{n}") for n in range(CUSTOMERS)]
    outcomes = metering.ingest_in(db, seller, readings, source=Source.SELLER)
    assert all(o.status is Status.ACCEPTED for o in outcomes)
    assert len(db.customer_memory._known) <= 3
    outcomes = metering.ingest_in(
        db, seller, [r._replace(dimension="requests") for r in readings], source=Source.SELLER
    )
    assert all(o.status is Status.ACCEPTED for o in outcomes)
    assert _count(db) == 2 * CUSTOMERS


@pytest.mark.rule("MTR-04")
def test_a_record_resent_after_its_remembered_subscription_ended_is_refused_as_before_MTR_04(
    db: Database, seller: Principal
) -> None:
    """The subscription's term is checked before duplicates, whether the customer was remembered or not: a
    record of an hour already stored, timestamped after the subscription ended within that hour, is refused
    as not subscribed rather than taken for a duplicate of the earlier record."""
    early = Reading(SAAS, "users", 4, HOURS[2], customer_identifier="group-7")
    [first] = metering.ingest_in(db, seller, [early], source=Source.SELLER)
    assert first.status is Status.ACCEPTED
    _end_subscription(db, "group-7", HOURS[2] + timedelta(minutes=10))
    late = early._replace(timestamp=HOURS[2] + timedelta(minutes=30))  # the same hour, after the end
    [outcome] = metering.ingest_in(db, seller, [late], source=Source.SELLER)
    assert outcome.problem is Problem.NOT_SUBSCRIBED
    assert _count(db) == 1
