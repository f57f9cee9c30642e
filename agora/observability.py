"""Operability: Prometheus metrics at `GET /metrics`, readiness at `GET /readyz`, JSON logs carrying the
request id (`AGORA_LOG_FORMAT=json`).

Metrics of requests and metering are counted in the process that serves them. `agora serve --workers N`
runs N processes; it then points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before they start, each
process writes its counts there, and a scrape of any of them reads the sum of all (prometheus_client's
multiprocess mode). Job queue and billing gauges are read from the database at scrape time, so every
process, and every scrape, sees the same figures whichever process answers.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import and_, func, or_, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora import clock
from agora.config import get_settings
from agora.db import Database
from agora.metering.records import Outcome, Status
from agora.models import Job, JobState

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID: ContextVar[str | None] = ContextVar("agora_request_id", default=None)
ACCESS = logging.getLogger("agora.access")
log = logging.getLogger("agora.observability")

# --- metrics counted in process ----------------------------------------------------------------------------

disable_created_metrics()  # a `_created` series beside every counter and histogram doubles a scrape for nothing
UNMATCHED = "<unmatched>"  # the route label of a request no route matched: raw paths would be unbounded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other token: "other"

REQUESTS = Counter(
    "agora_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "agora_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RECORDS = Counter(
    "agora_metering_records",
    "Metering records by source and outcome (accepted, duplicate, refused) and, when refused, the reason; "
    "a batch refused as a whole counts each of its records under the reason that refused it",
    ["source", "outcome", "reason"],
)


class MetricsMiddleware:
    """Counts every HTTP request by its route template and status and times it; makes the request id
    (`RequestIdMiddleware`, which runs before this) visible to log records; in JSON log mode writes one
    access line per request. Plain ASGI and a dictionary look-up per request for the metric children:
    the metering hot path runs through here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        token = REQUEST_ID.set(scope.get("state", {}).get("request_id"))
        status = 500  # what the server answers if the app raises before starting a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            counter = self._counters.get((method, template, status))
            if counter is None:
                counter = self._counters[(method, template, status)] = REQUESTS.labels(method, template, str(status))
            counter.inc()
            timer = self._timers.get((method, template))
            if timer is None:
                timer = self._timers[(method, template)] = LATENCY.labels(method, template)
            timer.observe(elapsed)
            if ACCESS.isEnabledFor(logging.INFO):
                _access_line(scope, template, status, elapsed)
            REQUEST_ID.reset(token)


def _access_line(scope: Scope, template: str, status: int, elapsed: float) -> None:
    client = scope.get("client")
    ACCESS.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": client[0] if client else None,
        },
    )


_STATUS = itemgetter(0)  # Outcome.status
_record_children: dict[tuple[str, str, str], Any] = {}


def _record_child(source: str, outcome: str, reason: str) -> Any:
    child = _record_children.get((source, outcome, reason))
    if child is None:
        child = _record_children[(source, outcome, reason)] = RECORDS.labels(source, outcome, reason)
    return child


def count_outcomes(source: str, outcomes: Sequence[Outcome]) -> None:
    """Metering's decisions on a batch, counted once per distinct outcome. The statuses are counted by
    `list.count` (identity first, in C): hashing a thousand enum members per request (Enum's `__hash__` is
    Python) cost a native batch half a millisecond."""
    statuses = list(map(_STATUS, outcomes))
    accepted = statuses.count(Status.ACCEPTED)
    if accepted:
        _record_child(source, "accepted", "").inc(accepted)
    if accepted == len(statuses):  # the usual batch
        return
    duplicate = statuses.count(Status.DUPLICATE)
    if duplicate:
        _record_child(source, "duplicate", "").inc(duplicate)
    if accepted + duplicate < len(statuses):
        reasons = Tally(str(o.problem) for o in outcomes if o.status is Status.REFUSED)
        for reason, count in reasons.items():
            _record_child(source, "refused", reason).inc(count)


def count_refused_batch(source: str, reason: str, records: int) -> None:
    _record_child(source, "refused", reason).inc(records)


# --- metrics read from the database at scrape time ---------------------------------------------------------

BILLING_INVOICE_JOB = "billing.invoice_buyers"
BILLING_CLOSE_JOB = "billing.close_period"


