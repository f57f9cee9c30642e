"""Platform-measured usage (MTR-06, PRC-12/14/15): instance hours, ML seconds, endpoints, managed-service
items (time, Prometheus, bill), the hourly tick, and who may see and do what through the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import config, jobs
from agora.clock import ManualClock
from agora.db import Database
from agora.errors import Conflict, Invalid, NotFound
from agora.metering import platform
from agora.metering.platform import InstanceNotRunning, InstanceRunning, RunKind
from agora.metering.records import Status
from agora.metering.tasks import ScrapeFailed, counter_increase, counter_value, read_counter
from agora.models import InstanceRun, Job, MetricScrape, Subscription, UsageRecord
from agora.pricing.schema import TieredItem
from tests.factories import metering as f
from tests.live import free_port

# Webhooks and metrics are served by the test itself, on 127.0.0.1.
pytestmark = pytest.mark.usefixtures("private_urls_allowed")

SUBSCRIBED = datetime(2026, 3, 1, tzinfo=UTC)
BUYER = {"Authorization": "Bearer buyer-token"}
OTHER_BUYER = {"Authorization": "Bearer other-buyer-token"}
UNSUBSCRIBED = {"Authorization": "Bearer unsubscribed-token"}
SELLER = {"Authorization": "Bearer acme-token"}
OTHER_SELLER = {"Authorization": "Bearer globex-token"}
OPERATOR = {"Authorization": "Bearer ops-token"}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Market:
    db: Database
    clock: ManualClock

    def at(self, when: str) -> datetime:
        self.clock.set(t(when))
        return t(when)

    def start(
        self,
        when: str,
        instance_id: str = "i-1",
        customer: str = "hr-1",
        kind: RunKind = RunKind.INSTANCE,
        instance_type: str | None = "m5.large",
        **options: Any,
    ) -> int:
        at = self.at(when)
        with self.db.unit_of_work() as session:
            run = platform.start_run(
                session, self.subscription(session, customer), kind, instance_id, instance_type, at, **options
            )
            return run.id

    def stop(self, when: str, instance_id: str = "i-1") -> None:
        at = self.at(when)
        with self.db.unit_of_work() as session:
            platform.stop_run(session, instance_id, at)

    def work(self, when: str | None = None) -> int:
        if when is not None:
            self.at(when)
        return jobs.Worker(self.db).run_until_idle()

    @staticmethod
    def subscription(session: Any, customer: str) -> Subscription:
        return session.scalars(select(Subscription).where(Subscription.customer_identifier == customer)).one()

    def usage(self, dimension: str | None = None) -> list[tuple[str, str, int]]:
        """(period start, dimension, quantity) of platform records, in time order."""
        with self.db.reader() as session:
            statement = (
                select(UsageRecord.period_start, UsageRecord.dimension, UsageRecord.quantity)
                .where(UsageRecord.source == "platform")
                .order_by(UsageRecord.period_start, UsageRecord.id)
            )
            if dimension is not None:
                statement = statement.where(UsageRecord.dimension == dimension)
            rows = session.execute(statement).all()
        return [(f"{datetime.fromtimestamp(p, UTC):%Y-%m-%dT%H:%M:%S}", d, q) for p, d, q in rows]

    def resources(self) -> list[str]:
        with self.db.reader() as session:
            return list(session.scalars(select(UsageRecord.resource).order_by(UsageRecord.id)))


@pytest.fixture
def market(db: Database, manual_clock: ManualClock) -> Market:
    f.metered_market(db, SUBSCRIBED)
    return Market(db, manual_clock)


# --- instances: hours rounded up, attributed to the clock hour they begin in ----------------------------


@pytest.mark.rule("MTR-06")
@pytest.mark.rule("SUB-01")
@pytest.mark.parametrize(
    ("start", "stop", "hours"),
    [
        ("2026-03-02T10:00:00", "2026-03-02T14:01:00", ["10", "11", "12", "13", "14"]),  # 4 h 01 min = 5 h
        ("2026-03-02T10:00:00", "2026-03-02T10:10:00", ["10"]),  # 10 minutes = 1 h
        ("2026-03-02T10:30:00", "2026-03-02T12:10:00", ["10", "11"]),  # begins 10:30, 11:30; 12:30 never begins
        ("2026-03-02T10:00:00", "2026-03-02T14:00:00", ["10", "11", "12", "13"]),  # exactly 4 h = 4 h
        ("2026-03-02T10:00:00", "2026-03-02T10:00:00", ["10"]),  # at least one hour
    ],
)
def test_mtr06_a_run_is_rounded_up_to_whole_hours_each_in_the_clock_hour_it_begins(
    market: Market, start: str, stop: str, hours: list[str]
) -> None:
    """MTR-06 rounding; SUB-01 convention: billable hour k begins at start + k h, in its own clock hour."""
    market.start(start)
    market.stop(stop)
    assert market.usage() == [(f"2026-03-02T{h}:00:00", "hourly:m5.large", 1) for h in hours]


@pytest.mark.rule("MTR-06")
def test_an_instance_started_in_the_second_the_buyer_subscribed_is_metered(market: Market, db: Database) -> None:
    """Runs are kept to the second, but the subscription check sees the real instant: a run started 0.2 s
    after a subscription that began at 10:00:00.5 is not refused as "before the subscription"."""
    with db.unit_of_work() as session:
        subscription = Market.subscription(session, "hr-1")
        subscription.started_at = t("2026-03-02T10:00:00.500000")
    market.start("2026-03-02T10:00:00.700000")
    market.stop("2026-03-02T10:30:00")
    assert market.usage() == [("2026-03-02T10:00:00", "hourly:m5.large", 1)]


@pytest.mark.rule("MTR-06")
def test_mtr06_a_restart_in_the_same_clock_hour_is_a_new_run_with_its_own_hour(market: Market) -> None:
    first = market.start("2026-03-02T10:00:00")
    market.stop("2026-03-02T10:10:00")
    second = market.start("2026-03-02T10:20:00")
    market.stop("2026-03-02T10:40:00")
    assert market.usage() == [("2026-03-02T10:00:00", "hourly:m5.large", 1)] * 2
    assert market.resources() == [f"i-1#{first}", f"i-1#{second}"]


@pytest.mark.rule("MTR-06")
@pytest.mark.rule("SUB-01")
def test_mtr06_a_run_across_a_month_boundary_puts_each_hour_in_its_own_month(market: Market) -> None:
    """MTR-06 with the SUB-01 attribution: each billable hour belongs to the month it begins in."""
    market.start("2026-03-31T22:30:00")
    market.stop("2026-04-01T01:10:00")
    assert [when for when, _, _ in market.usage()] == [
        "2026-03-31T22:00:00",
        "2026-03-31T23:00:00",
        "2026-04-01T00:00:00",
    ]
    with market.db.reader() as session:
        march = platform.platform_usage(session, t("2026-03-01T00:00:00"), t("2026-04-01T00:00:00"))
        april = platform.platform_usage(session, t("2026-04-01T00:00:00"), t("2026-05-01T00:00:00"))
    assert [(u.charge, u.instance_type, u.quantity) for u in march] == [("hourly", "m5.large", 1)] * 2
    assert [u.hour for u in april] == [t("2026-04-01T00:00:00")]


@pytest.mark.rule("MTR-06")
def test_mtr06_the_hourly_tick_writes_begun_hours_and_the_stop_writes_the_rest_once(market: Market) -> None:
    run_id = market.start("2026-03-02T10:30:00")
    assert market.usage() == [("2026-03-02T10:00:00", "hourly:m5.large", 1)]  # the first hour has begun
    market.work("2026-03-02T11:00:00")  # the 11:00 tick: 11:30 has not begun
    assert len(market.usage()) == 1
    market.work("2026-03-02T12:00:00")
    assert [when for when, _, _ in market.usage()] == ["2026-03-02T10:00:00", "2026-03-02T11:00:00"]
    with market.db.reader() as session:
        assert session.get_one(InstanceRun, run_id).metered_through == t("2026-03-02T12:30:00")
    market.stop("2026-03-02T12:45:00")
    market.work("2026-03-02T13:00:00")
    market.work("2026-03-02T14:00:00")
    assert [when for when, _, _ in market.usage()] == [
        "2026-03-02T10:00:00",
        "2026-03-02T11:00:00",
        "2026-03-02T12:00:00",
    ]
    with market.db.reader() as session:
        ticks = session.scalars(select(Job.dedupe_key).where(Job.name == platform.TICK).order_by(Job.run_at)).all()
    # one tick per hour while something ran; none once nothing runs
    assert ticks == [f"{platform.TICK}:2026-03-02T{h}" for h in ("11", "12", "13")]


@pytest.mark.rule("MTR-06")
@pytest.mark.rule("MTR-04")
def test_mtr04_the_window_does_not_apply_to_platform_hours_written_at_a_late_stop(market: Market) -> None:
    """MTR-06 / MTR-04: no worker ran, so a 30-hour run writes all 30 hours at its stop, though most are
    older than the 6-hour window, which is a rule for records sent."""
    market.start("2026-03-02T10:00:00")
    market.stop("2026-03-03T16:00:00")
    assert len(market.usage("hourly:m5.large")) == 30


def test_the_tick_is_enqueued_once_per_hour_whoever_starts(market: Market) -> None:
    market.start("2026-03-02T10:05:00", "i-1")
    market.start("2026-03-02T10:06:00", "i-2")
    with market.db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.name == platform.TICK)) == 1


def test_instance_runs_are_refused_with_the_field_named(market: Market) -> None:
    with pytest.raises(Invalid) as unpriced:
        market.start("2026-03-02T10:00:00", instance_type="c5.large")
    assert unpriced.value.problems[0]["loc"] == "instance_type" and "no hourly price for c5.large" in str(
        unpriced.value
    )
    market.start("2026-03-02T10:00:00")
    with pytest.raises(InstanceRunning):
        market.start("2026-03-02T10:05:00")
    with pytest.raises(NotFound):
        market.stop("2026-03-02T10:06:00", "i-unknown")
    market.stop("2026-03-02T10:07:00")
    with pytest.raises(InstanceNotRunning):
        market.stop("2026-03-02T10:08:00")
    with pytest.raises(Invalid) as wrong_kind:
        market.start("2026-03-02T10:09:00", customer="ml-1")
    assert wrong_kind.value.problems[0]["loc"] == "kind"


def test_start_instance_and_stop_instance_are_the_plain_entry_points(market: Market) -> None:
    at = market.at("2026-03-02T10:00:00")
    with market.db.unit_of_work() as session:
        platform.start_instance(session, market.subscription(session, "hr-1"), "i-9", "m5.xlarge", at, "us-east-1")
    at = market.at("2026-03-02T11:30:00")
    with market.db.unit_of_work() as session:
        platform.stop_instance(session, "i-9", at)
    assert market.usage() == [
        ("2026-03-02T10:00:00", "hourly:m5.xlarge", 1),
        ("2026-03-02T11:00:00", "hourly:m5.xlarge", 1),
    ]


def test_a_buyer_without_an_active_subscription_cannot_start(market: Market) -> None:
    with market.db.unit_of_work() as session:
        market.subscription(session, "hr-1").ended_at = t("2026-03-02T00:00:00")
    with pytest.raises(Invalid) as refused:
        market.start("2026-03-02T10:00:00")
    assert refused.value.problems[0]["loc"] == "product"


# --- ML: per second (PRC-12) ----------------------------------------------------------------------------


@pytest.mark.rule("PRC-12")
@pytest.mark.rule("MTR-06")
@pytest.mark.rule("MTR-05")
def test_prc12_a_training_job_is_metered_in_seconds_times_instances(market: Market) -> None:
    """PRC-12 / MTR-06: one-second increments; the same job id again is stored once (MTR-05)."""
    at = market.at("2026-03-02T10:17:23")
    with market.db.unit_of_work() as session:
        sub = market.subscription(session, "ml-1")
        job = platform.ml_job(session, sub, "training", "ml.m5.large", 2, 90, at, job_id="train-1")
        again = platform.ml_job(session, sub, "training", "ml.m5.large", 2, 90, at, job_id="train-1")
    assert (job.quantity, job.outcome.status, again.outcome.status) == (180, Status.ACCEPTED, Status.DUPLICATE)
    assert market.usage() == [("2026-03-02T10:17:23", "training:ml.m5.large", 180)]  # the exact start
    with market.db.unit_of_work() as session, pytest.raises(Conflict):
        platform.ml_job(session, market.subscription(session, "ml-1"), "training", "ml.m5.large", 2, 91, at, "train-1")
    with market.db.unit_of_work() as session:
        sub = market.subscription(session, "ml-1")
        with pytest.raises(Invalid) as unpriced:
            platform.ml_job(session, sub, "batch_inference", "ml.p3.2xlarge", 1, 10, at)
        assert unpriced.value.problems[0]["loc"] == "instance_type"
        with pytest.raises(Invalid) as realtime:
            platform.ml_job(session, sub, "realtime_inference", "ml.m5.large", 1, 10, at)
        assert realtime.value.problems[0]["loc"] == "use"


@pytest.mark.rule("PRC-12")
@pytest.mark.rule("MTR-06")
def test_prc12_an_endpoint_is_metered_per_second_in_each_clock_hour(market: Market) -> None:
    """PRC-12 / MTR-06: complete hours while running, the last partial hour at stop."""
    kind = {"customer": "ml-1", "kind": RunKind.ENDPOINT, "instance_type": "ml.c5.xlarge"}
    market.start("2026-03-02T10:15:00", "ep-1", **kind)
    market.work("2026-03-02T10:59:59")
    assert market.usage() == []  # no complete hour yet
    market.work("2026-03-02T11:00:00")
    market.work("2026-03-02T12:00:00")
    assert [q for _, _, q in market.usage()] == [2700, 3600]
    market.stop("2026-03-02T12:30:00", "ep-1")
    market.work("2026-03-02T13:00:00")
    assert market.usage() == [
        ("2026-03-02T10:00:00", "realtime_inference:ml.c5.xlarge", 2700),
        ("2026-03-02T11:00:00", "realtime_inference:ml.c5.xlarge", 3600),
        ("2026-03-02T12:00:00", "realtime_inference:ml.c5.xlarge", 1800),
    ]
    with pytest.raises(Invalid) as unpriced:
        market.start("2026-03-02T13:00:00", "ep-2", customer="ml-1", kind=RunKind.ENDPOINT, instance_type="m5.large")
    assert unpriced.value.problems[0]["loc"] == "instance_type"


@pytest.mark.rule("MTR-06")
def test_mtr06_cancelling_a_subscription_stops_its_runs_at_that_instant(market: Market, client: TestClient) -> None:
    """The runs of a cancelled subscription stop when it ends, in the cancel's own transaction: an instance, an
    endpoint and a managed-service instance meter nothing after 12:30:20, the hourly ticks after it add nothing,
    and the instance id may run again under a new subscription. Another product's run goes on."""
    market.start("2026-03-02T10:00:00", "i-1", "hr-1")
    market.start("2026-03-02T10:00:00", "ep-1", "ml-1", RunKind.ENDPOINT, "ml.m5.large", instances=2)
    market.start("2026-03-02T10:00:00", "db-1", "db-1", RunKind.SERVICE, None)
    market.start("2026-03-02T10:00:00", "q-1", "queue-1", RunKind.SERVICE, "large")
    market.work("2026-03-02T12:00:00")
    market.at("2026-03-02T12:30:20")
    for customer in ("hr-1", "ml-1", "db-1"):
        with market.db.reader() as session:
            subscription_id = market.subscription(session, customer).id
        response = client.post(f"/api/v1/subscriptions/{subscription_id}/cancel", headers=BUYER)
        assert response.status_code == 200, response.text
        assert response.json()["ended_at"].startswith("2026-03-02T12:30:20")
    with market.db.reader() as session:
        runs = {r.instance_id: r for r in session.scalars(select(InstanceRun))}
    assert {i: runs[i].stopped_at for i in ("i-1", "ep-1", "db-1")} == dict.fromkeys(
        ("i-1", "ep-1", "db-1"), t("2026-03-02T12:30:20")
    )
    assert runs["q-1"].stopped_at is None
    ended = [
        ("2026-03-02T10:00:00", "hourly:m5.large", 1),
        ("2026-03-02T11:00:00", "hourly:m5.large", 1),
        ("2026-03-02T12:00:00", "hourly:m5.large", 1),  # begun before the end (MTR-06 rounds up)
        ("2026-03-02T10:00:00", "realtime_inference:ml.m5.large", 7200),
        ("2026-03-02T11:00:00", "realtime_inference:ml.m5.large", 7200),
        ("2026-03-02T12:00:00", "realtime_inference:ml.m5.large", 2 * 1820),
        ("2026-03-02T10:00:00", "uptime", 3600),
        ("2026-03-02T11:00:00", "uptime", 3600),
        ("2026-03-02T12:00:00", "uptime", 1820),
    ]

    def usage_of_ended() -> list[tuple[str, str, int]]:
        return sorted((u for u in market.usage() if not u[1].endswith("_time")), key=lambda u: (u[1], u[0]))

    assert usage_of_ended() == sorted(ended, key=lambda u: (u[1], u[0]))
    market.work("2026-03-02T13:00:00")
    market.work("2026-03-02T16:00:00")
    assert usage_of_ended() == sorted(ended, key=lambda u: (u[1], u[0]))
    assert [q for _, d, q in market.usage() if d == "msg_time"] == [3600] * 6  # 10:00 to 16:00, still running
    with pytest.raises(InstanceNotRunning):
        market.stop("2026-03-02T16:00:00", "i-1")

    resubscribed = client.post("/api/v1/subscriptions", json={"product": f.HOURLY, "accept_eula": True}, headers=BUYER)
    assert resubscribed.status_code == 201, resubscribed.text
    market.at("2026-03-02T17:00:00")
    with market.db.unit_of_work() as session:
        subscription = session.get_one(Subscription, resubscribed.json()["id"])
        platform.start_instance(session, subscription, "i-1", "m5.large", t("2026-03-02T17:00:00"), "us-east-1")


