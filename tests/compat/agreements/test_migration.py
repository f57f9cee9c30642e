"""Migration 0017 gives every subscription made before agreement ids were assigned one of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from agora import migrate
from agora.db import open_database
from agora.models import Subscription
from tests.compat.agreements.market import agreement_market


def test_migration_0017_backfills_agreement_ids(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(db, "0015")
        agreement_market(db, datetime.now(UTC) - timedelta(days=1))
        with db.unit_of_work() as session:
            session.execute(update(Subscription).values(agreement_id=None))  # as before they were assigned
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision()
        with db.reader() as session:
            ids = list(session.scalars(select(Subscription.agreement_id)))
    finally:
        db.dispose()
    assert len(ids) > 10 and len(set(ids)) == len(ids)
    assert all(i is not None and re.fullmatch(r"agmt-[a-z0-9]{25}", i) for i in ids), ids
