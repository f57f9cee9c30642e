"""The close sums a month at each subscription's grain, graduates tiered items in the database and runs in
slices of days in parallel (BIL-03); none of that may change a cent or a word of any line (BIL-01/04)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from agora import clock
from agora.billing import rating, runs, service
from agora.db import Database
from agora.metering.records import from_epoch
from agora.models import Buyer, Subscription, UsageRecord
from bench import billing as bench


@pytest.mark.rule("BIL-04")
def test_the_close_bills_exactly_what_rating_every_raw_record_bills_BIL_04(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    subscriptions = bench.populate(db, 25)  # every pricing family, round-robin
    bench.load_usage(db, subscriptions, 6000)
    manual_clock.set(bench.START + timedelta(days=32))
    invoices = {invoice["buyer"]: invoice for invoice in runs.close(db, bench.PERIOD)}

    expected: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    with db.reader() as session:
        usage: dict[int, list[rating.Usage]] = defaultdict(list)
        for record in session.scalars(select(UsageRecord)):
            usage[record.subscription_id].append(
                rating.Usage(from_epoch(record.period_start), record.dimension, record.quantity, record.resource)
            )
        rows = session.execute(select(Subscription, Buyer.account).join(Buyer, Buyer.id == Subscription.buyer_id))
        pairs = list(rows)
        terms = service._Terms(session, [subscription for subscription, _ in pairs])
        for subscription, account in pairs:
            for line in rating.rate(terms.of(subscription), usage[subscription.id], bench.PERIOD):
                expected[account].append(
                    (line.charge, rating.decimal_text(line.quantity), f"{line.amount:.2f}", line.explain)
                )
    assert len(invoices) == 25 and set(expected) == set(invoices)
    for account, invoice in invoices.items():
        billed = [(line["charge"], line["quantity"], line["amount"], line["explain"]) for line in invoice["lines"]]
        assert sorted(billed) == sorted(expected[account]), account
    charges = {line["charge"] for invoice in invoices.values() for line in invoice["lines"]}
    assert {"usage", "hourly", "monthly", "training", "tiered"} <= charges