@pytest.mark.rule("PRC-12")
def test_prc12_an_endpoint_with_several_instances_meters_each(market: Market) -> None:
    market.start("2026-03-02T10:00:00", "ep-1", "ml-1", RunKind.ENDPOINT, "ml.m5.large", instances=3)
    market.stop("2026-03-02T10:00:10", "ep-1")
    assert market.usage() == [("2026-03-02T10:00:00", "realtime_inference:ml.m5.large", 30)]


# --- managed services: time, Prometheus, bill (PRC-14/15) ----------------------------------------------


@pytest.mark.rule("PRC-14")
def test_prc14_a_time_item_is_seconds_of_running_time_per_clock_hour(market: Market) -> None:
    market.start("2026-03-02T10:15:00", "db-i1", "db-1", RunKind.SERVICE, None)
    market.work("2026-03-02T11:00:00")
    market.stop("2026-03-02T12:30:00", "db-i1")
    assert market.usage() == [
        ("2026-03-02T10:00:00", "uptime", 2700),
        ("2026-03-02T11:00:00", "uptime", 3600),
        ("2026-03-02T12:00:00", "uptime", 1800),
    ]


@pytest.mark.rule("PRC-15")
def test_prc15_an_item_counts_only_when_associated_with_the_runs_template(market: Market) -> None:
    with pytest.raises(Invalid) as unnamed:  # several templates: the run must say which
        market.start("2026-03-02T10:00:00", "c-1", "cache-1", RunKind.SERVICE, None)
    assert unnamed.value.problems[0]["loc"] == "instance_type"
    market.start("2026-03-02T10:00:00", "c-1", "cache-1", RunKind.SERVICE, "small")
    market.start("2026-03-02T10:00:00", "q-small", "queue-1", RunKind.SERVICE, "small")
    market.start("2026-03-02T10:00:00", "q-large", "queue-1", RunKind.SERVICE, "large")
    for instance_id in ("c-1", "q-small", "q-large"):
        market.stop("2026-03-02T10:00:10", instance_id)
    # acme-cache has two templates and its items name no plan: nothing is billable
    assert sorted(d for _, d, _ in market.usage()) == ["msg_time", "msg_time", "node_time"]
    with market.db.unit_of_work() as session, pytest.raises(Invalid) as transfer:
        line = platform.BillLine(f.MULTI, "transfer", t("2026-03-02T10:00:00"), 5, customer_identifier="cache-1")
        platform.record_bill_lines(session, [line])
    assert transfer.value.problems[0]["loc"] == "lines[0].item"


