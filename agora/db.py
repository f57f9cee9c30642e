"""Engine, sessions and the column types every table uses.

SQLite is the embedded default (WAL, foreign keys on, `BEGIN IMMEDIATE` so two writers queue instead of one
failing with "database is locked"); PostgreSQL is the scale-out database. Services `flush()`; the unit of
work (request dependency, job runner, CLI command) commits or rolls back.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import JSON, Connection, DateTime, Engine, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from agora.config import Settings, get_settings
from agora.validation import clean_text

if TYPE_CHECKING:
    from agora.metering.checks import CustomerMemory

HOT_CONNECTIONS = 8  # PostgreSQL connections a process keeps for metering: its database threads (compat.endpoint)
GROUP_LANES = {"postgresql": 2}  # group commits of a process at once (`GroupCommit`); SQLite has one writer
JSONType = JSON().with_variant(JSONB(), "postgresql")
T = TypeVar("T")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every dialect (SQLite stores naive UTC and forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_url(url: str) -> str:
    """Accept the common spellings; psycopg 3 is the PostgreSQL driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_deserializer=_sqlite_json
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_json(text: str) -> Any:
    """SQLite's JSON columns keep any text JSON can spell, a lone UTF-16 surrogate included (stored before the
    API refused them at its edge; PostgreSQL's JSONB never takes one). Such a string is read as U+FFFD, so no
    stored value can make a response unwritable."""
    value = json.loads(text)
    return clean_text(value) if "\\ud" in text.lower() else value


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE below is what actually runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        deferred = connection.get_execution_options().get("agora_deferred", False)
        # Straight on the driver's cursor: every transaction of the application starts here, and a full
        # SQLAlchemy execution costs more than the BEGIN itself.
        cursor = connection.connection.cursor()
        cursor.execute("BEGIN" if deferred else "BEGIN IMMEDIATE")
        cursor.close()


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]
    # SQLite only: writers queue on an flock of this file before BEGIN IMMEDIATE. A blocked flock wakes the
    # moment the holder lets go; SQLite's own busy handler polls with sleeps of up to 100 ms, which under
    # many concurrent writers (metering) costs more than the writes themselves.
    write_lock: Path | None = None
    group: GroupCommit = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # SQLite has one writer at a time; PostgreSQL takes concurrent ones, and while one group's insert runs
        # on the server (one core), the next can be inserting on the other instead of queuing behind it.
        self.group = GroupCommit(self, lanes=GROUP_LANES.get(self.dialect, 1))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @cached_property
    def customer_memory(self) -> CustomerMemory:
        """Metering's customers of this database, remembered by this process (`CustomerMemory`)."""
        from agora.metering.checks import CustomerMemory

        return CustomerMemory()

    @cached_property
    def _deferred_engine(self) -> Engine:
        return self.engine.execution_options(agora_deferred=True)

    @contextmanager
    def unit_of_work(self, *, deferred: bool = False) -> Iterator[Session]:
        """One transaction: commits when the block ends normally, rolls back on any exception.

        On SQLite it takes the write lock at BEGIN, so concurrent writers queue instead of failing. A
        `deferred` unit takes the lock at its first write instead — for jobs that may wait on the network
        before writing; if another writer got in first, the job fails and is retried.
        """
        bind = self._deferred_engine if deferred else self.engine
        with self._writer(deferred), self.sessions(bind=bind) as session, session.begin():
            yield session

    @contextmanager
    def _writer(self, deferred: bool) -> Iterator[None]:
        if self.write_lock is None or deferred:
            yield
            return
        fd = os.open(self.write_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only transaction: on SQLite it never waits for writers (WAL snapshot)."""
        with self.sessions(bind=self._deferred_engine) as session:
            yield session  # closing the session rolls the read transaction back

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        """`reader` without the ORM: a connection in a read transaction, for hot paths that run their own SQL.
        On PostgreSQL the connection is in autocommit: each statement reads its own snapshot, and no BEGIN
        and ROLLBACK cost two round trips (and the server's CPU) per request. Its callers need no snapshot
        across statements; a SELECT … FOR UPDATE there locks nothing beyond its own statement."""
        with self._read_engine.connect() as connection:
            yield connection  # closing it rolls the read transaction back (SQLite)

    @cached_property
    def _read_engine(self) -> Engine:
        if self.dialect == "postgresql":
            return self._hot_engine.execution_options(isolation_level="AUTOCOMMIT")
        return self._deferred_engine

    @cached_property
    def _hot_engine(self) -> Engine:
        """PostgreSQL: the pool of the metering hot path (`read_only`, `write_together`), without the ping
        before each checkout: on a loaded 2-core host a round trip costs more than the statement it guards,
        and this path takes two connections a request. A connection that died (the server restarted) fails
        its statement; the caller asks `worth_retrying`, which empties this pool, and tries once more
        (`metering.service.ingest_in`). Elsewhere the main pool pings."""
        if self.dialect != "postgresql":
            return self.engine
        return create_engine(self.engine.url, pool_pre_ping=False, pool_size=HOT_CONNECTIONS, max_overflow=4)

    @contextmanager
    def unit_of_work_core(self) -> Iterator[Connection]:
        """`unit_of_work` without the ORM: a connection in a write transaction, committed when the block ends
        normally. A Session costs about 50 µs more per transaction, which a hot path committing every
        millisecond notices. On PostgreSQL it runs on metering's pool (`_hot_engine`), as the group commit does."""
        with self._writer(False), self._hot_engine.begin() as connection:
            yield connection

    def worth_retrying(self, error: BaseException) -> bool:
        """Whether a hot-path call (`read_only`, `write_together`) that failed with `error` may be tried once
        more, on PostgreSQL: its connection died (the server restarted or dropped it; its pool is then
        emptied, as its other connections died too) or its transaction was a deadlock's victim. Only for work
        that may run twice (metering's inserts skip what is stored)."""
        if self.dialect != "postgresql":
            return False
        cause = error.orig if isinstance(error, DBAPIError) else error
        if not isinstance(cause, self.engine.dialect.loaded_dbapi.OperationalError):
            return False
        state = getattr(cause, "sqlstate", None) or ""
        if state in ("40P01", "40001"):  # deadlock, serialization failure
            return True
        if not state or state.startswith(("08", "57P")):  # connection failure, server shutting down
            self._hot_engine.dispose()
            return True
        return False

    def write_together(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in a transaction shared with the writes of this process's other threads that
        arrive meanwhile (`GroupCommit`); returns once it is committed."""
        return self.group.run(work)

    def dispose(self) -> None:
        if "_hot_engine" in self.__dict__ and self._hot_engine is not self.engine:
            self._hot_engine.dispose()
        self.engine.dispose()


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    wake: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    turn: bool = False  # handed a lane: commit the next group
    result: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """Group commit: writes that arrive while another is being committed are committed together after it, in
    one transaction — one write lock, one BEGIN and one COMMIT for all of them (on SQLite every commit writes
    whole pages to the WAL, and two processes hand the lock back and forth once per transaction).

    Leader and followers, no thread of its own: the first writer to arrive commits what is queued; writers
    arriving meanwhile wait, and when it is done the oldest of them commits the next group. Every writer
    returns only after its own work is committed, so nothing answered is less durable than a unit of work of
    its own. If a group fails, each of its jobs is run again alone, so one bad job fails only its own caller:
    jobs must therefore be functions of the connection alone (nothing done before a rollback may stick).

    `lanes` groups may be committed at once, each by its own leader (PostgreSQL: 2). A writer handed a lane
    whose own write another lane took meanwhile commits what is queued, or gives the lane back, and waits.
    On PostgreSQL a group whose works all say `one_statement` (they are one statement together, `run_group`)
    runs in autocommit: the statement is its own transaction, without BEGIN and COMMIT round trips.
    """

    def __init__(self, db: Database, lanes: int = 1) -> None:
        self._db = db
        self._lanes = lanes  # groups committed at once (a turn per lane)
        self._mutex = threading.Lock()
        self._queue: list[_Job[Any]] = []
        self._leaders = 0  # turns taken

    def run(self, work: Callable[[Connection], T]) -> T:
        job = _Job(work)
        with self._mutex:
            self._queue.append(job)
            if self._leaders < self._lanes:
                self._leaders += 1
                job.turn = True
        while True:
            with self._mutex:
                turn, job.turn, finished = job.turn, False, job.finished
            if turn:  # commit what is queued (this job, unless another lane took it meanwhile)
                self._lead()
                continue
            if finished:
                return job.outcome()
            job.wake.wait()
            job.wake.clear()  # before the flags are read again: a wake set after this is not lost

    def _lead(self) -> None:
        with self._mutex:
            group, self._queue = self._queue, []
        try:
            if group:
                self._commit(group)
        finally:
            for job in group:
                if not job.finished:  # interrupted (BaseException): the caller must not wait for ever
                    job.error = job.error or RuntimeError("the group commit was interrupted")
                    job.finished = True
            with self._mutex:
                # The oldest waiting writer not handed a lane already (by another lane) commits the next group.
                following = next((job for job in self._queue if not job.turn), None)
                if following is not None:
                    following.turn = True
                else:
                    self._leaders -= 1
            for job in group:
                job.wake.set()
            if following is not None:
                following.wake.set()

    def _commit(self, group: list[_Job[Any]]) -> None:
        try:
            one_statement = all(getattr(job.work, "one_statement", False) for job in group)
            # Works that are one statement together (`run_group`): PostgreSQL commits it on its own.
            begin = (
                self._db.read_only if one_statement and self._db.dialect == "postgresql" else self._db.unit_of_work_core
            )
            with begin() as connection:
                results = run_group([job.work for job in group], connection)
        except Exception as error:
            if len(group) == 1:
                group[0].error, group[0].finished = error, True
                return
            for job in group:  # rolled back: run each alone, so only a failing job fails
                self._commit([job])
            return
        for job, result in zip(group, results, strict=True):
            job.result, job.finished = result, True


def run_group(works: list[Callable[[Connection], Any]], connection: Connection) -> list[Any]:
    """Each work's result, in order. Works that carry a `together` function (the same one) are done by one call
    of it, `together(works, connection)` returning their results in order: metering's inserts of a group
    become one statement. The others are called one by one."""
    results: list[Any] = [None] * len(works)
    combined: dict[Any, list[int]] = {}
    for index, work in enumerate(works):
        together = getattr(work, "together", None)
        if together is None:
            results[index] = work(connection)
        else:
            combined.setdefault(together, []).append(index)
    for together, indexes in combined.items():
        for index, result in zip(indexes, together([works[i] for i in indexes], connection), strict=True):
            results[index] = result
    return results


def open_database(url: str | None = None, settings: Settings | None = None) -> Database:
    settings = settings or get_settings()
    engine = make_engine(url or settings.database_url)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    write_lock = Path(database + "-writelock") if database and database != ":memory:" else None
    return Database(engine, sessionmaker(engine, expire_on_commit=False), write_lock)