class DatabaseCollector:
    """Job queue depth and age, and billing run progress, read from the jobs table when scraped."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        from agora import jobs

        now = clock.now()
        due = GaugeMetricFamily("agora_jobs_due", "Queued jobs whose time has come, by job name", labels=["name"])
        age = GaugeMetricFamily(
            "agora_jobs_oldest_due_age_seconds",
            "How long the oldest due job has been waiting to be claimed, by job name (0 when none waits)",
            labels=["name"],
        )
        running = GaugeMetricFamily("agora_jobs_running", "Jobs claimed by a worker, by job name", labels=["name"])
        failed = GaugeMetricFamily(
            "agora_jobs_failed", "Jobs that failed every attempt (retry them from /ops/jobs)", labels=["name"]
        )
        done = GaugeMetricFamily(
            "agora_billing_run_invoices_done",
            "Buyers invoiced so far by a month's close still running (a buyer owing nothing gets no invoice)",
            labels=["period"],
        )
        total = GaugeMetricFamily(
            "agora_billing_run_invoices_total",
            "Buyers a month's close still running has to invoice (0 while it is summing the month's usage)",
            labels=["period"],
        )
        up = GaugeMetricFamily("agora_database_up", "Whether the database answered this scrape's queries")
        try:
            states, closes = self._read(now)
        except Exception:
            log.warning("metrics: the database did not answer; job and billing figures left out", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        names = sorted(jobs.registered() | {name for name, *_ in states})
        found = {(name, state): (count, oldest) for name, state, count, oldest in states}
        for name in names:
            count, oldest = found.get((name, JobState.QUEUED.value), (0, None))
            due.add_metric([name], count)
            age.add_metric([name], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
            running.add_metric([name], found.get((name, JobState.RUNNING.value), (0, None))[0])
            failed.add_metric([name], found.get((name, JobState.FAILED.value), (0, None))[0])
        for period, (finished, buyers) in sorted(closes.items()):
            done.add_metric([period], finished)
            total.add_metric([period], buyers)
        yield from (due, age, running, failed, done, total)

    def _read(self, now: datetime) -> tuple[list[Any], dict[str, tuple[int, int]]]:
        with self.db.reader() as session:
            states = session.execute(
                select(
                    Job.name,
                    Job.state,
                    func.count(),
                    func.min(Job.run_at),
                )
                .where(
                    or_(
                        and_(Job.state == JobState.QUEUED.value, Job.run_at <= now),
                        Job.state.in_([JobState.RUNNING.value, JobState.FAILED.value]),
                    )
                )
                .group_by(Job.name, Job.state)
            ).all()
            return list(states), self._billing_runs(session, now)

    @staticmethod
    def _billing_runs(session: Any, now: datetime) -> dict[str, tuple[int, int]]:
        """(buyers invoiced, buyers to invoice) of every close in progress: one whose summing job is due or
        running, or one with invoice jobs not done (failed ones included: that run is stuck)."""
        pending = session.execute(
            select(Job.name, Job.payload).where(
                or_(
                    and_(
                        Job.name == BILLING_CLOSE_JOB,
                        or_(
                            Job.state == JobState.RUNNING.value,
                            and_(Job.state == JobState.QUEUED.value, Job.run_at <= now),
                        ),
                    ),
                    and_(Job.name == BILLING_INVOICE_JOB, Job.state != JobState.DONE.value),
                )
            )
        ).all()
        periods = {str(payload.get("period")) for _, payload in pending}
        runs: dict[str, tuple[int, int]] = {}
        for period in periods:
            # The invoice jobs of a close are `invoice:<period>:<first buyer>` (billing.service.close_period):
            # matched by that key, not by reading every invoice job's payload ever written (a prefix, not a
            # range of the index: under a PostgreSQL collation other than C, ':' and ';' may not sort apart).
            invoice_jobs = session.execute(
                select(Job.state, Job.payload).where(
                    Job.name == BILLING_INVOICE_JOB, Job.dedupe_key.startswith(f"invoice:{period}:", autoescape=True)
                )
            ).all()
            buyers = [(state, len(payload["buyer_ids"])) for state, payload in invoice_jobs]
            runs[period] = (sum(n for state, n in buyers if state == JobState.DONE.value), sum(n for _, n in buyers))
        return runs


class _Scrape:
    """What one scrape collects: this process's (or, in multiprocess mode, every server process's) counters
    and the database's gauges."""

    def __init__(self, db: Database) -> None:
        self.sources: list[Any] = []
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            self.sources.append(merged)
        else:
            self.sources.append(REGISTRY)
        self.sources.append(DatabaseCollector(db))

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            yield from source.collect()


