"""`GET /metrics` scraped and parsed by prometheus_client's own parser, `GET /readyz` both ways, and the JSON
log lines carrying the request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text, update

from agora import clock, config, jobs, migrate, observability
from agora.app import create_app
from agora.auth import Principal
from agora.db import Database, open_database
from agora.metering import service as metering
from agora.metering.records import BatchRefused, Problem, Reading, Source
from agora.models import Job, JobState, Product, Role, Seller
from tests.factories.metering import SAAS, metered_market

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
TOKEN = "scrape-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def market(db: Database, manual_clock: clock.ManualClock) -> None:
    manual_clock.set(NOW)
    metered_market(db, NOW - timedelta(days=10))


@pytest.fixture
def scraper(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("AGORA_METRICS_TOKEN", TOKEN)
    config.reset_settings()
    with TestClient(create_app(db)) as test_client:
        yield test_client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def usage_record(product: str = SAAS, dimension: str = "users", quantity: int = 5) -> dict[str, object]:
    return {
        "product_code": product,
        "dimension": dimension,
        "quantity": quantity,
        "timestamp": (HOUR + timedelta(minutes=7)).isoformat(),
        "customer_identifier": "cust-1",
    }


def test_metrics_count_requests_by_route_template_and_status_metering_outcomes_jobs_and_billing_progress(
    db: Database, market: None, scraper: TestClient
) -> None:
    before = scrape(scraper)
    assert scraper.get("/healthz").status_code == 200
    assert scraper.get("/healthz").status_code == 200
    assert scraper.get("/api/v1/catalog/no-such-product").status_code == 404
    assert scraper.get("/no/such/page/at/all").status_code == 404
    assert scraper.request("BREW", "/healthz").status_code == 405  # a method of the caller's invention
    answer = scraper.post(
        "/api/v1/usage",
        json={
            "records": [
                usage_record(quantity=10),
                usage_record(quantity=10),  # the same record again: a duplicate
                usage_record(product="acme-nothing"),
                usage_record(dimension="seats"),
            ]
        },
        headers={"Authorization": "Bearer acme-token"},
    )
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "duplicate", "refused", "refused"]

    with db.unit_of_work() as session:
        for seconds in (90, 30):
            jobs.enqueue(session, "test.metrics", {}, run_at=NOW - timedelta(seconds=seconds))
        jobs.enqueue(session, "test.metrics", {}, run_at=NOW + timedelta(hours=1))  # not due: not in the queue
        running = jobs.enqueue(session, "test.metrics", {}, run_at=NOW - timedelta(hours=2))
        failed = jobs.enqueue(session, "test.metrics", {}, run_at=NOW - timedelta(hours=3))
        # A close of February half done: the invoice jobs of buyers 1–3 are done, of buyers 4–5 not yet.
        first = jobs.enqueue(
            session,
            "billing.invoice_buyers",
            {"period": "2026-02", "buyer_ids": [1, 2, 3]},
            dedupe_key="invoice:2026-02:1",
        )
        jobs.enqueue(
            session,
            "billing.invoice_buyers",
            {"period": "2026-02", "buyer_ids": [4, 5]},
            dedupe_key="invoice:2026-02:4",
        )
        # January's close is over: it is not reported.
        january = jobs.enqueue(
            session, "billing.invoice_buyers", {"period": "2026-01", "buyer_ids": [1]}, dedupe_key="invoice:2026-01:1"
        )
        assert running and failed and first and january
        session.execute(update(Job).where(Job.id == running.id).values(state=JobState.RUNNING.value))
        session.execute(update(Job).where(Job.id == failed.id).values(state=JobState.FAILED.value))
        session.execute(update(Job).where(Job.id.in_([first.id, january.id])).values(state=JobState.DONE.value))

    after = scrape(scraper)

    def delta(metric: str, /, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    requests = "agora_http_requests_total"
    assert delta(requests, method="GET", route="/healthz", status="200") == 2
    assert delta(requests, method="GET", route="/api/v1/catalog/{code}", status="404") == 1
    assert delta(requests, method="GET", route=observability.UNMATCHED, status="404") == 1
    assert delta(requests, method="POST", route="/api/v1/usage", status="200") == 1
    assert not any(name == requests and ("route", "/no/such/page/at/all") in labels for name, labels in after)
    assert delta(requests, method="other", route="/healthz", status="405") == 1
    latency = "agora_http_request_duration_seconds"
    assert delta(f"{latency}_count", method="POST", route="/api/v1/usage") == 1
    assert delta(f"{latency}_bucket", method="POST", route="/api/v1/usage", le="+Inf") == 1
    assert delta(f"{latency}_sum", method="POST", route="/api/v1/usage") > 0

    records = "agora_metering_records_total"
    assert delta(records, source="seller", outcome="accepted", reason="") == 1
    assert delta(records, source="seller", outcome="duplicate", reason="") == 1
    assert delta(records, source="seller", outcome="refused", reason="unknown_product") == 1
    assert delta(records, source="seller", outcome="refused", reason="unknown_dimension") == 1

    assert value(after, "agora_jobs_due", name="test.metrics") == 2
    assert value(after, "agora_jobs_oldest_due_age_seconds", name="test.metrics") == 90
    assert value(after, "agora_jobs_running", name="test.metrics") == 1
    assert value(after, "agora_jobs_failed", name="test.metrics") == 1
    assert value(after, "agora_jobs_due", name="billing.invoice_buyers") == 1
    assert value(after, "agora_billing_run_invoices_done", period="2026-02") == 3
    assert value(after, "agora_billing_run_invoices_total", period="2026-02") == 5
    assert value(after, "agora_database_up") == 1
    assert ("agora_billing_run_invoices_total", frozenset({("period", "2026-01")})) not in after


def test_a_batch_refused_as_a_whole_counts_every_record_under_its_reason(
    db: Database, market: None, scraper: TestClient
) -> None:
    with db.reader() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == SAAS))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
    assert seller_id is not None and handle is not None
    seller = Principal(Role.SELLER, seller_id, handle)
    at = HOUR + timedelta(minutes=7)
    readings = [Reading(SAAS, "users", 1, at, customer_identifier="cust-1"), Reading("acme-nothing", "users", 1, at)]
    before = scrape(scraper)
    with pytest.raises(BatchRefused), db.unit_of_work() as session:
        metering.ingest(session, seller, readings, source=Source.SELLER, fatal=frozenset({Problem.UNKNOWN_PRODUCT}))
    after = scrape(scraper)
    labels = {"source": "seller", "outcome": "refused", "reason": "unknown_product"}
    assert (
        value(after, "agora_metering_records_total", **labels) - value(before, "agora_metering_records_total", **labels)
        == 2
    )
    assert value(after, "agora_metering_records_total", source="seller", outcome="accepted", reason="") == value(
        before, "agora_metering_records_total", source="seller", outcome="accepted", reason=""
    )


def test_metrics_need_the_token_when_one_is_set_and_else_answer_loopback_only(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(db)
    remote = TestClient(app, client=("203.0.113.9", 40000))
    local = TestClient(app, client=("127.0.0.1", 40000))
    assert remote.get("/metrics").status_code == 403
    assert remote.get("/metrics").json()["error"] == "forbidden"
    assert local.get("/metrics").status_code == 200

    monkeypatch.setenv("AGORA_METRICS_TOKEN", TOKEN)
    config.reset_settings()
    assert local.get("/metrics").status_code == 401  # a token, once set, is asked of everyone
    assert remote.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# --- readiness ---------------------------------------------------------------------------------------------


def test_readyz_is_ready_on_a_migrated_database_and_says_why_not_when_its_schema_is_not_the_codes(
    db: Database, client: TestClient
) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    script = ScriptDirectory.from_config(migrate.alembic_config())
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    try:
        set_revision(db, previous)  # migrations behind the code
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "reason": f"database schema at revision {previous}, this code needs {head}: run `agora migrate`",
        }
        assert client.get("/healthz").status_code == 200  # alive, just not ready

        set_revision(db, "f00dfeed0001")  # migrated by a newer release than this process
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == (
            f"database schema at revision f00dfeed0001, newer than this code (head {head}): upgrade this process"
        )
    finally:
        set_revision(db, head)
    assert client.get("/readyz").status_code == 200


def set_revision(db: Database, revision: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_readyz_is_unavailable_when_the_database_does_not_answer_and_metrics_say_so_too() -> None:
    unreachable = open_database("postgresql+psycopg://agora@127.0.0.1:1/agora?connect_timeout=2")
    with TestClient(create_app(unreachable), client=("127.0.0.1", 40000)) as test_client:
        response = test_client.get("/readyz")
        scraped = test_client.get("/metrics")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "database unreachable: OperationalError"}
    assert scraped.status_code == 200  # the process's own figures are still worth a scrape
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    assert value(samples, "agora_database_up") == 0
    assert value(samples, "agora_http_requests_total", method="GET", route="/readyz", status="503") >= 1
    assert not [name for name, _ in samples if name.startswith("agora_jobs_")]


def test_readyz_is_unavailable_on_a_database_never_migrated(tmp_path: object) -> None:
    empty = open_database(f"sqlite:///{tmp_path}/empty.db")
    with TestClient(create_app(empty)) as test_client:
        response = test_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database schema at revision none")
    empty.dispose()


# --- JSON logs ---------------------------------------------------------------------------------------------


def test_json_logs_carry_the_request_id_and_every_request_writes_one_access_line(db: Database) -> None:
    app = create_app(db)

    @app.get("/test/log")
    def logs_something() -> dict[str, str]:  # runs in a worker thread, as the API's routes do
        logging.getLogger("agora.test").warning("inside the request")
        return {"ok": "yes"}

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    loggers = [logging.getLogger("agora.access"), logging.getLogger("agora.test")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        with TestClient(app) as test_client:
            assert test_client.get("/test/log", headers={"X-Request-Id": "req-0001"}).status_code == 200
            answer = test_client.get("/healthz")
        logging.getLogger("agora.test").warning("outside any request")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside, access, health, outside = lines
    assert inside["message"] == "inside the request" and inside["request_id"] == "req-0001"
    assert inside["level"] == "warning" and inside["logger"] == "agora.test"
    assert access["logger"] == "agora.access" and access["request_id"] == "req-0001"
    assert (access["method"], access["path"], access["route"], access["status"]) == (
        "GET",
        "/test/log",
        "/test/log",
        200,
    )
    assert access["duration_ms"] >= 0
    assert health["request_id"] == answer.headers["x-request-id"] and health["route"] == "/healthz"
    assert "request_id" not in outside
    assert datetime.fromisoformat(access["time"]).tzinfo is not None
