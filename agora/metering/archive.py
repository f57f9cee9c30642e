"""`agora usage archive --before YYYY-MM`: months of usage written to files and dropped from the database.

Only a month that is closed and invoiced is archived (its invoices hold what billing needs from it from
then on), and only when every record of it stored late, after its close, was billed in a month that is
itself closed and invoiced (BIL-03). Any other month before the cut refuses the whole command, naming it.

Each month becomes `usage-YYYY-MM.jsonl.gz`: one JSON object per record, every column, in id order.
JSON lines rather than CSV: it keeps every value exactly as stored (NULL apart from an empty string,
integers as integers, the allocations as JSON), and `agora.exports`' CSV writer, made for spreadsheets,
would prefix a resource such as `=x` with a quote. Beside it `usage-YYYY-MM.jsonl.gz.sha256`, in
`sha256sum -c` format, and the first line of the file states the month, its record count and total.

A crash at any point loses nothing: the file is written under a temporary name, fsync'd, renamed and its
directory fsync'd, then read back and checked against the database; only then are the month's rows
dropped in one transaction — on PostgreSQL its partition detached and dropped, on SQLite its rows
deleted — which first checks that the month still holds exactly the records written (a record stored
meanwhile refuses the drop; running the command again writes it too). Running it again after a crash
rewrites the same file and finishes the drop.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, text

from agora.billing import service
from agora.billing.rating import next_period, period_of
from agora.db import Database
from agora.metering import partitions
from agora.metering.records import USAGE, from_epoch
from agora.models import BillingPeriod, Job, JobState

FORMAT = "agora-usage-archive/1"
_BATCH = 10_000


class ArchiveRefused(Exception):
    pass


@dataclass(frozen=True)
class Archived:
    period: str
    records: int
    quantity: int
    path: Path | None  # None: the month had an empty partition and nothing to write
    sha256: str | None


def archive(db: Database, before: str, directory: Path) -> list[Archived]:
    """Archive every month strictly before `before` that holds usage (or has a partition); refuses, writing
    and dropping nothing, if any of them is not closed and invoiced."""
    with db.read_only() as connection:
        months = _months_before(connection, before)
        for period in months:
            _check(connection, period)
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for period in months:
        done.append(_archive_month(db, period, directory))
    return done


def _months_before(connection: Connection, before: str) -> list[str]:
    cut, _ = partitions.bounds(before)
    first = connection.scalar(select(func.min(USAGE.c.period_start)).where(USAGE.c.period_start < cut))
    months = {p for p in partitions.monthly(connection) if p < before}
    if first is not None:
        period = period_of(from_epoch(first))
        while period < before:
            start, end = partitions.bounds(period)
            if connection.scalar(
                select(USAGE.c.id).where(USAGE.c.period_start >= start, USAGE.c.period_start < end).limit(1)
            ):
                months.add(period)
            period = next_period(period)
    return sorted(months)


def _check(connection: Connection, period: str) -> None:
    """Refuse unless `period` is closed and invoiced, and so is every month its late records are billed in."""
    problem = _not_invoiced(connection, period)
    if problem:
        raise ArchiveRefused(f"{period}: {problem}; only a closed, invoiced month is archived")
    start, end = partitions.bounds(period)
    billed_in = connection.scalars(
        select(USAGE.c.billed_in)
        .where(USAGE.c.period_start >= start, USAGE.c.period_start < end, USAGE.c.billed_in.is_not(None))
        .distinct()
    ).all()
    for later in sorted(b for b in billed_in if b is not None):
        problem = _not_invoiced(connection, later)
        if problem:
            raise ArchiveRefused(
                f"{period}: some of its usage arrived late and is billed in {later}, which "
                f"{problem.removeprefix('it ')} [BIL-03]; archive it once that month is invoiced"
            )


def _not_invoiced(connection: Connection, period: str) -> str | None:
    if connection.scalar(select(BillingPeriod.period).where(BillingPeriod.period == period)) is None:
        return "it is not closed yet (a month closes 24 hours after its end, or with `agora bill`) [BIL-03]"
    pending = connection.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.name.in_(("billing.close_period", service.INVOICE_JOB)),
            Job.state != JobState.DONE.value,
            (Job.dedupe_key.startswith(service.invoice_key(period, ""), autoescape=True))
            | (Job.dedupe_key.in_((f"close:{period}", f"close-now:{period}"))),
        )
    )
    if pending:
        return f"it is closed but not invoiced yet ({pending} billing job(s) of it still to run)"
    return None


def _archive_month(db: Database, period: str, directory: Path) -> Archived:
    start, end = partitions.bounds(period)
    with db.read_only() as connection:
        records, quantity = connection.execute(
            select(func.count(), func.coalesce(func.sum(USAGE.c.quantity), 0)).where(
                USAGE.c.period_start >= start, USAGE.c.period_start < end
            )
        ).one()
    path, digest = None, None
    if records:
        path = directory / f"usage-{period}.jsonl.gz"
        digest = _write(db, period, path, int(records), int(quantity))
        _verify(path, digest, int(records), int(quantity))
    _drop(db, period, int(records), int(quantity))
    return Archived(period, int(records), int(quantity), path, digest)


_COLUMNS = [column.name for column in USAGE.columns]


def _rows(db: Database, start: int, end: int) -> Iterator[dict[str, Any]]:
    query = select(USAGE).where(USAGE.c.period_start >= start, USAGE.c.period_start < end).order_by(USAGE.c.id)
    with db.reader() as session:  # a transaction: PostgreSQL streams through a server-side cursor only in one
        connection = session.connection()
        result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(query)
        for row in result:
            yield dict(row._mapping)


def _write(db: Database, period: str, path: Path, records: int, quantity: int) -> str:
    """Write the month to `path` durably (temporary name, fsync, rename, fsync of the directory); its SHA-256."""
    start, end = partitions.bounds(period)
    partial = path.with_name(path.name + ".partial")
    written = 0
    with open(partial, "wb") as raw:
        with gzip.GzipFile(filename=path.name.removesuffix(".gz"), mode="wb", fileobj=raw, mtime=0) as out:
            head = {"format": FORMAT, "period": period, "records": records, "quantity": quantity, "columns": _COLUMNS}
            out.write((json.dumps(head) + "\n").encode())
            for row in _rows(db, start, end):
                out.write((json.dumps(row, separators=(",", ":"), default=str) + "\n").encode())
                written += 1
        raw.flush()
        os.fsync(raw.fileno())
    if written != records:
        partial.unlink()
        raise ArchiveRefused(f"{period}: {written} records read, {records} counted; usage changed meanwhile, run again")
    os.replace(partial, path)
    _fsync_directory(path.parent)
    digest = _sha256(path)
    checksum = path.with_name(path.name + ".sha256")
    checksum_partial = checksum.with_name(checksum.name + ".partial")
    with open(checksum_partial, "w", encoding="ascii") as file:
        file.write(f"{digest}  {path.name}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(checksum_partial, checksum)
    _fsync_directory(path.parent)
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An archive's head line and records (for checking it, and for restoring it by hand)."""
    with gzip.open(path, "rt", encoding="utf-8") as file:
        head = json.loads(file.readline())
        return head, [json.loads(line) for line in file]


