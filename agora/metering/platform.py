"""Platform-measured usage (MTR-06, PRC-14): what Agora runs for buyers and meters itself.

Every measurement is written through `service.ingest` as a platform record, so billing reads one store.
Dimensions are namespaced so they never collide with a seller's (PRC-08 names have no colon):

* `hourly:<type>` — a server image or container instance, quantity 1 per billable hour. A run of duration
  d has max(1, ceil(d / 1 h)) billable hours; hour k begins at start + k h and is attributed to the clock
  hour it begins in (RULES SUB-01 convention).
* `training:<type>`, `batch_inference:<type>` — one record per ML job, instances × seconds, at its start.
* `realtime_inference:<type>` — an ML endpoint, instances × seconds run in each clock hour.
* `<item>` — a managed-service billable item the platform reports (PRC-14): `time` (instances × seconds
  run in each clock hour), `prometheus` (the counter's increase over each clock hour, scraped by the
  `metering.scrape` job in `tasks.py`) and `bill` (infrastructure bill lines an operator posts).

`resource` is `<instance id>#<run id>`, so a restart in the same clock hour is a new run with its own
records, and rewriting an hour is harmless (the MTR-05 key stores it once). Run boundaries are whole
seconds: the start is floored and the stop rounded up, so one-second increments never lose a part-second.

Billing reads these with `platform_usage` (after `flush_running(session, clock.now())` when it closes a
period while runs are still running) and explains hourly lines with `runs_between`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import jobs
from agora.config import get_settings
from agora.errors import Conflict, Invalid, NotFound
from agora.metering.records import USAGE, Outcome, Problem, Reading, Source, from_epoch
from agora.metering.service import ingest
from agora.models import InstanceRun, MetricScrape, Product, ProductRegion, Subscription
from agora.outbound import check_url
from agora.pricing.schema import PricingDocument, TieredItem
from agora.pricing.service import price_for

log = logging.getLogger("agora.metering.platform")

HOUR = timedelta(hours=1)
ML_USES = ("training", "batch_inference")  # jobs; real-time inference is an endpoint run
MAX_INSTANCE_ID = 100  # leaves room for `#<run id>` in the 128-character resource
# What instance ids look like (AWS `i-0abc…`, Alibaba `i-bp1…`, Kubernetes pod names, hostnames): the id is
# shown in invoices, exports and pages, so it carries no spaces, quotes, markup or formula characters.
INSTANCE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_INSTANCE_ID}}}")
MAX_SCRAPE_ATTEMPTS = 48  # at the one-hour backoff cap, about two days of retries
TICK = "metering.platform_tick"
SCRAPE = "metering.scrape"


class RunKind(StrEnum):
    INSTANCE = "instance"  # server image or container: hourly
    ENDPOINT = "endpoint"  # ML real-time inference: per second
    SERVICE = "service"  # managed-service instance: its platform-reported items


PRODUCT_KINDS: dict[RunKind, frozenset[str]] = {
    RunKind.INSTANCE: frozenset({"ami", "container"}),
    RunKind.ENDPOINT: frozenset({"ml_algorithm", "ml_model"}),
    RunKind.SERVICE: frozenset({"managed_service"}),
}


class InstanceRunning(Conflict):
    code = "instance_running"


class InstanceNotRunning(Conflict):
    code = "instance_not_running"


# --- pure time arithmetic -------------------------------------------------------------------------------


def clock_hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def _ceil_second(instant: datetime) -> datetime:
    floored = instant.replace(microsecond=0)
    return floored if floored == instant else floored + timedelta(seconds=1)


def billable_hours(started_at: datetime, until: datetime) -> list[datetime]:
    """MTR-06: the instants at which the billable hours of a run begin, for a run stopped at `until` (or
    still running then). Hours begun strictly before `until` count, and always at least the first."""
    seconds = max(0, int((until - started_at).total_seconds()))
    count = max(1, -(-seconds // 3600))
    return [started_at + k * HOUR for k in range(count)]


def seconds_by_clock_hour(start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Split [start, end) at clock hours: (where the piece starts, whole seconds in it), non-empty pieces."""
    pieces: list[tuple[datetime, int]] = []
    cursor = start
    while cursor < end:
        boundary = min(end, clock_hour(cursor) + HOUR)
        pieces.append((cursor, int((boundary - cursor).total_seconds())))
        cursor = boundary
    return [piece for piece in pieces if piece[1] > 0]


# --- pricing and PRC-15 ---------------------------------------------------------------------------------


