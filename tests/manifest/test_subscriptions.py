"""A manifest subscription is the buyer subscribing at `at` (SUB-01, SUB-02): `agora load` records its trial
window and the one trial per buyer and product, schedules the trial's messages still to come and does not
send those whose time has passed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agora import jobs
from agora.clock import ManualClock
from agora.db import Database
from agora.manifest.loader import load_data
from agora.manifest.parse import parse_text
from agora.models import Job, Notification, Subscription, TrialUse
from agora.tasks import register_all

DEMO_PATH = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
_DEMO = parse_text(DEMO_PATH.read_text(), DEMO_PATH.name)
CI = "northwind-ci"  # the demo's 7-day-trial server image, subscribed at 2026-11-20T00:00Z by 777788889999
AT = datetime(2026, 11, 20, tzinfo=UTC)
TRIAL_ENDS = datetime(2026, 11, 27, tzinfo=UTC)


def load(db: Database) -> None:
    with db.unit_of_work() as session:
        load_data(copy.deepcopy(_DEMO), session)


def trial_state(db: Database) -> tuple[Any, ...]:
    with db.reader() as session:
        sub = session.scalars(select(Subscription).where(Subscription.customer_identifier.like(f"{CI}-%"))).one()
        uses = session.scalars(select(TrialUse.subscription_id)).all()
        scheduled = sorted(
            (j.name, j.run_at) for j in session.scalars(select(Job).where(Job.name.like("subscriptions.trial_%")))
        )
        sent = [n.kind for n in session.scalars(select(Notification).order_by(Notification.id))]
        return sub.started_at, sub.trial_ends_at, uses == [sub.id], scheduled, sent


@pytest.mark.rule("SUB-01")
@pytest.mark.rule("SUB-02")
def test_a_loaded_subscription_in_its_trial_has_the_window_and_the_messages_to_come_SUB_01_SUB_02(
    db: Database, manual_clock: ManualClock
) -> None:
    manual_clock.set(datetime(2026, 11, 22, tzinfo=UTC))
    load(db)
    started, ends, one_trial, scheduled, sent = trial_state(db)
    assert (started, ends, one_trial) == (AT, TRIAL_ENDS, True)
    assert sent == []  # the welcome was due at `at`, in the past: not sent now
    assert scheduled == [
        ("subscriptions.trial_end", TRIAL_ENDS),
        ("subscriptions.trial_reminder", datetime(2026, 11, 24, tzinfo=UTC)),
    ]

    manual_clock.set(TRIAL_ENDS)
    register_all()
    jobs.Worker(db).run_until_idle()
    assert trial_state(db)[4] == ["trial_reminder", "trial_ended"]

    load(db)  # idempotent: nothing is scheduled or sent again
    assert trial_state(db)[3:] == (scheduled, ["trial_reminder", "trial_ended"])


@pytest.mark.rule("SUB-02")
def test_a_loaded_subscription_whose_trial_is_over_records_it_and_sends_nothing_SUB_02(
    db: Database, manual_clock: ManualClock
) -> None:
    manual_clock.set(datetime(2026, 12, 7, tzinfo=UTC))
    load(db)
    assert trial_state(db) == (AT, TRIAL_ENDS, True, [], [])