def _verify(path: Path, digest: str, records: int, quantity: int) -> None:
    """Read the written file back: its checksum, its record count and its total must be what was counted."""
    if _sha256(path) != digest:
        raise ArchiveRefused(f"{path}: checksum differs from the one just written; nothing was dropped")
    count = total = 0
    with gzip.open(path, "rt", encoding="utf-8") as file:
        file.readline()
        for line in file:
            count += 1
            total += json.loads(line)["quantity"]
    if (count, total) != (records, quantity):
        raise ArchiveRefused(f"{path}: holds {count} records totalling {total}, not {records} and {quantity}")


def _drop(db: Database, period: str, records: int, quantity: int) -> None:
    """Drop the month in one transaction, once sure it holds exactly what was written."""
    start, end = partitions.bounds(period)
    with db.unit_of_work_core() as connection:
        own = period in partitions.monthly(connection)
        if own:  # detaching takes the parent's exclusive lock anyway: taken first, no insert can deadlock with it
            connection.execute(text(f"LOCK TABLE {partitions.PARENT} IN ACCESS EXCLUSIVE MODE"))
        elif partitions.has_default(connection):  # the month's rows are in the default partition
            connection.execute(text(f"LOCK TABLE {partitions.DEFAULT} IN SHARE MODE"))
        now = connection.execute(
            select(func.count(), func.coalesce(func.sum(USAGE.c.quantity), 0)).where(
                USAGE.c.period_start >= start, USAGE.c.period_start < end
            )
        ).one()
        if (int(now[0]), int(now[1])) != (records, quantity):
            raise ArchiveRefused(
                f"{period}: usage was stored while it was written ({now[0]} records now, {records} written); "
                "nothing was dropped, run the command again"
            )
        if own:  # PostgreSQL routes every record of the month to its partition: dropping it drops them all
            name = partitions.name_of(period)
            connection.execute(text(f"ALTER TABLE {partitions.PARENT} DETACH PARTITION {name}"))
            connection.execute(text(f"DROP TABLE {name}"))
        elif records:
            connection.execute(USAGE.delete().where(USAGE.c.period_start >= start, USAGE.c.period_start < end))