def pricing_at(session: Session, subscription: Subscription, at: datetime) -> PricingDocument | None:
    document: dict[str, Any] | None
    try:
        document = price_for(session, subscription, at).pricing
    except ValueError:  # never launched (no price version): the product's own document
        document = session.get_one(Product, subscription.product_id).pricing
    return PricingDocument.model_validate(document) if document else None


def templates_of(product: Product) -> list[str]:
    managed = (product.listing or {}).get("managed_service") or {}
    return [str(t) for t in managed.get("templates") or []]


def item_applies(item: TieredItem, templates: Sequence[str], template: str) -> bool:
    """PRC-15: an item counts only once associated with a plan/template. Without `plans` it is associated
    with the single template automatically, and with nothing when the service has several; with `plans`
    it counts for a run of one of them (or any run, when the run names no template)."""
    if item.plans:
        return not template or template in item.plans
    return len(templates) <= 1


def platform_items(
    document: PricingDocument | None, product: Product, template: str, reporting: str
) -> list[TieredItem]:
    """The product's billable items the platform reports by `reporting` (time | prometheus | bill)."""
    if document is None or document.tiered is None:
        return []
    templates = templates_of(product)
    return [i for i in document.tiered.items if i.reporting == reporting and item_applies(i, templates, template)]


# --- subscriptions --------------------------------------------------------------------------------------


def _active(subscription: Subscription, at: datetime) -> bool:
    started = subscription.started_at.replace(microsecond=0)  # runs and usage are kept to the second
    return started <= at and (subscription.ended_at is None or at < subscription.ended_at)


def active_subscription(session: Session, buyer_id: int, product_code: str, at: datetime) -> Subscription:
    found = session.scalars(
        select(Subscription)
        .join(Product, Product.id == Subscription.product_id)
        .where(Product.code == product_code, Subscription.buyer_id == buyer_id)
        .order_by(Subscription.started_at.desc())
    )
    for subscription in found:
        if _active(subscription, at):
            return subscription
    raise Invalid.at("product", f"the buyer has no active subscription to {product_code!r}")


# --- runs -----------------------------------------------------------------------------------------------


def resource(run: InstanceRun) -> str:
    return f"{run.instance_id}#{run.id}"


def start_instance(
    session: Session, subscription: Subscription, instance_id: str, instance_type: str, at: datetime, region: str
) -> InstanceRun:
    return start_run(session, subscription, RunKind.INSTANCE, instance_id, instance_type, at, region=region)


def start_endpoint(
    session: Session,
    subscription: Subscription,
    instance_id: str,
    instance_type: str,
    at: datetime,
    *,
    instances: int = 1,
    region: str | None = None,
) -> InstanceRun:
    return start_run(
        session, subscription, RunKind.ENDPOINT, instance_id, instance_type, at, region=region, instances=instances
    )


def start_run(
    session: Session,
    subscription: Subscription,
    kind: RunKind,
    instance_id: str,
    instance_type: str | None,
    at: datetime,
    *,
    region: str | None = None,
    instances: int = 1,
    metrics_url: str | None = None,
) -> InstanceRun:
    """Start metering a run. `instance_type` is a priced instance type, or a service's template."""
    at = at.replace(microsecond=0)
    product = session.get_one(Product, subscription.product_id)
    region = region or get_settings().region
    if not _active(subscription, at):
        raise Invalid.at("product", f"the buyer has no active subscription to {product.code!r}")
    if product.kind not in PRODUCT_KINDS[kind]:
        allowed = ", ".join(sorted(PRODUCT_KINDS[kind]))
        raise Invalid.at("kind", f"a {kind.value} run is for {allowed} products; {product.code} is {product.kind}")
    if not INSTANCE_ID.fullmatch(instance_id):
        raise Invalid.at(
            "instance_id", f"must be 1 to {MAX_INSTANCE_ID} characters of letters, digits and . _ : - (like i-0abc12)"
        )
    if instances < 1 or (kind is RunKind.INSTANCE and instances != 1):
        message = "an instance run is one instance" if kind is RunKind.INSTANCE else "must be at least 1"
        raise Invalid.at("instances", message)
    _check_region(session, product, region)
    document = pricing_at(session, subscription, at)
    instance_type = _checked_type(kind, product, document, instance_type)
    if kind is not RunKind.SERVICE and metrics_url:
        raise Invalid.at("metrics_url", "only managed-service runs are scraped")
    if kind is RunKind.SERVICE:
        _check_metrics_url(product, document, instance_type, metrics_url)
    if session.scalar(select(InstanceRun.id).where(InstanceRun.instance_id == instance_id, _running())):
        raise InstanceRunning(f"instance {instance_id} is already running; stop it before starting it again")
    run = InstanceRun(
        subscription_id=subscription.id,
        kind=kind.value,
        instance_id=instance_id,
        instance_type=instance_type,
        instances=instances,
        region=region,
        started_at=at,
        metered_through=at,
        metrics_url=metrics_url or None,
    )
    try:
        with session.begin_nested():  # the partial unique index settles a concurrent second start
            session.add(run)
    except IntegrityError:
        raise InstanceRunning(f"instance {instance_id} is already running") from None
    flush_run(session, run, at)
    schedule_tick(session, at)
    return run


