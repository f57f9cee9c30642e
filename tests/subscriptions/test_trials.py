"""Free trials (SUB-01, SUB-02): the trial window, the welcome message, the reminder three days before the
end, the end notice, one trial per buyer per product, and the outbox that operators read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from agora.clock import ManualClock
from agora.db import Database
from tests.factories.subscriptions import HOURLY, TRIAL, Market, cancel, email_of, market, outbox, run_jobs, subscribe

REMINDER_AT = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
TRIAL_END = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def m(db: Database, manual_clock: ManualClock) -> Market:
    return market(db)


def at(manual_clock: ManualClock, db: Database, instant: datetime) -> None:
    manual_clock.set(instant)
    run_jobs(db)


def kinds(db: Database) -> list[str]:
    return [kind for kind, *_ in outbox(db)]


def test_sub02_trial_window_and_welcome_message(client: TestClient, db: Database, m: Market) -> None:
    sub = subscribe(client, m.buyer, TRIAL)
    assert sub["trial"] == {"starts_at": "2026-03-01T12:00:00+00:00", "ends_at": "2026-03-15T12:00:00+00:00"}

    welcome = outbox(db, "trial_welcome")
    assert len(welcome) == 1
    _, to, subject, body = welcome[0]
    assert to == email_of(m.buyer)
    text = f"{subject}\n{body}"
    assert "14 days" in text or "14-day" in text  # the term
    assert "2026-03-15" in text  # the computed expiry date
    assert "cancel" in body.lower() and f"/api/v1/subscriptions/{sub['id']}/cancel" in body  # how to unsubscribe


def test_sub02_no_trial_on_a_product_without_one(client: TestClient, db: Database, m: Market) -> None:
    assert subscribe(client, m.buyer, HOURLY)["trial"] is None
    assert outbox(db) == []


def test_sub02_reminder_three_days_before_the_end_then_the_end_notice(
    client: TestClient, db: Database, m: Market, manual_clock: ManualClock
) -> None:
    subscribe(client, m.buyer, TRIAL)
    run_jobs(db)
    at(manual_clock, db, datetime(2026, 3, 12, 11, 59, tzinfo=UTC))
    assert kinds(db) == ["trial_welcome"]

    at(manual_clock, db, REMINDER_AT)
    reminders = outbox(db, "trial_reminder")
    assert len(reminders) == 1
    assert reminders[0][1] == email_of(m.buyer)
    assert "2026-03-15" in reminders[0][2]

    at(manual_clock, db, datetime(2026, 3, 15, 11, 59, tzinfo=UTC))
    assert kinds(db) == ["trial_welcome", "trial_reminder"]  # still exactly one reminder, no end yet

    at(manual_clock, db, TRIAL_END)
    assert kinds(db) == ["trial_welcome", "trial_reminder", "trial_ended"]
    assert outbox(db, "trial_ended")[0][1] == email_of(m.buyer)

    at(manual_clock, db, datetime(2026, 4, 1, tzinfo=UTC))
    assert kinds(db) == ["trial_welcome", "trial_reminder", "trial_ended"]


def test_sub02_cancelling_during_the_trial_stops_reminder_and_end_notice(
    client: TestClient, db: Database, m: Market, manual_clock: ManualClock
) -> None:
    sub = subscribe(client, m.buyer, TRIAL)
    at(manual_clock, db, datetime(2026, 3, 5, tzinfo=UTC))
    cancel(client, m.buyer, sub["id"])
    at(manual_clock, db, REMINDER_AT)
    at(manual_clock, db, TRIAL_END)
    at(manual_clock, db, datetime(2026, 4, 1, tzinfo=UTC))
    assert kinds(db) == ["trial_welcome"]


def test_sub01_sub02_one_trial_per_buyer_per_product(
    client: TestClient, db: Database, m: Market, manual_clock: ManualClock
) -> None:
    first = subscribe(client, m.buyer, TRIAL)
    manual_clock.set(datetime(2026, 3, 3, tzinfo=UTC))
    cancel(client, m.buyer, first["id"])
    again = subscribe(client, m.buyer, TRIAL)
    assert again["id"] != first["id"]
    assert again["trial"] is None
    assert [to for _, to, *_ in outbox(db, "trial_welcome")] == [email_of(m.buyer)]

    other = subscribe(client, m.other_buyer, TRIAL)
    assert other["trial"] == {"starts_at": "2026-03-03T00:00:00+00:00", "ends_at": "2026-03-17T00:00:00+00:00"}
    assert [to for _, to, *_ in outbox(db, "trial_welcome")] == [email_of(m.buyer), email_of(m.other_buyer)]

    # The paid resubscription gets no reminder or end notice either; the other buyer's trial runs its course.
    at(manual_clock, db, REMINDER_AT)
    at(manual_clock, db, datetime(2026, 3, 20, tzinfo=UTC))
    assert [(kind, to) for kind, to, *_ in outbox(db) if kind != "trial_welcome"] == [
        ("trial_reminder", email_of(m.other_buyer)),
        ("trial_ended", email_of(m.other_buyer)),
    ]


def test_sub02_outbox_is_readable_by_operators_only(
    client: TestClient, db: Database, m: Market, manual_clock: ManualClock
) -> None:
    subscribe(client, m.buyer, TRIAL)
    at(manual_clock, db, REMINDER_AT)

    response = client.get("/api/v1/notifications", headers=m.operator.headers)
    assert response.status_code == 200, response.text
    messages = response.json()
    assert [(n["kind"], n["to"]) for n in messages] == [  # newest first
        ("trial_reminder", email_of(m.buyer)),
        ("trial_welcome", email_of(m.buyer)),
    ]
    assert all(n["state"] == "kept" and n["sent_at"] for n in messages)  # no SMTP in tests: kept in the outbox

    filtered = client.get("/api/v1/notifications", params={"kind": "trial_welcome"}, headers=m.operator.headers)
    assert [n["kind"] for n in filtered.json()] == ["trial_welcome"]
    by_to = client.get("/api/v1/notifications", params={"to": "nobody@x.example"}, headers=m.operator.headers)
    assert by_to.json() == []

    for actor in (m.seller, m.buyer):
        assert client.get("/api/v1/notifications", headers=actor.headers).status_code == 403
    assert client.get("/api/v1/notifications").status_code == 401
