"""The seller-side metering agent (MTR-07/08): measurement helpers, the hourly schedule, failure modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agora_agent import Agent, FailureMode, Policy, Record, State

START = datetime(2026, 3, 1, 9, 17, tzinfo=UTC)


class Sender:
    def __init__(self) -> None:
        self.sent: list[list[Record]] = []
        self.down = False

    def __call__(self, records: list[Record]) -> None:
        if self.down:
            raise ConnectionError("metering endpoint unreachable")
        self.sent.append(records)


def agent(mode: FailureMode = FailureMode.OPEN, **policy: timedelta) -> tuple[Agent, Sender]:
    sender = Sender()
    return Agent(sender, START, Policy(mode, **policy)), sender


@pytest.mark.rule("MTR-08")
def test_reports_go_out_every_hour_at_the_minute_the_software_started_MTR_08() -> None:
    a, sender = agent()
    requests = a.accumulated("requests")
    requests.record(5)
    a.tick(START + timedelta(minutes=59))
    assert sender.sent == []
    requests.record(7)
    a.tick(START + timedelta(hours=1))  # 10:17
    assert sender.sent == [[Record("requests", 12, datetime(2026, 3, 1, 9, tzinfo=UTC))]]
    requests.record(1)
    a.tick(START + timedelta(hours=2, seconds=30))  # 11:17:30
    assert sender.sent[-1] == [Record("requests", 1, datetime(2026, 3, 1, 10, tzinfo=UTC))]


@pytest.mark.rule("MTR-08")
def test_provisioned_concurrent_and_accumulated_helpers_MTR_08() -> None:
    a, sender = agent()
    hosts_sampled = a.provisioned("hosts", mode="sample")
    hosts_max = a.provisioned("hosts_max", mode="max")
    users_max = a.concurrent("users", mode="max")
    users_distinct = a.concurrent("distinct_users", mode="distinct")
    users_sampled = a.concurrent("sampled_users", mode="sample")
    for value in (3, 8, 5):
        hosts_sampled.record(value)
        hosts_max.record(value)
        users_max.record(value)
        users_sampled.record(value)
    users_distinct.record(ids={"ann", "bob"})
    users_distinct.record(ids={"bob", "cy"})
    a.tick(START + timedelta(hours=1))
    assert {r.dimension: r.quantity for r in sender.sent[0]} == {
        "distinct_users": 3,
        "hosts": 5,
        "hosts_max": 8,
        "sampled_users": 5,
        "users": 8,
    }
    with pytest.raises(ValueError, match="MTR-08"):
        a.provisioned("x", mode="distinct")


@pytest.mark.rule("MTR-07")
def test_fail_closed_may_not_stop_before_two_hours_of_failure_MTR_07() -> None:
    with pytest.raises(ValueError, match="2 hours"):
        Policy(FailureMode.CLOSED, closed_after=timedelta(minutes=90))
    a, sender = agent(FailureMode.CLOSED)
    a.accumulated("requests").record(4)
    sender.down = True
    first_failure = START + timedelta(hours=1)
    assert a.tick(first_failure) is State.DEGRADED
    assert a.tick(first_failure + timedelta(hours=1, minutes=59)) is State.DEGRADED
    assert a.tick(first_failure + timedelta(hours=2)) is State.STOPPED


@pytest.mark.rule("MTR-07")
def test_fail_open_and_partial_keep_running_and_nothing_is_lost_when_delivery_returns_MTR_07() -> None:
    for mode in (FailureMode.OPEN, FailureMode.PARTIAL):
        a, sender = agent(mode)
        requests = a.accumulated("requests")
        requests.record(4)
        sender.down = True
        assert a.tick(START + timedelta(hours=1)) is State.DEGRADED
        requests.record(6)
        assert a.tick(START + timedelta(hours=5)) is State.DEGRADED  # never stops
        sender.down = False
        assert a.tick(START + timedelta(hours=5, minutes=1)) is State.OK
        sent = [r for batch in sender.sent for r in batch]
        assert sum(r.quantity for r in sent) == 10  # every hour's usage, late but complete [MTR-02]


@pytest.mark.rule("MTR-07")
def test_a_success_ends_the_outage_so_fail_closed_counts_continuous_failure_only_MTR_07() -> None:
    a, sender = agent(FailureMode.CLOSED)
    requests = a.accumulated("requests")
    requests.record(1)
    sender.down = True
    a.tick(START + timedelta(hours=1))
    sender.down = False
    assert a.tick(START + timedelta(hours=1, minutes=30)) is State.OK
    sender.down = True
    requests.record(2)
    assert a.tick(START + timedelta(hours=2)) is State.DEGRADED
    assert a.tick(START + timedelta(hours=3, minutes=59)) is State.DEGRADED
    assert a.tick(START + timedelta(hours=4)) is State.STOPPED