def _running() -> Any:
    return InstanceRun.stopped_at.is_(None)


def _check_region(session: Session, product: Product, region: str) -> None:
    regions = set(session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product.id)))
    if region != get_settings().region or (regions and region not in regions):
        raise Invalid.at("region", f"{product.code} cannot run in {region} on this marketplace [MTR-03]")


def _checked_type(kind: RunKind, product: Product, document: PricingDocument | None, given: str | None) -> str:
    if kind is RunKind.SERVICE:
        templates = templates_of(product)
        if given:
            if templates and given not in templates:
                raise Invalid.at("instance_type", f"{product.code} has no template {given!r} ({', '.join(templates)})")
            return given
        if len(templates) > 1:
            raise Invalid.at("instance_type", f"name the template to deploy: {', '.join(templates)} [PRC-15]")
        return templates[0] if templates else ""
    if not given:
        raise Invalid.at("instance_type", "name the instance type")
    if kind is RunKind.INSTANCE:
        prices = document.hourly if document else None
        if prices and given not in prices:
            raise Invalid.at(
                "instance_type", f"{product.code} has no hourly price for {given} (priced: {', '.join(prices)})"
            )
        return given
    prices = document.ml.realtime_inference if document and document.ml else None
    if not prices or given not in prices:
        raise Invalid.at(
            "instance_type",
            f"{product.code} has no realtime_inference price for {given} (priced: {', '.join(prices or {})}) [PRC-12]",
        )
    return given


def _check_metrics_url(product: Product, document: PricingDocument | None, template: str, url: str | None) -> None:
    scraped = platform_items(document, product, template, "prometheus")
    if url and not url.startswith(("http://", "https://")):
        raise Invalid.at("metrics_url", "must be an http:// or https:// URL")
    problem = check_url(url) if url else None
    if problem:
        raise Invalid.at("metrics_url", problem)
    if scraped and not url:
        names = ", ".join(i.name for i in scraped)
        raise Invalid.at("metrics_url", f"{product.code} scrapes {names} from the deployment: give its URL [PRC-14]")


def stop_instance(session: Session, instance_id: str, at: datetime) -> InstanceRun:
    return stop_run(session, instance_id, at)


stop_endpoint = stop_service = stop_instance


def stop_run(session: Session, instance_id: str, at: datetime, *, buyer_id: int | None = None) -> InstanceRun:
    """Stop the running run of `instance_id` and write the rest of its usage. With `buyer_id`, another
    buyer's instance is unknown (404)."""
    statement = select(InstanceRun).where(InstanceRun.instance_id == instance_id)
    if buyer_id is not None:
        statement = statement.join(Subscription, Subscription.id == InstanceRun.subscription_id).where(
            Subscription.buyer_id == buyer_id
        )
    runs = list(session.scalars(statement))
    running = [run for run in runs if run.stopped_at is None]
    if not runs:
        raise NotFound(f"no instance {instance_id!r}")
    if not running:
        raise InstanceNotRunning(f"instance {instance_id} is not running")
    run = running[0]
    _stop(session, run, at)
    session.flush()
    return run


def stop_runs_of(session: Session, subscription: Subscription, at: datetime) -> list[InstanceRun]:
    """Stop every open run of `subscription` at `at`, the instant it ends, in the caller's unit of work: the
    platform meters nothing after a subscription ends (its usage up to `at` is written now)."""
    runs = list(
        session.scalars(
            select(InstanceRun)
            .where(InstanceRun.subscription_id == subscription.id, _running())
            .order_by(InstanceRun.id)
        )
    )
    for run in runs:
        _stop(session, run, at)
    session.flush()
    return runs