@pytest.mark.rule("PRC-15")
def test_prc15_item_association_rule() -> None:
    tiers: list[dict[str, Any]] = [{"up_to": None, "price": "1"}]
    plain = TieredItem.model_validate({"name": "a", "reporting": "time", "tiers": tiers})
    planned = TieredItem.model_validate({"name": "b", "reporting": "time", "plans": ["pro"], "tiers": tiers})
    assert platform.item_applies(plain, ["standard"], "standard")  # one template: associated automatically
    assert platform.item_applies(plain, [], "")
    assert not platform.item_applies(plain, ["basic", "pro"], "pro")  # several: only through `plans`
    assert platform.item_applies(planned, ["basic", "pro"], "pro")
    assert not platform.item_applies(planned, ["basic", "pro"], "basic")


@pytest.mark.rule("PRC-14")
def test_prc14_bill_lines_pass_through_as_usage_of_bill_items(market: Market) -> None:
    run_id = market.start("2026-03-02T10:15:00", "db-i1", "db-1", RunKind.SERVICE, None)
    market.at("2026-03-03T12:00:00")  # a day later: bills arrive late, the 6-hour window is for sent records
    lines = [
        platform.BillLine(f.TIMED, "egress", t("2026-03-02T10:00:00"), 500, customer_identifier="db-1"),
        platform.BillLine(f.TIMED, "egress", t("2026-03-02T11:20:00"), 70, instance_id="db-i1"),
    ]
    with market.db.unit_of_work() as session:
        outcomes = platform.record_bill_lines(session, lines)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.ACCEPTED]
    with market.db.unit_of_work() as session:
        again = platform.record_bill_lines(
            session, [lines[0], platform.BillLine(f.TIMED, "egress", lines[1].hour, 71, instance_id="db-i1")]
        )
    assert [o.status for o in again] == [Status.DUPLICATE, Status.REFUSED]
    assert market.usage("egress") == [("2026-03-02T10:00:00", "egress", 500), ("2026-03-02T11:00:00", "egress", 70)]
    assert set(market.resources()) >= {"bill", f"db-i1#{run_id}"}
    bad = [
        platform.BillLine(f.TIMED, "uptime", t("2026-03-02T10:00:00"), 1, customer_identifier="db-1"),
        platform.BillLine(f.TIMED, "egress", t("2026-03-02T10:00:00"), 1, customer_identifier="nobody"),
        platform.BillLine(f.TIMED, "egress", t("2026-03-01T03:00:00"), 1, instance_id="db-i1"),
    ]
    with market.db.unit_of_work() as session, pytest.raises(Invalid) as refused:
        platform.record_bill_lines(session, bad)
    assert [p["loc"] for p in refused.value.problems] == [
        "lines[0].item",
        "lines[1].customer_identifier",
        "lines[2].instance_id",
    ]


