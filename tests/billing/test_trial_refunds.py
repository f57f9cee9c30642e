"""RFD-02 across months: a trial that converted in March, cancelled on 2 April within 7 days of the
conversion, gets the March hours after the conversion back on a credit note against the closed March
invoice, automatically and once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from agora import clock, jobs
from agora.billing import automatic, runs, simulate
from agora.db import Database
from agora.metering import platform
from agora.models import Invoice, Subscription
from agora.subscriptions import service as subscriptions
from tests.billing.test_simulate import BUYER, invoices, market
from tests.factories.billing import TRIAL, billing_market, buyer_of

START = {"buyer": BUYER, "product": "trial"}


def trial_events(cancel_at: str, stop_at: str) -> list[dict[str, Any]]:
    """Subscribed 20 March 09:00 (the 7-day trial converts 27 March 09:00); one m5.large (0.10/h) from
    26 March 10:00: the trial covers 23 of its 134 March hours, 111 are billed on the March invoice."""
    return [
        {"at": "2026-03-20T09:00:00Z", "subscribe": START},
        {"at": "2026-03-26T10:00:00Z", "instance_start": {**START, "instance": "a", "instance_type": "m5.large"}},
        {"at": stop_at, "instance_stop": {"instance": "a"}},
        {"at": cancel_at, "unsubscribe": START},
    ]


@pytest.mark.rule("RFD-02")
def test_a_cancellation_in_april_refunds_the_march_hours_after_the_conversion_RFD_02() -> None:
    result = simulate.run(market(trial_events("2026-04-02T10:00:00Z", "2026-04-02T08:00:00Z")), until="2026-04")
    march, april = invoices(result)
    assert (march["period"], march["total"]) == ("2026-03", "11.10")
    assert [(x["charge"], x["quantity"], x["amount"]) for x in march["lines"]] == [("hourly", "111", "11.10")]
    [note] = invoices(result, "credit_note")
    assert (note["period"], note["total"]) == ("2026-04", "-11.10")
    [line] = note["lines"]
    assert (line["product"], line["charge"], line["instance_type"], line["amount"]) == (
        "trial",
        "refund",
        "m5.large",
        "-11.10",
    )
    assert "[RFD-02]" in line["explain"] and "trial_conversion" in line["explain"]
    # April was rated after the cancellation: its 32 hours are waived on the invoice itself.
    assert (april["period"], april["total"]) == ("2026-04", "0.00")
    assert [(x["charge"], x["quantity"], x["amount"]) for x in april["lines"]] == [("refund", "32", "0.00")]


@pytest.mark.rule("RFD-02")
def test_no_refund_when_cancelled_more_than_7_days_after_the_conversion_RFD_02() -> None:
    result = simulate.run(market(trial_events("2026-04-03T10:00:00Z", "2026-04-02T08:00:00Z")), until="2026-04")
    march, april = invoices(result)
    assert (march["total"], april["total"]) == ("11.10", "3.20")
    assert invoices(result, "credit_note") == []


@pytest.mark.rule("RFD-02")
def test_a_cancellation_before_march_closes_is_rated_on_the_march_invoice_itself_RFD_02() -> None:
    result = simulate.run(market(trial_events("2026-04-01T05:00:00Z", "2026-04-01T04:00:00Z")), until="2026-04")
    march, april = invoices(result)
    assert [(x["charge"], x["quantity"], x["amount"]) for x in march["lines"]] == [("refund", "111", "0.00")]
    assert [(x["charge"], x["quantity"]) for x in april["lines"]] == [("refund", "4")]
    assert invoices(result, "credit_note") == []  # nothing was over-charged, so nothing to correct


@pytest.mark.rule("RFD-02")
def test_the_cancellation_enqueues_a_job_that_refunds_once_RFD_02(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    """Same scenario as the simulation, through the services: cancelled 2 April 10:00; the job runs at once."""
    manual_clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    billing_market(db, manual_clock.now())
    manual_clock.set(datetime(2026, 3, 20, 9, tzinfo=UTC))
    with db.unit_of_work() as session:
        subscription, _ = subscriptions.subscribe(session, buyer_of(db), TRIAL, accept_eula=True)
        subscription_id = subscription.id
    manual_clock.set(datetime(2026, 3, 26, 10, tzinfo=UTC))
    with db.unit_of_work() as session:
        platform.start_instance(session, session.get_one(Subscription, subscription_id), "i-1", "m5.large",
                                manual_clock.now(), "us-east-1")  # fmt: skip
    manual_clock.set(datetime(2026, 4, 1, 0, tzinfo=UTC))
    with db.unit_of_work() as session:
        platform.stop_instance(session, "i-1", manual_clock.now())
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    [march] = runs.close(db, "2026-03")
    assert march["total"] == "11.10"
    manual_clock.set(datetime(2026, 4, 2, 10, tzinfo=UTC))
    with db.unit_of_work() as session:
        subscriptions.cancel(session, buyer_of(db), subscription_id)
    jobs.Worker(db).run_until_idle()
    with db.unit_of_work() as session:
        again = automatic.refund_after_trial(session, session.get_one(Subscription, subscription_id))
    with db.reader() as session:
        notes = session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()
        assert [(n.total_cents, n.corrects_id, n.period) for n in notes] == [(-1110, march["id"], "2026-04")]
        assert [n.id for n in again] == [notes[0].id]
        assert session.scalar(select(func.count()).select_from(Invoice)) == 2
