"""RFD-02 metering errors: the seller confirms a set of its usage records as wrong; an open month leaves
them out of billing, a closed month is refunded by re-rating it with and without them, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import clock
from agora.billing import runs
from agora.db import Database
from agora.models import Invoice, UsageRecord
from tests.factories.billing import APP, DB, GLOBEX_APP, HEADERS, billing_market, meter, ml_job

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(day: int, hour: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def send(db: Database, manual_clock: clock.ManualClock, product: str, customer: str, quantity: int, when: datetime,
         dimension: str = "users") -> int:  # fmt: skip
    manual_clock.set(when.replace(minute=30))
    return meter(db, product, customer, dimension, quantity, when)


def confirm(client: TestClient, ids: list[int], token: str = "acme", reason: str = "counted twice") -> Any:
    return client.post("/api/v1/usage/errors", json={"record_ids": ids, "reason": reason}, headers=HEADERS[token])


def monthly(db: Database, period: str = "2026-03") -> dict[str, str]:
    return {i["buyer"]: i["total"] for i in runs.invoices_of(db, period)}


def credit_notes(db: Database) -> list[tuple[int, int | None, str]]:
    with db.reader() as session:
        notes = session.scalars(select(Invoice).where(Invoice.kind == "credit_note").order_by(Invoice.id))
        return [(n.total_cents, n.corrects_id, n.period) for n in notes]


@pytest.mark.rule("RFD-02")
def test_errors_in_a_closed_month_are_refunded_once_by_re_rating_it_RFD_02(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    billing_market(db, T0)
    wrong = send(db, manual_clock, APP, "app-1", 40, at(2, 10))  # 5.00
    send(db, manual_clock, APP, "app-1", 8, at(2, 11))  # 1.00
    send(db, manual_clock, APP, "app-2", 16, at(2, 10))  # 2.00, the other buyer's
    send(db, manual_clock, GLOBEX_APP, "gx-1", 24, at(2, 10))  # 3.00, globex's
    manual_clock.set(at(2, month=4))
    runs.close(db, "2026-03")
    assert monthly(db) == {"111122223333": "9.00", "444455556666": "2.00"}
    [march] = [i for i in runs.invoices_of(db, "2026-03") if i["buyer"] == "111122223333"]

    manual_clock.set(at(3, 9, month=4))
    response = confirm(client, [wrong, wrong])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["records"], body["excluded_from_billing"], body["already_confirmed"]) == ([wrong], [], [])
    [note] = body["credit_notes"]
    assert (note["kind"], note["total"], note["corrects"], note["period"]) == (
        "credit_note",
        "-5.00",
        march["id"],
        "2026-04",
    )
    [line] = note["lines"]
    assert (line["product"], line["charge"], line["dimension"], line["amount"]) == (APP, "refund", "users", "-5.00")
    assert f"metering error {body['id']}" in line["explain"] and "[RFD-02]" in line["explain"]

    again = confirm(client, [wrong])
    assert again.status_code == 200 and again.json()["id"] is None and again.json()["already_confirmed"] == [wrong]
    assert credit_notes(db) == [(-500, march["id"], "2026-04")]  # refunded once

    buyer_view = client.get("/api/v1/invoices?period=2026-04", headers=HEADERS["buyer"]).json()["invoices"]
    assert [(i["kind"], i["total"]) for i in buyer_view] == [("credit_note", "-5.00")]
    assert client.get("/api/v1/invoices?period=2026-04", headers=HEADERS["other-buyer"]).json()["invoices"] == []
    with db.reader() as session:  # usage is never deleted
        assert session.get_one(UsageRecord, wrong).quantity == 40


@pytest.mark.rule("RFD-02")
def test_only_the_seller_confirms_its_own_records_and_bad_input_names_the_field_RFD_02(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    billing_market(db, T0)
    mine = send(db, manual_clock, APP, "app-1", 40, at(2, 10))
    theirs = send(db, manual_clock, GLOBEX_APP, "gx-1", 24, at(2, 10))
    ml_job(db, "model-ga-1", 60, at(2, 10))
    with db.reader() as session:
        measured = session.scalar(select(UsageRecord.id).where(UsageRecord.source == "platform"))
    assert measured is not None

    for ids, where in (
        ([theirs], "record_ids[0]"),
        ([mine, theirs], "record_ids[1]"),
        ([mine, 999999], "record_ids[1]"),
    ):
        refused = confirm(client, ids)
        assert refused.status_code == 404 and refused.json()["detail"].startswith(f"{where}: "), refused.text
    assert confirm(client, [mine], token="globex").status_code == 404
    assert confirm(client, [mine], token="buyer").status_code == 403
    assert confirm(client, [mine], token="ops").status_code == 403
    platform = confirm(client, [measured])
    assert platform.status_code == 422 and platform.json()["problems"][0]["loc"] == "record_ids[0]"
    empty = confirm(client, [])
    assert empty.status_code == 422 and "record_ids" in empty.json()["detail"]
    blank = confirm(client, [mine], reason="  ")
    assert blank.status_code == 422 and blank.json()["detail"].startswith("reason: ")
    with db.reader() as session:  # nothing refused changed anything
        assert session.scalar(select(func.count()).where(UsageRecord.error_id.is_not(None))) == 0


@pytest.mark.rule("RFD-02")
def test_errors_in_an_open_month_are_left_out_of_its_billing_RFD_02(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    billing_market(db, T0)
    wrong = send(db, manual_clock, APP, "app-1", 80, at(5, 10))  # would be 10.00
    send(db, manual_clock, APP, "app-1", 8, at(5, 11))  # 1.00
    send(db, manual_clock, APP, "app-2", 16, at(5, 10))  # 2.00
    manual_clock.set(at(31, 23))
    body = confirm(client, [wrong]).json()
    assert (body["records"], body["excluded_from_billing"], body["credit_notes"]) == ([wrong], [wrong], [])
    manual_clock.set(at(2, month=4))
    [mine, other] = runs.close(db, "2026-03")
    assert [(x["quantity"], x["amount"]) for x in mine["lines"]] == [("8", "1.00")]
    assert (mine["total"], other["total"]) == ("1.00", "2.00")
    assert credit_notes(db) == []
    with db.reader() as session:
        record = session.get_one(UsageRecord, wrong)
        assert (record.quantity, record.voided_at) == (80, int(at(31, 23).timestamp()))


@pytest.mark.rule("RFD-02")
def test_tiered_charges_are_refunded_exactly_and_errors_add_up_RFD_02(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    """Graduated tiers per hour (0.01 up to 1,000, then 0.005): 1,500 + 200 + 300 queries bill
    1,500 at 0.01 (15.00) and 500 at 0.005 (2.50). Two errors, one after the other, refund exactly what
    re-rating without each gives."""
    manual_clock.set(T0)
    billing_market(db, T0)
    big = send(db, manual_clock, DB, "db-1", 1500, at(2, 10), "queries")
    small = send(db, manual_clock, DB, "db-1", 200, at(2, 11), "queries")
    send(db, manual_clock, DB, "db-1", 300, at(2, 12), "queries")
    manual_clock.set(at(2, month=4))
    [march] = runs.close(db, "2026-03")
    assert [(x["quantity"], x["unit_price"], x["amount"]) for x in march["lines"]] == [
        ("1500", "0.01", "15.00"),
        ("500", "0.005", "2.50"),
    ]
    first = confirm(client, [big]).json()["credit_notes"]
    # without the 1,500: 500 at 0.01 → the 0.01 line drops by 10.00, the 0.005 line by 2.50
    assert [(x["amount"]) for x in first[0]["lines"]] == ["-10.00", "-2.50"]
    second = confirm(client, [small]).json()["credit_notes"]
    assert [(x["amount"]) for x in second[0]["lines"]] == ["-2.00"]
    assert sum(n for n, _, _ in credit_notes(db)) == -1450  # 17.50 billed, 3.00 left for the 300 queries


@pytest.mark.rule("RFD-02")
def test_an_error_confirmed_after_the_close_was_due_is_refunded_when_the_invoice_is_written_RFD_02(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    billing_market(db, T0)
    wrong = send(db, manual_clock, APP, "app-1", 40, at(2, 10))
    send(db, manual_clock, APP, "app-1", 8, at(2, 11))
    manual_clock.set(at(2, 1, month=4))  # the close was due an hour ago, but has not run yet
    body = confirm(client, [wrong]).json()
    assert (body["excluded_from_billing"], body["credit_notes"]) == ([], [])
    [march] = runs.close(db, "2026-03")
    assert march["total"] == "6.00"
    assert credit_notes(db) == [(-500, march["id"], "2026-04")]
    runs.close(db, "2026-03")
    assert len(credit_notes(db)) == 1