def _stop(session: Session, run: InstanceRun, at: datetime) -> None:
    run.stopped_at = max(_ceil_second(at), run.started_at)
    flush_run(session, run, run.stopped_at)
    if run.kind == RunKind.SERVICE.value:
        enqueue_scrapes(session, run, run.stopped_at)


def flush_run(session: Session, run: InstanceRun, now: datetime) -> list[Outcome]:
    """Write the usage of `run` measured up to `now` (its stop, once stopped); idempotent.

    Instances write every billable hour begun so far; endpoints and time items write complete clock hours
    while running and the last partial hour at stop. `metered_through` records how far it got."""
    subscription = session.get_one(Subscription, run.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    until = run.stopped_at if run.stopped_at is not None else now
    readings: list[Reading] = []

    def reading(dimension: str, quantity: int, at: datetime) -> Reading:
        return usage_reading(subscription, product, dimension, quantity, at, resource(run))

    if run.kind == RunKind.INSTANCE.value:
        hours = [h for h in billable_hours(run.started_at, until) if h >= run.metered_through]
        readings = [reading(f"hourly:{run.instance_type}", 1, h) for h in hours]
        through = hours[-1] + HOUR if hours else run.metered_through
    else:
        through = until if run.stopped_at is not None else max(run.metered_through, clock_hour(now))
        for start, seconds in seconds_by_clock_hour(run.metered_through, through):
            quantity = run.instances * seconds
            if run.kind == RunKind.ENDPOINT.value:
                readings.append(reading(f"realtime_inference:{run.instance_type}", quantity, start))
            else:
                document = pricing_at(session, subscription, start)
                for item in platform_items(document, product, run.instance_type, "time"):
                    readings.append(reading(item.name, quantity, start))
    outcomes = store(session, readings, run.region)
    run.metered_through = through
    return outcomes


def usage_reading(
    subscription: Subscription,
    product: Product,
    dimension: str,
    quantity: int,
    at: datetime,
    source: str,
    exact: bool = False,
) -> Reading:
    """A platform record of `subscription`; `source` (the record's resource) tells what was measured."""
    customer = subscription.customer_identifier
    return Reading(product.code, dimension, quantity, at, customer_identifier=customer, resource=source, exact=exact)


def store(session: Session, readings: list[Reading], region: str | None = None) -> list[Outcome]:
    """Write platform records (no 6-hour window: MTR-04 is a rule for records sent)."""
    if not readings:
        return []
    outcomes = ingest(session, None, readings, region=region, source=Source.PLATFORM, check_window=False)
    for r, outcome in zip(readings, outcomes, strict=True):
        if not outcome.ok:  # e.g. hours after the subscription ended: not billable, but worth a look
            log.warning("platform usage %s %s %s refused: %s", r.product_code, r.dimension, r.resource, outcome.message)
    return outcomes


def flush_running(session: Session, now: datetime) -> list[InstanceRun]:
    """Bring every running run's usage up to `now` (the hourly tick; billing before it closes a period)."""
    runs = list(session.scalars(select(InstanceRun).where(_running()).order_by(InstanceRun.id)))
    for run in runs:
        flush_run(session, run, now)
    return runs


def schedule_tick(session: Session, now: datetime) -> None:
    """The hourly tick at the next whole hour, once per hour whoever asks (a unique dedupe key)."""
    due = clock_hour(now) + HOUR
    jobs.enqueue(session, TICK, {"hour": due.isoformat()}, run_at=due, dedupe_key=f"{TICK}:{due:%Y-%m-%dT%H}")


# --- ML jobs (PRC-12, MTR-06) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MlJob:
    job_id: str
    dimension: str
    quantity: int
    at: datetime
    outcome: Outcome


def ml_job(
    session: Session,
    subscription: Subscription,
    use: str,
    instance_type: str,
    instances: int,
    seconds: int,
    at: datetime,
    job_id: str | None = None,
) -> MlJob:
    """One training or batch-inference job: instances × seconds at its start (one-second increments).
    The same `job_id` again is stored once (MTR-05)."""
    at = at.replace(microsecond=0)
    product = session.get_one(Product, subscription.product_id)
    if product.kind not in PRODUCT_KINDS[RunKind.ENDPOINT]:
        raise Invalid.at("product", f"{product.code} is not an ML product")
    if use not in ML_USES:
        raise Invalid.at("use", f"must be one of {', '.join(ML_USES)} (real-time inference runs as an endpoint)")
    if not _active(subscription, at):
        raise Invalid.at(
            "product", f"the buyer has no active subscription to {product.code!r} at {at:%Y-%m-%dT%H:%M:%SZ}"
        )
    document = pricing_at(session, subscription, at)
    prices: dict[str, Decimal] | None = getattr(document.ml, use) if document and document.ml else None
    if not prices or instance_type not in prices:
        priced = ", ".join(prices or {}) or "none"
        raise Invalid.at(
            "instance_type", f"{product.code} has no {use} price for {instance_type} (priced: {priced}) [PRC-12]"
        )
    if instances < 1:
        raise Invalid.at("instances", "must be at least 1")
    if seconds < 1:
        raise Invalid.at("seconds", "must be at least 1")
    if job_id is not None and not 1 <= len(job_id) <= 128:
        raise Invalid.at("job_id", "must be 1 to 128 characters")
    job_id = job_id or f"job-{uuid.uuid4().hex}"
    dimension = f"{use}:{instance_type}"
    reading = usage_reading(subscription, product, dimension, instances * seconds, at, job_id, exact=True)
    [outcome] = store(session, [reading])
    if outcome.problem is Problem.DUPLICATE_CONFLICT:
        raise Conflict(f"job {job_id} was already recorded with another quantity [MTR-05]")
    if not outcome.ok:
        raise Invalid.at("at", outcome.message)
    return MlJob(job_id, dimension, reading.quantity, at, outcome)


# --- managed services: Prometheus scrapes (PRC-14) ------------------------------------------------------


def scrape_hours(run: InstanceRun, now: datetime) -> list[datetime]:
    """Clock hours of `run` ready to scrape: complete ones while running; every one, the last partial, once
    stopped."""
    first = clock_hour(run.started_at)
    if run.stopped_at is not None:
        last = clock_hour(max(run.stopped_at - timedelta(seconds=1), run.started_at))
    else:
        last = clock_hour(now) - HOUR
    hours = []
    hour = first
    while hour <= last:
        hours.append(hour)
        hour += HOUR
    return hours


def scraped_items(session: Session, run: InstanceRun, hour: datetime) -> list[TieredItem]:
    subscription = session.get_one(Subscription, run.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    document = pricing_at(session, subscription, max(hour, run.started_at))
    return platform_items(document, product, run.instance_type, "prometheus")


def enqueue_scrapes(session: Session, run: InstanceRun, now: datetime) -> None:
    """One `metering.scrape` job per (run, item, hour) ready and not yet scraped successfully."""
    ok = select(MetricScrape.item, MetricScrape.hour).where(MetricScrape.run_id == run.id, MetricScrape.state == "ok")
    done = {(item, hour) for item, hour in session.execute(ok)}
    for hour in scrape_hours(run, now):
        for item in scraped_items(session, run, hour):
            if (item.name, hour) not in done:
                enqueue_scrape(session, run, item.name, hour, now)


def enqueue_scrape(session: Session, run: InstanceRun, item: str, hour: datetime, at: datetime, tag: str = "") -> None:
    key = f"{SCRAPE}:{run.id}:{item}:{hour:%Y-%m-%dT%H}{':' + tag if tag else ''}"
    jobs.enqueue(session, SCRAPE, {"run_id": run.id, "item": item, "hour": hour.isoformat()}, run_at=at, dedupe_key=key)


# --- infrastructure bill lines (PRC-14 `bill`) ----------------------------------------------------------


@dataclass(frozen=True)
class BillLine:
    product: str
    item: str
    hour: datetime
    quantity: int
    customer_identifier: str | None = None
    instance_id: str | None = None


def record_bill_lines(session: Session, lines: Sequence[BillLine]) -> list[Outcome]:
    """Pass-through of infrastructure charges: each line is stored as platform usage of a `bill` item for
    its hour. All lines are checked first; one bad line refuses the batch with every problem located."""
    problems: list[tuple[str, str]] = []
    readings: list[Reading] = []
    for n, line in enumerate(lines):
        found = _bill_reading(session, line, f"lines[{n}]")
        if isinstance(found, Reading):
            readings.append(found)
        else:
            problems.append(found)
    if problems:
        raise Invalid.of(problems)
    return store(session, readings)


def _bill_reading(session: Session, line: BillLine, loc: str) -> Reading | tuple[str, str]:
    product = session.scalar(select(Product).where(Product.code == line.product))
    if product is None:
        return f"{loc}.product", f"no product {line.product!r}"
    if line.hour.tzinfo is None:
        return f"{loc}.hour", "give a time zone (UTC)"
    if line.quantity < 0:
        return f"{loc}.quantity", "must not be negative"
    hour = clock_hour(line.hour)
    if (line.customer_identifier is None) == (line.instance_id is None):
        return f"{loc}.customer_identifier", "give a customer identifier or a run's instance id, not both"
    run: InstanceRun | None = None
    subscription: Subscription | None
    if line.instance_id is not None:
        run = session.scalar(
            select(InstanceRun)
            .join(Subscription, Subscription.id == InstanceRun.subscription_id)
            .where(
                InstanceRun.instance_id == line.instance_id,
                Subscription.product_id == product.id,
                InstanceRun.started_at < hour + HOUR,
                or_(InstanceRun.stopped_at.is_(None), InstanceRun.stopped_at > hour),
            )
            .order_by(InstanceRun.started_at.desc())
        )
        if run is None:
            return f"{loc}.instance_id", f"no run of {line.instance_id} of {product.code} in that hour"
        subscription = session.get_one(Subscription, run.subscription_id)
        start = max(hour, run.started_at)
    else:
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.product_id == product.id, Subscription.customer_identifier == line.customer_identifier
            )
        )
        if subscription is None:
            return f"{loc}.customer_identifier", f"no customer {line.customer_identifier!r} of {product.code}"
        start = max(hour, subscription.started_at)
    items = platform_items(pricing_at(session, subscription, start), product, run.instance_type if run else "", "bill")
    if line.item not in {i.name for i in items}:
        known = ", ".join(i.name for i in items) or "none"
        return f"{loc}.item", f"{product.code} has no billable bill item {line.item!r} (bill items: {known}) [PRC-14]"
    return usage_reading(subscription, product, line.item, line.quantity, start, resource(run) if run else "bill")


