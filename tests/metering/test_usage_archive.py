"""`agora usage archive --before YYYY-MM` (issue 16) on every database: a closed, invoiced month only
(BIL-03), written to a checksummed file before its usage is dropped, so a crash midway loses nothing;
billing of later months and reports carry on."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from agora import clock, jobs
from agora.auth import Principal
from agora.billing import payouts, runs
from agora.cli import app
from agora.db import Database
from agora.metering import archive, partitions
from agora.metering import service as metering
from agora.metering.records import Reading, Source
from agora.models import Product, Role, Seller, UsageRecord
from agora.tasks import register_all
from tests.factories.metering import BUYER, SAAS, metered_market

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MARCH, APRIL = "2026-03", "2026-04"


def meter_at(db: Database, hour: datetime, quantity: int, dimension: str = "users") -> None:
    with db.unit_of_work() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
        assert seller_id is not None and handle is not None
        reading = Reading(SAAS, dimension, quantity, hour, customer_identifier="cust-1")
        [outcome] = metering.ingest(session, Principal(Role.SELLER, seller_id, handle), [reading], source=Source.SELLER)
        assert outcome.ok, outcome


def stored(db: Database, period: str) -> int:
    start, end = partitions.bounds(period)
    with db.reader() as session:
        return (
            session.scalar(
                select(func.count()).where(UsageRecord.period_start >= start, UsageRecord.period_start < end)
            )
            or 0
        )


def march_and_april(db: Database, manual_clock: clock.ManualClock) -> None:
    """Usage in March (3 hours) and April (2 hours); March closed and invoiced on 2 April."""
    manual_clock.set(T0)
    metered_market(db, T0)
    for hour in range(3):
        manual_clock.set(T0 + timedelta(days=5, hours=hour))
        meter_at(db, clock.now(), 10 + hour)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    runs.close(db, MARCH)
    for hour in range(2):
        manual_clock.set(datetime(2026, 4, 3, hour, tzinfo=UTC))
        meter_at(db, clock.now(), 5)


def users_total(invoices: list[dict[str, object]]) -> str:
    [invoice] = [i for i in invoices if i["buyer"] == BUYER]
    lines = invoice["lines"]
    assert isinstance(lines, list)
    return str(sum(int(line["quantity"]) for line in lines if line["dimension"] == "users"))


@pytest.mark.rule("BIL-03")
def test_an_invoiced_month_is_written_then_dropped_and_later_months_still_bill_BIL_03(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    march_and_april(db, manual_clock)
    march_invoices = runs.invoices_of(db, MARCH)
    manual_clock.set(datetime(2026, 4, 20, tzinfo=UTC))

    [done] = archive.archive(db, APRIL, tmp_path / "archive")

    assert (done.period, done.records, done.quantity) == (MARCH, 3, 33)
    assert done.path == tmp_path / "archive" / "usage-2026-03.jsonl.gz"
    digest = hashlib.sha256(done.path.read_bytes()).hexdigest()
    assert done.sha256 == digest
    assert (tmp_path / "archive" / "usage-2026-03.jsonl.gz.sha256").read_text() == f"{digest}  usage-2026-03.jsonl.gz\n"
    head, rows = archive.read(done.path)
    assert head["period"] == MARCH and head["records"] == 3 and head["quantity"] == 33
    assert [row["quantity"] for row in rows] == [10, 11, 12]
    assert rows[0]["client_token"] is None and rows[0]["resource"] == ""  # NULL and "" kept apart
    assert set(rows[0]) == set(head["columns"])
    assert stored(db, MARCH) == 0 and stored(db, APRIL) == 2
    with db.read_only() as connection:
        assert MARCH not in partitions.monthly(connection)  # on PostgreSQL: detached and dropped

    assert runs.invoices_of(db, MARCH) == march_invoices  # March's invoices stay as they were
    manual_clock.set(datetime(2026, 5, 2, tzinfo=UTC))
    april = runs.close(db, APRIL)
    assert users_total(april) == "10"
    with db.reader() as session:  # the seller's report of April reads its usage as before
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        assert seller_id is not None
        report = payouts.report(session, seller_id, APRIL)
    assert [(u["dimension"], u["quantity"]) for u in report["usage"] if u["product"] == SAAS] == [("users", 10)]

    assert archive.archive(db, APRIL, tmp_path / "archive") == []  # nothing left before April


@pytest.mark.rule("BIL-03")
def test_an_open_month_is_refused_by_name_and_nothing_is_written_BIL_03(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    march_and_april(db, manual_clock)
    manual_clock.set(datetime(2026, 5, 10, tzinfo=UTC))
    with pytest.raises(archive.ArchiveRefused, match=r"^2026-04: it is not closed yet"):
        archive.archive(db, "2026-05", tmp_path / "archive")
    assert not (tmp_path / "archive").exists()
    assert stored(db, MARCH) == 3 and stored(db, APRIL) == 2  # March is not archived either


@pytest.mark.rule("BIL-03")
def test_a_closed_month_whose_invoices_are_still_to_be_made_is_refused_BIL_03(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(T0 + timedelta(days=5))
    meter_at(db, clock.now(), 10)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    register_all()
    with db.unit_of_work() as session:
        jobs.enqueue(session, "billing.close_period", {"period": MARCH}, dedupe_key=f"close-now:{MARCH}")
    assert jobs.Worker(db).run_once()  # closed: the invoice jobs are queued, not run
    with pytest.raises(archive.ArchiveRefused, match=r"^2026-03: it is closed but not invoiced yet"):
        archive.archive(db, APRIL, tmp_path)
    assert stored(db, MARCH) == 1


@pytest.mark.rule("BIL-03")
def test_a_month_whose_late_usage_is_billed_in_an_open_month_is_refused_BIL_03(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(datetime(2026, 3, 31, 12, tzinfo=UTC))
    meter_at(db, clock.now(), 2)
    manual_clock.set(datetime(2026, 4, 1, 1, 30, tzinfo=UTC))
    runs.close(db, MARCH)
    meter_at(db, datetime(2026, 3, 31, 23, tzinfo=UTC), 7)  # late: March is closed, so it is April's to bill
    late = r"^2026-03: some of its usage arrived late and is billed in 2026-04, which is not closed yet"
    with pytest.raises(archive.ArchiveRefused, match=late):
        archive.archive(db, APRIL, tmp_path)
    manual_clock.set(datetime(2026, 5, 2, tzinfo=UTC))
    runs.close(db, APRIL)
    [done] = archive.archive(db, APRIL, tmp_path)
    assert (done.period, done.records) == (MARCH, 2)


def test_a_crash_between_writing_and_dropping_loses_nothing_and_running_again_finishes(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    march_and_april(db, manual_clock)

    def crash(*_: object) -> None:
        raise KeyboardInterrupt  # the process dies after the file is durable, before the drop

    monkeypatch.setattr(archive, "_drop", crash)
    with pytest.raises(KeyboardInterrupt):
        archive.archive(db, APRIL, tmp_path)
    first = (tmp_path / "usage-2026-03.jsonl.gz").read_bytes()
    assert stored(db, MARCH) == 3
    monkeypatch.undo()
    [done] = archive.archive(db, APRIL, tmp_path)
    assert done.path is not None and done.path.read_bytes() == first  # the same file, rewritten
    assert stored(db, MARCH) == 0
    assert not list(tmp_path.glob("*.partial"))


def test_usage_stored_while_the_file_is_written_refuses_the_drop(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    march_and_april(db, manual_clock)
    with db.reader() as session:
        existing = session.scalars(select(UsageRecord)).first()
        assert existing is not None
        ids = {"subscription_id": existing.subscription_id, "product_id": existing.product_id}
        ids["buyer_id"] = existing.buyer_id
    write = archive._write

    def write_then_meter(*args: object) -> str:
        digest = write(*args)  # type: ignore[arg-type]
        with db.unit_of_work() as session:  # as if a record were stored between the file and the drop
            at = int(datetime(2026, 3, 9, tzinfo=UTC).timestamp())
            session.add(
                UsageRecord(
                    record_id="late-one", period_start=at, dimension="users", resource="", quantity=1,
                    source="seller", received_at=at, **ids,
                )
            )  # fmt: skip
        return digest

    monkeypatch.setattr(archive, "_write", write_then_meter)
    with pytest.raises(archive.ArchiveRefused, match=r"^2026-03: usage was stored while it was written"):
        archive.archive(db, APRIL, tmp_path)
    assert stored(db, MARCH) == 4


def test_the_command_archives_and_refuses_with_the_month_named(
    db: Database, manual_clock: clock.ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    march_and_april(db, manual_clock)
    monkeypatch.setenv("AGORA_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    from agora import config

    config.reset_settings()
    runner = CliRunner()
    bad = runner.invoke(app, ["usage", "archive", "--before", "2026-4"])
    assert bad.exit_code == 2 and "--before: '2026-4' is not a month like 2026-03" in bad.output
    refused = runner.invoke(app, ["usage", "archive", "--before", "2026-05", "--to", str(tmp_path)])
    assert refused.exit_code == 2
    assert "--before: 2026-04: it is not closed yet" in refused.output
    done = runner.invoke(app, ["usage", "archive", "--before", APRIL, "--to", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "2026-03" in done.output and "3 records" in done.output
    assert "1 month(s) archived before 2026-04" in done.output
    assert stored(db, MARCH) == 0
