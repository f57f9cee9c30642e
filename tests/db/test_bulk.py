"""`agora.bulk`: many rows in one statement and many ids in one parameter, read back exactly as written on both
databases, whatever the text holds (quotes, backslashes, braces, commas, the word NULL)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import DBAPIError

from agora.bulk import among, array_literal, insert_rows
from agora.db import Database
from agora.models import BillingPeriod, UsageRollup

ROLLUPS: Table = UsageRollup.__table__  # type: ignore[assignment]
PERIODS: Table = BillingPeriod.__table__  # type: ignore[assignment]
AWKWARD = ["plain", 'quote " inside', "back\\slash", "{braces}", "a,b", "NULL", "", " spaced ", "ünï €"]


def _rows(db: Database) -> list[dict[str, object]]:
    return [
        {
            "period": "2031-01",
            "late": n % 2 == 0,
            "buyer_id": 1000 + n,
            "subscription_id": 2000 + n,
            "hour": 1_900_000_000 + n,
            "last_hour": 1_900_000_000 + n,
            "dimension": text,
            "resource": text[::-1],
            "quantity": (Decimal(2**53) if db.dialect == "postgresql" else 2**53)
            if n == 0
            else n,  # PostgreSQL: SUM() is a Decimal
            "records": n + 1,
            "tier": None if n % 3 else n,
        }
        for n, text in enumerate(AWKWARD)
    ]


def test_insert_rows_writes_every_value_exactly(db: Database) -> None:
    rows = _rows(db)
    with db.unit_of_work() as session:
        insert_rows(session.connection(), ROLLUPS, rows)
    with db.reader() as session:
        found = session.execute(
            select(*(ROLLUPS.c[name] for name in rows[0])).where(ROLLUPS.c.period == "2031-01").order_by("buyer_id")
        ).all()
    assert [dict(row._mapping) for row in found] == [{**row, "quantity": int(row["quantity"])} for row in rows]  # type: ignore[call-overload]


def test_insert_rows_returns_what_it_wrote_and_nothing_for_no_rows(db: Database) -> None:
    at = datetime(2031, 2, 1, 12, 30, tzinfo=UTC)
    with db.unit_of_work() as session:
        assert insert_rows(session.connection(), PERIODS, []) == []
        written = insert_rows(
            session.connection(),
            PERIODS,
            [{"period": "2031-02", "closed_at": at}, {"period": "2031-03", "closed_at": at}],
            returning=(PERIODS.c.period,),
        )
    assert sorted(period for (period,) in written) == ["2031-02", "2031-03"]
    with db.reader() as session:
        assert session.get_one(BillingPeriod, "2031-02").closed_at == at


def test_among_matches_ids_and_text_of_any_count(db: Database) -> None:
    with db.unit_of_work() as session:
        insert_rows(session.connection(), ROLLUPS, _rows(db))
    with db.reader() as session:
        c = ROLLUPS.c

        def found(column: object, values: list[object]) -> list[int]:
            query = select(c.buyer_id).where(c.period == "2031-01", among(session, column, values))  # type: ignore[arg-type]
            return sorted(session.scalars(query))

        assert found(c.buyer_id, [1001, 1003, 99999]) == [1001, 1003]
        assert found(c.dimension, AWKWARD) == list(range(1000, 1000 + len(AWKWARD)))
        assert found(c.dimension, ["NULL", 'quote " inside']) == [1001, 1005]
        assert found(c.buyer_id, []) == []
        assert found(c.buyer_id, list(range(1000, 6000))) == list(range(1000, 1000 + len(AWKWARD)))


def test_array_literals_quote_text_and_leave_integers_bare() -> None:
    assert array_literal([1, None, 3], text=False) == "{1,NULL,3}"
    assert array_literal(["a", None, 'b"c', "d\\e"], text=True) == '{"a",NULL,"b\\"c","d\\\\e"}'


def test_a_value_too_long_for_its_column_is_refused_not_cut(db: Database) -> None:
    """PostgreSQL refuses a value longer than its VARCHAR column in a plain INSERT; so does the bulk insert (an
    explicit cast to the column's type would cut it silently). SQLite keeps text whole whatever its length."""
    row = {**_rows(db)[1], "period": "2031-01-too-long"}
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError), db.unit_of_work() as session:
            insert_rows(session.connection(), ROLLUPS, [row])
    else:
        with db.unit_of_work() as session:
            insert_rows(session.connection(), ROLLUPS, [row])
    with db.reader() as session:
        assert session.scalars(select(ROLLUPS.c.period).where(ROLLUPS.c.period.like("2031-01-%"))).all() == (
            [] if db.dialect == "postgresql" else ["2031-01-too-long"]
        )
        too_long = "x" * 200  # longer than the column: matches nothing, is not cut down to something that does
        assert session.scalars(select(ROLLUPS.c.id).where(among(session, ROLLUPS.c.dimension, [too_long]))).all() == []