# --- reading back ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformUsage:
    """One platform record as billing reads it. `charge` is hourly | training | realtime_inference |
    batch_inference | tiered; `instance_type` is set for the first four and `item` for tiered."""

    subscription_id: int
    product_id: int
    buyer_id: int
    charge: str
    instance_type: str | None
    item: str | None
    period_start: datetime  # exact start (ML jobs, partial hours keep their hour here)
    hour: datetime  # the clock hour it is attributed to
    quantity: int
    resource: str
    record_id: str


def split_dimension(dimension: str) -> tuple[str, str | None, str | None]:
    """(charge, instance type, item) of a platform dimension."""
    charge, sep, rest = dimension.partition(":")
    if sep and charge in ("hourly", "training", "realtime_inference", "batch_inference"):
        return charge, rest, None
    return "tiered", None, dimension


def platform_usage(
    session: Session, start: datetime, end: datetime, *, subscription_id: int | None = None
) -> list[PlatformUsage]:
    """Platform-measured records with period start in [start, end), in time order. Billing calls
    `flush_running(session, clock.now())` first when it closes a period while runs are still running."""
    c = USAGE.c
    columns = ("subscription_id", "product_id", "buyer_id", "quantity", "resource", "record_id")
    statement = (
        select(*(c[name] for name in columns), c.dimension, c.period_start)
        .where(c.source == Source.PLATFORM.value)
        .where(c.period_start >= int(start.timestamp()), c.period_start < int(end.timestamp()))
        .order_by(c.period_start, c.id)
    )
    if subscription_id is not None:
        statement = statement.where(c.subscription_id == subscription_id)
    found = []
    for row in session.execute(statement):
        charge, instance_type, item = split_dimension(row.dimension)
        at = from_epoch(row.period_start)
        fields = {name: row._mapping[name] for name in columns}
        found.append(
            PlatformUsage(
                charge=charge, instance_type=instance_type, item=item, period_start=at, hour=clock_hour(at), **fields
            )
        )
    return found


def runs_between(
    session: Session, start: datetime, end: datetime, *, subscription_id: int | None = None
) -> list[InstanceRun]:
    """Runs overlapping [start, end), for invoice explanations ("i-1 2026-03-01 10:00–14:00, 4 h")."""
    statement = (
        select(InstanceRun)
        .where(InstanceRun.started_at < end, or_(InstanceRun.stopped_at.is_(None), InstanceRun.stopped_at > start))
        .order_by(InstanceRun.started_at, InstanceRun.id)
    )
    if subscription_id is not None:
        statement = statement.where(InstanceRun.subscription_id == subscription_id)
    return list(session.scalars(statement))
