"""`agora backup FILE` and the restore procedure of deploy/README.md: the restored database holds the same
rows in every table. SQLite through the online backup API (also while another connection writes);
PostgreSQL through pg_dump and pg_restore, when they are installed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, make_url, text

from agora import audit, clock, jobs
from agora.backup import BackupError, backup
from agora.db import Database, open_database
from agora.manifest.loader import apply, load_file
from tests.conftest import POSTGRES_URL
from tests.factories.metering import metered_market

DEMO = load_file(Path(__file__).resolve().parents[1] / "examples" / "demo.yaml")
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def fill(db: Database) -> None:
    """The demo marketplace, the metering one, some usage and jobs: rows in most tables."""
    with db.unit_of_work() as session:
        apply(DEMO, session)
    metered_market(db, clock.now() - timedelta(days=3))
    with db.unit_of_work() as session:
        for n in range(5):
            jobs.enqueue(session, "test.backup", {"n": n, "text": "é ✓"})
            audit.record(session, actor="test", action="test.backup", target_type="row", target_id=str(n))


def contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, the migrations' bookkeeping and hand-made search tables included."""
    with db.engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        found = {}
        for table in tables:
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            found[table] = sorted((tuple(row) for row in rows), key=repr)
    return found


def test_a_sqlite_backup_restores_to_an_identical_database(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'live.db'}")
    from agora import migrate

    migrate.upgrade(db)
    fill(db)
    target = tmp_path / "agora.backup"

    said = backup(str(db.engine.url), target)

    assert said.startswith(f"SQLite database {tmp_path / 'live.db'}") and said.endswith(f"to {target}")
    restored_path = tmp_path / "restored" / "agora.db"  # the procedure: copy it in place, with Agora stopped
    restored_path.parent.mkdir()
    shutil.copyfile(target, restored_path)
    restored = open_database(f"sqlite:///{restored_path}")
    original = contents(db)
    assert sum(len(rows) for rows in original.values()) > 100
    assert contents(restored) == original
    assert not (tmp_path / "agora.backup-wal").exists()  # the backup is one file
    with pytest.raises(BackupError, match="already exists"):
        backup(str(db.engine.url), target)
    db.dispose()
    restored.dispose()


def test_a_sqlite_backup_taken_while_another_connection_writes_is_one_consistent_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE pairs (n INTEGER, half TEXT, filler TEXT)")
    stop = threading.Event()

    def write() -> None:  # each transaction writes both halves of a pair: a torn copy would show one alone
        writer = sqlite3.connect(path, isolation_level=None, timeout=30)
        n = 0
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            for half in ("a", "b"):
                writer.execute("INSERT INTO pairs VALUES (?, ?, ?)", (n, half, "x" * 2000))
            writer.execute("COMMIT")
            n += 1
        writer.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        targets = [tmp_path / f"busy-{n}.backup" for n in range(5)]
        for target in targets:
            backup(f"sqlite:///{path}", target)
    finally:
        stop.set()
        writer.join()
    counts = []
    for target in targets:
        with sqlite3.connect(target) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            halves = dict(copy.execute("SELECT half, count(*) FROM pairs GROUP BY half").fetchall())
        assert halves.get("a", 0) == halves.get("b", 0)
        counts.append(halves.get("a", 0))
    assert counts[-1] > 0


@pytest.mark.slow
def test_agora_backup_on_the_command_line_and_its_refusal_to_overwrite(tmp_path: Path) -> None:
    from agora import migrate

    db = open_database()  # the CLI's own database (AGORA_DATABASE_URL of the test's environment)
    migrate.upgrade(db)
    fill(db)

    def agora(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agora", *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
        )

    done = agora("backup", str(tmp_path / "cli.backup"))
    assert done.returncode == 0, done.stderr
    assert "backed up to" in done.stdout
    assert contents(open_database(f"sqlite:///{tmp_path / 'cli.backup'}")) == contents(db)
    again = agora("backup", str(tmp_path / "cli.backup"))
    assert again.returncode == 2
    assert again.stderr == f"{tmp_path / 'cli.backup'}: already exists; a backup never overwrites a file\n"
    db.dispose()


def _postgres_tools() -> Path | None:
    for directory in (POSTGRES_BIN, *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)):
        if (directory / "pg_dump").exists() and (directory / "pg_restore").exists():
            return directory
    return None


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="AGORA_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgres_backup_restored_with_pg_restore_is_identical(db: Database, db_url: str, tmp_path: Path) -> None:
    tools = _postgres_tools()
    if tools is None:
        pytest.skip("pg_dump and pg_restore are not installed on this machine")
    fill(db)
    target = tmp_path / "agora.dump"

    said = backup(db_url, target, pg_dump=str(tools / "pg_dump"))

    assert "pg_dump custom format" in said
    url = make_url(db_url)
    restored_name = f"{url.database}_restored"
    admin = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{restored_name}"'))
        connection.execute(text(f'CREATE DATABASE "{restored_name}"'))
    restored_url = url.set(database=restored_name)
    try:
        libpq = restored_url.set(drivername="postgresql").render_as_string(hide_password=False)
        result = subprocess.run(
            [str(tools / "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", libpq, str(target)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        restored = open_database(restored_url.render_as_string(hide_password=False))
        original = contents(db)
        assert sum(len(rows) for rows in original.values()) > 100
        assert contents(restored) == original
        restored.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)'))


def test_without_pg_dump_the_backup_says_what_to_run_and_never_shows_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing called pg_dump here
    with pytest.raises(BackupError) as refused:
        backup("postgresql+psycopg://agora:secret@db.example/agora", tmp_path / "x.dump")
    message = str(refused.value)
    assert message.startswith("pg_dump not found: install the PostgreSQL client tools")
    assert message.endswith("run: pg_dump --format=custom --file x.dump 'postgresql://agora@db.example/agora'")
    assert "secret" not in message
    assert not list(tmp_path.iterdir())
