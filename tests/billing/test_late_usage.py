"""Late usage (BIL-03): a record inside the metering window lands in its own month while that month is open,
else in the next open one, at the prices of its own hour; closing a month again never moves it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from agora import clock
from agora.auth import Principal
from agora.billing import runs
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import Reading, Source
from agora.models import Product, Role, Seller, UsageRecord
from tests.factories.metering import BUYER, SAAS, metered_market

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def meter_at(db: Database, hour: datetime, quantity: int, dimension: str = "users") -> None:
    with db.unit_of_work() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
        assert seller_id is not None and handle is not None
        reading = Reading(SAAS, dimension, quantity, hour, customer_identifier="cust-1")
        [outcome] = metering.ingest(session, Principal(Role.SELLER, seller_id, handle), [reading], source=Source.SELLER)
        assert outcome.ok, outcome


def users_lines(invoices: list[dict[str, object]]) -> list[tuple[str, str, str]]:
    [invoice] = [i for i in invoices if i["buyer"] == BUYER]
    lines = invoice["lines"]
    assert isinstance(lines, list)
    return [(line["quantity"], line["amount"], line["explain"]) for line in lines if line["dimension"] == "users"]


def billed_in(db: Database) -> dict[int, str | None]:
    with db.reader() as session:
        rows = session.execute(select(UsageRecord.quantity, UsageRecord.billed_in))
        return {quantity: period for quantity, period in rows}


@pytest.mark.rule("BIL-03")
def test_late_usage_is_billed_in_its_own_month_while_open_else_in_the_next_BIL_03(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(datetime(2026, 3, 31, 12, tzinfo=UTC))
    meter_at(db, clock.now(), 2)
    # 31 March 23:00, sent at 01:00 on 1 April: March is still open, so it is March's usage.
    manual_clock.set(datetime(2026, 4, 1, 1, tzinfo=UTC))
    meter_at(db, datetime(2026, 3, 31, 23, tzinfo=UTC), 7)
    manual_clock.set(datetime(2026, 4, 1, 1, 30, tzinfo=UTC))
    march = runs.close(db, "2026-03")  # closed by hand, before the scheduled close a day after month end
    [(quantity, amount, _)] = users_lines(march)
    assert (quantity, amount) == ("9", "0.09")
    # 31 March 22:00, sent at 03:30: inside the 6-hour window (MTR-04), but March has closed.
    manual_clock.set(datetime(2026, 4, 1, 3, 30, tzinfo=UTC))
    meter_at(db, datetime(2026, 3, 31, 22, tzinfo=UTC), 5)
    assert billed_in(db) == {2: None, 7: None, 5: "2026-04"}
    assert runs.close(db, "2026-03") == march  # closing March again neither adds nor moves anything
    manual_clock.set(datetime(2026, 4, 10, 8, tzinfo=UTC))
    meter_at(db, clock.now(), 3)
    manual_clock.set(datetime(2026, 5, 2, tzinfo=UTC))
    april = runs.close(db, "2026-04")
    assert users_lines(april) == [
        ("3", "0.03", "3 users from 1 hourly record(s) received [MTR-02]"),
        (
            "5",
            "0.05",
            "5 users from 1 hourly record(s) received [MTR-02]; usage of 2026-03 stored after 2026-03 had closed, "
            "billed in 2026-04 [BIL-03]",
        ),
    ]


@pytest.mark.rule("BIL-03")
def test_usage_of_an_open_earlier_month_is_not_carried_BIL_03(db: Database, manual_clock: clock.ManualClock) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(datetime(2026, 4, 1, 2, tzinfo=UTC))
    meter_at(db, datetime(2026, 3, 31, 21, tzinfo=UTC), 4)
    assert billed_in(db) == {4: None}
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    [(quantity, _, explain)] = users_lines(runs.close(db, "2026-03"))
    assert quantity == "4" and "BIL-03" not in explain