_LOOPBACK_NAMES = {"localhost"}


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrape_allowed(request: Request) -> JSONResponse | None:
    """None when the caller may read /metrics, else the answer to give it. With `AGORA_METRICS_TOKEN` set, a
    scrape must send it as a bearer token; without, only loopback clients may scrape (behind a proxy that
    passes X-Forwarded-For, the client uvicorn reports is the original one, so the internet is refused too)."""
    token = get_settings().metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return JSONResponse(
            {"error": "unauthorized", "detail": "/metrics needs the bearer token AGORA_METRICS_TOKEN names"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.client is not None and _loopback(request.client.host):
        return None
    return JSONResponse(
        {"error": "forbidden", "detail": "/metrics answers loopback clients only unless AGORA_METRICS_TOKEN is set"},
        status_code=403,
    )


# --- readiness ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The code's head revision and every revision it knows (read once: the code does not change)."""
    from alembic.script import ScriptDirectory

    from agora import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config())
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def readiness(db: Database) -> str | None:
    """None when this process can serve: the database answers and its schema is the code's; else why not."""
    from agora import migrate

    try:
        current = migrate.current_revision(db)
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    head, known = _revisions()
    if current == head:
        return None
    if current is not None and current not in known:  # a newer release migrated it: this process is the old one
        return f"database schema at revision {current}, newer than this code (head {head}): upgrade this process"
    return f"database schema at revision {current or 'none'}, this code needs {head}: run `agora migrate`"


def install(app: FastAPI) -> None:
    """`/metrics`, `/readyz` and the metrics middleware. Called before `RequestIdMiddleware` is added, so this
    middleware runs inside it and finds the request id."""
    app.add_middleware(MetricsMiddleware)

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> Any:
        reason = readiness(request.app.state.db)
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        refusal = scrape_allowed(request)
        if refusal is not None:
            return refusal
        return Response(generate_latest(_Scrape(request.app.state.db)), media_type=CONTENT_TYPE_LATEST)


# --- logs --------------------------------------------------------------------------------------------------

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's message again, with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id when there is one, and the
    fields a caller passed in `extra` (the access line's method, route, status, duration)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(*, access_log: bool, log_format: str | None = None) -> dict[str, Any]:
    """`logging.config.dictConfig` for a server or worker process; uvicorn applies it in every server process.
    In JSON mode uvicorn's own access line is replaced by this module's, which carries the route and the
    request id; in text mode uvicorn's stays."""
    json_mode = (log_format or get_settings().log_format) == "json"
    formatter: dict[str, Any] = {"()": JsonFormatter} if json_mode else {"format": TEXT_FORMAT}
    quiet = {"handlers": [], "level": "WARNING", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "alembic": {"level": "WARNING"},  # its INFO lines at every start say nothing an operator needs
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": (
                {"handlers": [], "level": "INFO", "propagate": True} if access_log and not json_mode else quiet
            ),
            "agora.access": (
                {"handlers": [], "level": "INFO", "propagate": True} if access_log and json_mode else quiet
            ),
        },
    }


def server_options(*, port: int, workers: int, access_log: bool) -> dict[str, Any]:
    """uvicorn's logging options for `agora serve`, and, with several server processes, prometheus_client's
    multiprocess mode: a directory their counts meet in, emptied now (counts of an earlier run would be
    added), named by port so two servers on one machine do not mix. An operator's own
    `PROMETHEUS_MULTIPROC_DIR` is used as it is given."""
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        from agora.config import var_dir

        directory = var_dir() / "metrics" / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        os.environ[MULTIPROC_ENV] = str(directory.resolve())
    json_mode = get_settings().log_format == "json"
    return {"log_config": log_config(access_log=access_log), "access_log": access_log and not json_mode}


def configure_logging(*, access_log: bool = False) -> None:
    """For processes that are not uvicorn's (`agora worker`)."""
    import logging.config

    logging.config.dictConfig(log_config(access_log=access_log))