class Exporter:
    """A deployment's metrics endpoint: a real HTTP server serving what the test sets."""

    def __init__(self) -> None:
        self.body = ""
        self.status = 200
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = exporter.body.encode()
                self.send_response(exporter.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    served = Exporter()
    yield served
    served.close()


def _scrapes(market: Market) -> dict[str, tuple[str, str | None, int, str | None]]:
    with market.db.reader() as session:
        rows = session.scalars(select(MetricScrape).order_by(MetricScrape.hour)).all()
        return {f"{r.hour:%H}": (r.state, r.value, r.attempts, r.error) for r in rows}


@pytest.mark.rule("PRC-14")
def test_prc14_a_prometheus_item_is_the_counters_increase_over_each_hour(market: Market, exporter: Exporter) -> None:
    with pytest.raises(Invalid) as no_url:
        market.start("2026-03-02T12:00:00", "si-1", "si-1000001", RunKind.SERVICE, None)
    assert no_url.value.problems[0]["loc"] == "metrics_url"
    market.start("2026-03-02T12:00:00", "si-1", "si-1000001", RunKind.SERVICE, None, metrics_url=exporter.url)

    exporter.body = "storage_bytes_total 100\n"
    market.work("2026-03-02T13:00:00")
    exporter.body = (
        '# TYPE storage_bytes counter\nstorage_bytes_total{disk="a"} 150\nstorage_bytes_total{disk="b"} 100\n'
    )
    market.work("2026-03-02T14:00:00")
    exporter.body = "storage_bytes_total 40\n"  # the counter was reset
    market.work("2026-03-02T15:00:00")
    assert market.usage() == [
        ("2026-03-02T12:00:00", "storage", 100),  # from 0 at the run's start
        ("2026-03-02T13:00:00", "storage", 150),
        ("2026-03-02T14:00:00", "storage", 40),  # a reset counts the new value
    ]
    assert _scrapes(market) == {"12": ("ok", "100", 1, None), "13": ("ok", "250", 1, None), "14": ("ok", "40", 1, None)}


@pytest.mark.rule("PRC-14")
@pytest.mark.rule("MTR-02")
def test_prc14_a_failed_scrape_is_recorded_retried_and_never_zero_usage(
    market: Market, exporter: Exporter, client: TestClient
) -> None:
    """PRC-14 Prometheus items; MTR-02: a measurement that never arrived is not billed, and never as zero."""
    market.start("2026-03-02T12:00:00", "si-1", "si-1000001", RunKind.SERVICE, None, metrics_url=exporter.url)
    exporter.body = "storage_bytes_total 100\n"
    market.work("2026-03-02T13:00:00")

    exporter.status = 500
    market.work("2026-03-02T14:00:00")
    assert _scrapes(market)["13"][0:3] == ("failed", None, 1)
    assert "HTTP 500" in str(_scrapes(market)["13"][3])
    market.work("2026-03-02T14:00:02")  # the retry, 2 s later (jobs.backoff)
    exporter.status, exporter.body = 200, "another_metric 5\n"
    market.work("2026-03-02T14:00:06")
    assert _scrapes(market)["13"][2:] == (3, "metric storage_bytes_total is missing")
    exporter.body = "storage_bytes_total{"
    market.work("2026-03-02T14:00:14")
    assert _scrapes(market)["13"][2] == 4 and "cannot be parsed" in str(_scrapes(market)["13"][3])
    assert "storage_bytes_total{" not in str(_scrapes(market)["13"][3])  # what the deployment served is not echoed
    market.work("2026-03-02T15:00:00")  # hour 14 waits for hour 13: its increase is measured from it
    assert "14" not in _scrapes(market)
    assert market.usage() == [("2026-03-02T12:00:00", "storage", 100)]  # nothing, not zero, for 13 and 14

    failed = client.get("/api/v1/metering/scrapes?state=failed", headers=SELLER).json()["scrapes"]
    assert [(s["instance_id"], s["hour"], s["attempts"]) for s in failed] == [("si-1", "2026-03-02T13:00:00Z", 5)]
    assert client.get("/api/v1/metering/scrapes", headers=OTHER_SELLER).json() == {"scrapes": []}
    assert len(client.get("/api/v1/metering/scrapes", headers=OPERATOR).json()["scrapes"]) == 2
    assert client.get("/api/v1/metering/scrapes", headers=BUYER).status_code == 403

    exporter.body = "storage_bytes_total 130\n"
    market.work("2026-03-02T16:00:00")
    assert _scrapes(market)["13"] == ("ok", "130", 6, None)
    assert market.usage() == [
        ("2026-03-02T12:00:00", "storage", 100),
        ("2026-03-02T13:00:00", "storage", 30),
        ("2026-03-02T14:00:00", "storage", 0),  # scraped right after 13's late value: a real zero increase
        ("2026-03-02T15:00:00", "storage", 0),
    ]


@pytest.mark.rule("PRC-14")
def test_prc14_the_last_partial_hour_is_scraped_at_stop(market: Market, exporter: Exporter) -> None:
    market.start("2026-03-02T12:10:00", "si-1", "si-1000001", RunKind.SERVICE, None, metrics_url=exporter.url)
    exporter.body = "storage_bytes_total 7\n"
    market.work("2026-03-02T13:00:00")
    exporter.body = "storage_bytes_total 19\n"
    market.stop("2026-03-02T13:20:00", "si-1")
    market.work()
    assert market.usage() == [("2026-03-02T12:00:00", "storage", 7), ("2026-03-02T13:00:00", "storage", 12)]


def test_counter_values_are_read_with_the_prometheus_parser() -> None:
    text = (
        "# HELP storage_bytes Bytes stored.\n# TYPE storage_bytes counter\n"
        'storage_bytes_total{disk="a"} 1.5e3\nstorage_bytes_total{disk="b"} 0.25\nstorage_bytes_created 1.7e9\n'
    )
    assert counter_value(text, "storage_bytes_total") == Decimal("1500.25")
    assert counter_value(text, "storage_bytes") == Decimal("1500.25")
    assert counter_increase(Decimal("10.9"), Decimal("9.2")) == 1  # whole units; the fraction carries over
    assert counter_increase(Decimal("3"), Decimal("9.2")) == 3  # a reset
    with pytest.raises(ScrapeFailed, match="missing"):
        counter_value(text, "other_total")
    with pytest.raises(ScrapeFailed, match="cannot fetch"):
        read_counter(f"http://127.0.0.1:{free_port()}/metrics", "x")


# --- the native API: who may do and see what -------------------------------------------------------------


def _start(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/instances", json={"product": f.HOURLY, "instance_id": "i-1", **body}, headers=headers)


@pytest.mark.rule("MTR-06")
def test_the_api_starts_stops_and_lists_runs_for_their_owners_only(market: Market, client: TestClient) -> None:
    """MTR-06 through the native API: buyers act on their own runs, sellers only read, others get 404."""
    market.at("2026-03-02T10:00:00")
    started = _start(client, BUYER, instance_type="m5.large")
    assert started.status_code == 201, started.text
    assert started.json() | {"id": 0} == {
        "id": 0,
        "instance_id": "i-1",
        "kind": "instance",
        "product": f.HOURLY,
        "buyer": f.BUYER,
        "customer_identifier": "hr-1",
        "instance_type": "m5.large",
        "instances": 1,
        "region": "us-east-1",
        "state": "running",
        "started_at": "2026-03-02T10:00:00Z",
        "stopped_at": None,
        "metered_through": "2026-03-02T11:00:00Z",
        "metrics_url": None,
    }
    assert _start(client, BUYER, instance_type="m5.large").json()["error"] == "instance_running"
    unpriced = _start(client, BUYER, instance_id="i-2", instance_type="c5.large")
    assert unpriced.status_code == 422 and unpriced.json()["problems"][0]["loc"] == "instance_type"
    unsubscribed = _start(client, UNSUBSCRIBED, instance_id="i-3", instance_type="m5.large")
    assert unsubscribed.status_code == 422 and unsubscribed.json()["problems"][0]["loc"] == "product"
    assert _start(client, SELLER, instance_id="i-4", instance_type="m5.large").status_code == 403
    unnamed = _start(client, OPERATOR, instance_id="i-5", instance_type="m5.large")
    assert unnamed.status_code == 422 and unnamed.json()["problems"][0]["loc"] == "buyer"
    assert _start(client, OPERATOR, buyer=f.BUYER, instance_id="i-6", instance_type="m5.xlarge").status_code == 201

    def listed(headers: dict[str, str]) -> list[str]:
        return [r["instance_id"] for r in client.get("/api/v1/instances", headers=headers).json()["instances"]]

    assert sorted(listed(BUYER)) == sorted(listed(SELLER)) == sorted(listed(OPERATOR)) == ["i-1", "i-6"]
    assert listed(OTHER_BUYER) == listed(OTHER_SELLER) == []

    market.at("2026-03-02T11:30:00")
    other = client.post("/api/v1/instances/i-1/stop", headers=OTHER_BUYER)
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert client.post("/api/v1/instances/i-1/stop", headers=SELLER).status_code == 403
    stopped = client.post("/api/v1/instances/i-1/stop", headers=BUYER)
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert client.post("/api/v1/instances/i-1/stop", headers=BUYER).json()["error"] == "instance_not_running"
    assert client.post("/api/v1/instances/i-6/stop", headers=OPERATOR).status_code == 200
    running = client.get("/api/v1/instances?running=true", headers=BUYER).json()["instances"]
    assert running == []
    assert market.usage("hourly:m5.large") == [
        ("2026-03-02T10:00:00", "hourly:m5.large", 1),
        ("2026-03-02T11:00:00", "hourly:m5.large", 1),
    ]


@pytest.mark.rule("PRC-12")
def test_the_api_records_ml_jobs_for_the_callers_subscription(market: Market, client: TestClient) -> None:
    """PRC-12 through the native API."""
    market.at("2026-03-02T10:00:00")
    body = {"product": f.ML, "use": "training", "instance_type": "ml.m5.large", "instances": 2, "seconds": 90}
    created = client.post("/api/v1/ml/jobs", json=body | {"job_id": "j-1"}, headers=BUYER)
    assert created.status_code == 201, created.text
    assert created.json() | {"metering_record_id": None} == {
        "job_id": "j-1",
        "status": "accepted",
        "metering_record_id": None,
        "dimension": "training:ml.m5.large",
        "quantity": 180,
        "timestamp": "2026-03-02T10:00:00Z",
    }
    assert client.post("/api/v1/ml/jobs", json=body | {"job_id": "j-1"}, headers=BUYER).json()["status"] == "duplicate"
    assert client.post("/api/v1/ml/jobs", json=body, headers=OTHER_BUYER).status_code == 422
    assert client.post("/api/v1/ml/jobs", json=body, headers=SELLER).status_code == 403
    future = client.post("/api/v1/ml/jobs", json=body | {"at": "2026-03-02T11:00:00Z"}, headers=BUYER)
    assert future.status_code == 422 and future.json()["problems"][0]["loc"] == "at"
    endpoint = client.post(
        "/api/v1/instances",
        json={
            "product": f.ML,
            "instance_id": "ep-1",
            "kind": "endpoint",
            "instance_type": "ml.m5.large",
            "instances": 2,
        },
        headers=BUYER,
    )
    assert endpoint.status_code == 201 and endpoint.json()["instances"] == 2


@pytest.mark.rule("PRC-14")
def test_the_api_takes_bill_lines_from_operators_only(market: Market, client: TestClient) -> None:
    """PRC-14 `bill` items through the native API."""
    market.at("2026-03-02T10:00:00")
    lines = {
        "lines": [
            {
                "product": f.TIMED,
                "item": "egress",
                "customer_identifier": "db-1",
                "hour": "2026-03-02T09:00:00Z",
                "quantity": 12,
            }
        ]
    }
    assert client.post("/api/v1/metering/bill-lines", json=lines, headers=SELLER).status_code == 403
    assert client.post("/api/v1/metering/bill-lines", json=lines, headers=BUYER).status_code == 403
    posted = client.post("/api/v1/metering/bill-lines", json=lines, headers=OPERATOR)
    assert posted.status_code == 200 and posted.json()["results"][0]["status"] == "accepted"
    lines["lines"][0]["item"] = "nothing"
    refused = client.post("/api/v1/metering/bill-lines", json=lines, headers=OPERATOR)
    assert refused.status_code == 422 and refused.json()["problems"][0]["loc"] == "lines[0].item"
    assert market.usage() == [("2026-03-02T09:00:00", "egress", 12)]


def test_platform_dimensions_split_into_charge_type_and_item() -> None:
    assert platform.split_dimension("hourly:m5.large") == ("hourly", "m5.large", None)
    assert platform.split_dimension("realtime_inference:ml.m5.large") == ("realtime_inference", "ml.m5.large", None)
    assert platform.split_dimension("storage") == ("tiered", None, "storage")
    assert platform.billable_hours(t("2026-03-02T10:00:00"), t("2026-03-02T10:00:00") + timedelta(hours=2)) == [
        t("2026-03-02T10:00:00"),
        t("2026-03-02T11:00:00"),
    ]


@pytest.mark.parametrize(
    "instance_id",
    ['=HYPERLINK("http://evil.example/","x")', "i 1", "<b>i-1</b>", "i-1\n", "i-1;DROP", "é-1", "i" * 101, ""],
    ids=["formula", "space", "markup", "newline", "semicolon", "non-ascii", "too-long", "empty"],
)
def test_an_instance_id_must_look_like_one_422_naming_the_field(
    market: Market, client: TestClient, instance_id: str
) -> None:
    market.at("2026-03-02T10:00:00")
    response = _start(client, BUYER, instance_type="m5.large", instance_id=instance_id)
    assert response.status_code == 422, response.text
    assert [p["loc"].removeprefix("body.") for p in response.json()["problems"]] == ["instance_id"]
    assert client.get("/api/v1/instances", headers=BUYER).json()["instances"] == []


def test_instance_ids_of_every_usual_shape_are_accepted(market: Market, client: TestClient) -> None:
    market.at("2026-03-02T10:00:00")
    usual = ("i-0abc1234def567890", "i-bp1a2b3c4d5e6f7g8h9i", "web-7d9f8:0", "node_1.example.com", "i" * 100)
    for instance_id in usual:
        started = _start(client, BUYER, instance_type="m5.large", instance_id=instance_id)
        assert started.status_code == 201, started.text
        assert client.post(f"/api/v1/instances/{instance_id}/stop", headers=BUYER).status_code == 200


def test_a_metrics_url_into_the_private_network_is_refused_by_default(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_ALLOW_PRIVATE_URLS", "0")  # this module allows them; the default does not
    config.reset_settings()
    for url in ("http://127.0.0.1:9100/metrics", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(Invalid) as refused:
            market.start("2026-03-02T12:00:00", "si-1", "si-1000001", RunKind.SERVICE, None, metrics_url=url)
        assert refused.value.problems[0]["loc"] == "metrics_url"
        assert "loopback, link-local or private" in refused.value.problems[0]["msg"]
