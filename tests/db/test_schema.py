"""The database layer on every dialect: UTC instants, migrations that match the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from agora import migrate
from agora.db import Database, normalise_url, open_database
from agora.migrate import include_object_for
from agora.models import AuditEvent, Base, Buyer


def test_datetimes_come_back_aware_and_in_utc(db: Database) -> None:
    local = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    with db.unit_of_work() as session:
        session.add(AuditEvent(at=local, actor="t", action="a.b", target_type="t", target_id="1"))
    with db.reader() as session:
        stored = session.scalars(select(AuditEvent.at)).one()
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.unit_of_work() as session:
        session.add(AuditEvent(at=datetime(2026, 3, 1), actor="t", action="a.b", target_type="t", target_id="1"))
        session.flush()


def test_buyer_accounts_are_twelve_characters_in_the_schema_too(db: Database) -> None:
    with pytest.raises((IntegrityError, DataError)), db.unit_of_work() as session:
        session.add(Buyer(account="1234567890123", email="x@y.example"))
        session.flush()


def test_migrations_build_exactly_the_models_schema(db: Database) -> None:
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.engine.connect() as connection:
        opts = {"compare_type": True, "include_object": include_object_for(db.dialect)}
        context = MigrationContext.configure(connection, opts=opts)
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_twice_is_harmless(db: Database) -> None:
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'new' / 'agora.db'}")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_database_urls_are_normalised_to_psycopg3() -> None:
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
