"""Every CSV Agora writes goes through `agora.exports`: no cell reaches a spreadsheet as a formula, and
numbers (negative amounts included) stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from agora import clock
from agora.db import Database
from agora.exports import csv_text, safe_cell
from agora.models import InvoiceLine, UsageRecord
from tests.billing.test_categories import charged_march
from tests.factories.billing import HEADERS
from tests.metering.test_native_api import market, metered

__all__ = ["market", "metered"]  # fixtures of the native usage tests, reused here

FORMULA = '=HYPERLINK("http://evil.example/","x")'


@pytest.mark.parametrize(
    "cell",
    [FORMULA, "+1+cmd|' /C calc'!A0", "-2+3", "-1-1", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "-", "+", "-12.50x"],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-12.50", "-3", "0", "12.33", "1500", "acme-analytics", "i-1#4", "a=b", ""])
def test_numbers_and_plain_text_are_left_alone(cell: str) -> None:
    """A negative amount (a refund or credit line) stays a number that a spreadsheet sums."""
    assert safe_cell(cell) == cell


def test_the_writer_quotes_what_csv_needs_and_reads_back() -> None:
    text = csv_text(["a", "b", "c"], [[FORMULA, -12.5, None], {"a": "x,y", "b": "-0.01", "c": "=1", "d": "dropped"}])
    assert list(csv.reader(io.StringIO(text))) == [
        ["a", "b", "c"],
        ["'" + FORMULA, "-12.5", ""],
        ["x,y", "-0.01", "'=1"],
    ]


def test_the_usage_export_neutralises_a_formula_in_any_cell(client: TestClient, db: Database, metered: object) -> None:
    with db.unit_of_work() as session:
        first = session.scalars(select(UsageRecord.id).order_by(UsageRecord.id)).first()
        session.execute(update(UsageRecord).where(UsageRecord.id == first).values(resource=FORMULA))
    response = client.get("/api/v1/usage", params={"format": "csv"}, headers={"Authorization": "Bearer acme-token"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert "'" + FORMULA in [row["resource"] for row in rows]
    assert not any(cell.startswith("=") for row in rows for cell in row.values())
    assert all(row["quantity"].isdigit() for row in rows)


def test_the_invoice_export_neutralises_formulas_and_keeps_negative_amounts(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    charged_march(db, manual_clock)
    with db.unit_of_work() as session:
        first = session.scalars(select(InvoiceLine.id).order_by(InvoiceLine.id)).first()
        session.execute(update(InvoiceLine).where(InvoiceLine.id == first).values(explain=FORMULA, amount_cents=-1250))
    response = client.get("/api/v1/invoices?period=2026-03&format=csv", headers=HEADERS["buyer"])
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["explain"] == "'" + FORMULA
    assert rows[0]["amount"] == "-12.50"
