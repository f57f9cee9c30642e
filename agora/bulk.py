"""Statements over many rows or ids whose text does not grow with them, where that matters (PostgreSQL).

psycopg parses a statement's `%s` placeholders itself and caches the result only for short statements: an
`IN` list of 200 ids, or a multi-row `VALUES` list, is parsed again on every call (milliseconds each), and
the server plans it again. On PostgreSQL the ids travel as one array parameter (`IN (SELECT unnest(%s))`)
and rows as one array per column, unnested; on SQLite (its driver binds natively) they stay plain `IN`
lists and `executemany`. The arrays are passed as literals (`{1,2,3}`), cast in the statement: psycopg's array
adapter inspects every element and costs more than the statement.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Integer,
    Row,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute, Session

AnyRow = Row[*tuple[Any, ...]]  # a result row of any columns


def among(
    session: Session | Connection, column: ColumnElement[Any] | QueryableAttribute[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """`column IN values`: on PostgreSQL one array parameter, whatever the number of values."""
    if _dialect(session) == "postgresql":
        text = not isinstance(column.type, Integer)
        literal = array_literal(_texts(list(values)) if text else list(values), text)
        # A subquery, not `= ANY(array)`: the planner then hashes the values or probes an index with each,
        # where a parameter array would be searched element by element for every row. Cast to unbounded
        # types: a cast to VARCHAR(n) would cut a longer value down to one that matches.
        element = Text() if text else BigInteger()
        return column.in_(select(func.unnest(cast(bindparam(None, literal, type_=Text), ARRAY(element)))))
    return column.in_(list(values))


def insert_rows(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[Column[Any]] = ()
) -> list[Any]:
    """Insert `rows` (each with the same keys) in one statement on PostgreSQL, `executemany` elsewhere.
    With `returning`, the inserted rows' columns, in the order of `rows` on SQLite and in no promised
    order on PostgreSQL (return a unique column to match them)."""
    if not rows:
        return []
    dialect = connection.dialect
    if dialect.name != "postgresql":
        statement = insert(table)
        if returning:
            return list(connection.execute(statement.returning(*returning, sort_by_parameter_order=True), rows))
        connection.execute(statement, list(rows))
        return []
    names = list(rows[0])
    arrays = []
    casts = []
    for name in names:
        column_type = table.c[name].type
        process = column_type.bind_processor(dialect)
        values = [row[name] for row in rows]
        if process is not None:
            values = [None if v is None else process(v) for v in values]
        text = not isinstance(column_type, Integer)
        arrays.append(array_literal(_texts(values) if text else values, text))
        # Text is cast to TEXT, not VARCHAR(n): an explicit cast would cut an over-long value silently,
        # where the insert's own conversion refuses it, as a plain INSERT does.
        element = "TEXT" if isinstance(column_type, String) else column_type.compile(dialect=dialect)
        casts.append(f"%s::{element}[]")
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
        f"SELECT * FROM unnest({', '.join(casts)})"
    )
    if returning:
        sql += f" RETURNING {', '.join(quote(column.name) for column in returning)}"
        return list(connection.exec_driver_sql(sql, tuple(arrays)))
    connection.exec_driver_sql(sql, tuple(arrays))
    return []


def _dialect(bind: Session | Connection) -> str:
    return (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name


def array_literal(values: Sequence[Any], text: bool) -> str:
    """A PostgreSQL array literal for the statement to cast to the column's type: `{1,NULL,3}` of integers
    (ints, or whole Decimals as PostgreSQL's SUM() returns them), or (`text`) of strings, each quoted:
    `{"a","b\\"c",NULL}`."""
    if not text:
        return "{" + ",".join(["NULL" if v is None else str(int(v)) for v in values]) + "}"
    quoted = ["NULL" if v is None else '"' + (_escape(v) if '"' in v or "\\" in v else v) + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _texts(values: list[Any]) -> list[str | None]:
    """Values of a text-cast array as text: timestamps, decimals and booleans in the form PostgreSQL reads."""
    return [v if v is None or isinstance(v, str) else str(v) for v in values]
