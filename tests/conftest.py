"""Shared fixtures: a migrated database on every dialect, a manual clock, an API client.

The database suite runs on SQLite always and on PostgreSQL when AGORA_TEST_POSTGRES_URL is set (`.ci/run`
sets it). Each test gets an empty, migrated database: SQLite copies a migrated template file; PostgreSQL
truncates every table of a schema migrated once per session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from agora import clock, config, migrate
from agora.app import create_app
from agora.auth import forget_access_keys
from agora.db import Database, open_database
from agora.metering.checks import forget_products
from agora.models import Base

POSTGRES_URL = os.environ.get("AGORA_TEST_POSTGRES_URL")
DIALECTS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGORA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("AGORA_SECRET_KEY", "test-secret-key-material")
    monkeypatch.setenv("AGORA_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'agora.db'}")
    monkeypatch.delenv("AGORA_REGION", raising=False)
    config.reset_settings()
    forget_access_keys()
    forget_products()
    yield
    config.reset_settings()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "agora.db"
    db = open_database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> Iterator[str]:
    """A database of its own for this test run (runs in parallel must not wipe each other's tables),
    created next to the one AGORA_TEST_POSTGRES_URL names and dropped at the end."""
    assert POSTGRES_URL
    base, _, _ = POSTGRES_URL.rpartition("/")
    name = f"agora_test_{os.getpid()}"
    admin = open_database(POSTGRES_URL)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    db = open_database(url)
    migrate.upgrade(db)
    db.dispose()
    yield url
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(db: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = tmp_path / "test.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("_postgres_migrated")
    db = open_database(url)
    _truncate(db)
    db.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def manual_clock() -> Iterator[clock.ManualClock]:
    with clock.use_clock(clock.ManualClock(T0)) as moved:
        assert isinstance(moved, clock.ManualClock)
        yield moved


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(db)) as test_client:
        yield test_client


@pytest.fixture
def private_urls_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook endpoints and metrics served by the test on 127.0.0.1 may be fetched (agora.outbound refuses
    loopback by default)."""
    monkeypatch.setenv("AGORA_ALLOW_PRIVATE_URLS", "1")
    config.reset_settings()
