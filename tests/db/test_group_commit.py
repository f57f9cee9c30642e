"""Group commit (`Database.write_together`): writes of concurrent threads share transactions, each caller returns
only after its own write is committed, and one failing write fails only its own caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, func, insert, select

from agora.db import Database, GroupCommit, run_group
from agora.models import Buyer


def _add_buyer(n: int) -> Callable[[Connection], int]:
    def work(connection: Connection) -> int:
        connection.execute(insert(Buyer).values(account=f"{700000000000 + n}", email=f"g{n}@group.example"))
        return n

    return work


def _count(db: Database) -> int:
    with db.reader() as session:
        return int(
            session.scalar(select(func.count()).select_from(Buyer).where(Buyer.email.like("%@group.example"))) or 0
        )


def test_concurrent_writes_are_all_committed_before_their_callers_return(db: Database) -> None:
    committed_before_return: list[bool] = []
    lock = threading.Lock()

    def write(n: int) -> int:
        result = db.write_together(_add_buyer(n))
        with db.reader() as session:  # a fresh snapshot sees this caller's row: it is committed
            seen = session.scalar(select(Buyer.id).where(Buyer.account == f"{700000000000 + n}")) is not None
        with lock:
            committed_before_return.append(seen)
        return int(result)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(write, range(64)))
    assert results == list(range(64))
    assert all(committed_before_return) and len(committed_before_return) == 64
    assert _count(db) == 64


def test_a_failing_write_fails_only_its_own_caller(db: Database) -> None:
    barrier = threading.Barrier(6)

    def write(n: int) -> int:
        barrier.wait()  # arrive together, so the failing write is likely grouped with the others
        if n == 3:

            def failing(connection: Connection) -> int:
                # written, then rolled back with its group
                connection.execute(insert(Buyer).values(account="799999999999", email="bad@group.example"))
                raise RuntimeError("this write fails")

            return db.write_together(failing)
        return int(db.write_together(_add_buyer(n)))  # type: ignore[arg-type]

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(write, n) for n in range(6)]
    for n, future in enumerate(futures):
        if n == 3:
            with pytest.raises(RuntimeError, match="this write fails"):
                future.result()
        else:
            assert future.result() == n
    assert _count(db) == 5


class _Combined:
    """A job whose group does its work in one call (`together`), as metering's inserts do on PostgreSQL."""

    calls: list[int] = []

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, connection: Connection) -> int:
        return _Combined.together([self], connection)[0]

    @staticmethod
    def together(works: list[_Combined], connection: Connection) -> list[int]:
        _Combined.calls.append(len(works))
        connection.execute(
            insert(Buyer), [{"account": f"{710000000000 + w.n}", "email": f"t{w.n}@group.example"} for w in works]
        )
        return [w.n for w in works]


def test_jobs_sharing_a_together_function_are_done_by_one_call_of_it(db: Database) -> None:
    """A group's jobs that carry the same `together` run as one call, others one by one, each result in its
    place: the hook that makes a group's metering inserts one statement."""
    _Combined.calls = []
    works: list[Callable[[Connection], int]] = [_Combined(1), _add_buyer(2), _Combined(3), _Combined(4)]
    with db.unit_of_work_core() as connection:
        assert run_group(works, connection) == [1, 2, 3, 4]
    assert _Combined.calls == [3]
    assert _count(db) == 4


def test_combined_jobs_of_concurrent_threads_are_each_committed_before_they_return(db: Database) -> None:
    _Combined.calls = []

    def write(n: int) -> int:
        result = db.write_together(_Combined(n))
        with db.reader() as session:
            assert session.scalar(select(Buyer.id).where(Buyer.account == f"{710000000000 + n}")) is not None
        return result

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(write, range(48))) == list(range(48))
    assert sum(_Combined.calls) == 48
    assert _count(db) == 48


@pytest.mark.parametrize("lanes", [2, 3])
def test_several_lanes_commit_every_write_once_and_give_every_lane_back(db: Database, lanes: int) -> None:
    """PostgreSQL commits groups in two lanes at once. With more writers than lanes, a writer handed a lane may
    find its own write taken by the other lane: every write is still committed once before its caller returns,
    and when all is done no lane is left taken (a lost lane would leave the next writers queuing for ever)."""
    if db.dialect != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    group = GroupCommit(db, lanes=lanes)
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def slow_add(n: int) -> Callable[[Connection], int]:
        def work(connection: Connection) -> int:
            nonlocal in_flight, most
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            connection.execute(insert(Buyer).values(account=f"{710000000000 + n}", email=f"l{n}@group.example"))
            time.sleep(0.002)
            with lock:
                in_flight -= 1
            return n

        return work

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda n: group.run(slow_add(n)), range(300)))
    assert results == list(range(300))
    with db.reader() as session:
        assert session.scalar(select(func.count()).where(Buyer.email.like("l%@group.example"))) == 300
    assert group._leaders == 0 and group._queue == []
    assert 1 < most <= lanes  # the lanes were used at once, never more of them
