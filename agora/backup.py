"""`agora backup FILE`: a consistent copy of the database, taken while Agora runs.

SQLite: the online backup API copies the database in one step from one read snapshot (under WAL, writers
carry on meanwhile), into a self-contained file (rollback journal, no `-wal` beside it) checked with
`PRAGMA integrity_check`. Restoring is copying it back in place of the database with Agora stopped.

PostgreSQL: `pg_dump --format=custom`, itself a consistent snapshot of a live database; restored with
`pg_restore`. pg_dump must be installed (the client tools of the server's major version or newer); without
it the command says what to run instead. The password goes to pg_dump through `PGPASSWORD`, never on its
command line, where other users of the machine could read it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from agora.db import normalise_url


class BackupError(Exception):
    pass


def backup(database_url: str, target: Path, *, pg_dump: str | None = None) -> str:
    """Write the backup of `database_url` to `target` (never overwritten); a line saying what was written."""
    url = make_url(normalise_url(database_url))
    if target.exists():
        raise BackupError(f"{target}: already exists; a backup never overwrites a file")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if url.get_backend_name() == "sqlite":
            what = _sqlite(url, partial)
        elif url.get_backend_name() == "postgresql":
            what = _postgres(url, partial, pg_dump)
        else:
            raise BackupError(f"no backup procedure for {url.get_backend_name()} databases")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)  # a file under the final name is always a whole backup
    return f"{what} to {target}"


def _sqlite(url: URL, partial: Path) -> str:
    path = url.database
    if not path or path == ":memory:" or not Path(path).exists():
        raise BackupError(f"{path or 'the database'}: no such SQLite database")
    source = sqlite3.connect(path, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # every page in one step: one snapshot, however busy the writers are
            copy.execute("PRAGMA journal_mode=DELETE")  # one file; Agora turns WAL back on when it opens it
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
            pages = copy.execute("PRAGMA page_count").fetchone()[0]
        finally:
            copy.close()
    finally:
        source.close()
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    return f"SQLite database {path} ({pages} pages) backed up"


def _postgres(url: URL, partial: Path, pg_dump: str | None) -> str:
    binary = pg_dump or shutil.which("pg_dump")
    libpq_url = URL.create(  # `URL.set(password=None)` would keep the password
        "postgresql", url.username, None, url.host, url.port, url.database, url.query
    ).render_as_string(hide_password=False)
    if binary is None:
        raise BackupError(
            "pg_dump not found: install the PostgreSQL client tools (the server's major version or newer), "
            f"or run: pg_dump --format=custom --file {partial.name.removesuffix('.partial')} '{libpq_url}'"
        )
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    result = subprocess.run(
        [binary, "--format=custom", "--no-owner", "--file", str(partial), "--dbname", libpq_url],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed ({result.returncode}): {result.stderr.strip()}")
    return f"PostgreSQL database {url.database} dumped (pg_dump custom format; restore with pg_restore)"
