"""Alembic, driven from code: `agora migrate`, and `serve`/`load`/`worker` on start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from agora.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Objects made by hand in migrations (the FTS5 table and its shadow tables, PostgreSQL's stored
    tsvector column and its GIN index, usage_records' monthly partitions) are not in the models;
    autogenerate and schema comparisons leave them alone."""
    return not (name or "").startswith(
        ("search_fts", "ix_search_documents_tsv", "search_tsv", "usage_records_p", "usage_records_default")
    )


# Foreign keys of usage_records that migration 0020 dropped on PostgreSQL only (dropping one on SQLite
# rebuilds the table): the models no longer have them, SQLite databases still do.
_SQLITE_ONLY_KEYS = (
    "fk_usage_records_buyer_id_buyers",
    "fk_usage_records_product_id_products",
    "fk_usage_records_subscription_id_subscriptions",
)


def _include_sqlite(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "foreign_key_constraint" and name in _SQLITE_ONLY_KEYS:
        return False
    return include_object(obj, name, type_, reflected, compare_to)


def include_object_for(dialect: str) -> IncludeObject:
    """`include_object` for a database of `dialect`. On PostgreSQL the client-token index of usage_records
    is one unique index per monthly partition (`agora.metering.partitions`), not the parent's: a
    partitioned table's unique index must contain the partition key."""
    if dialect != "postgresql":
        return _include_sqlite

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "index" and name == "uq_usage_records_client_token":
            return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(db: Database, message: str) -> None:
    """Autogenerate a new migration against `db` (a developer command, not used at run time)."""
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
