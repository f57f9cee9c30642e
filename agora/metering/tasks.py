"""Metering jobs: the hourly platform tick and the Prometheus scrapes of managed services (MTR-06, PRC-14).

The tick runs at every whole hour while anything runs: it writes the usage measured so far and enqueues
one scrape per (service run, prometheus item, hour). A scrape that fails is recorded as failed with its
error and retried by a later job with backoff (`jobs.backoff`); it never becomes zero usage. The failure
is committed, not raised: a raised error would roll the record of it back.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock, jobs, outbound
from agora.metering import platform
from agora.metering.platform import HOUR, MAX_SCRAPE_ATTEMPTS, SCRAPE, TICK, RunKind, clock_hour
from agora.models import InstanceRun, MetricScrape, Product, Subscription

SCRAPE_TIMEOUT = 10.0  # seconds


class ScrapeFailed(Exception):
    pass


@jobs.handler(TICK)
def platform_tick(session: Session, payload: dict[str, Any]) -> None:
    """Write every running run's usage up to now, enqueue the scrapes due, and come back next hour."""
    now = clock.now()
    running = platform.flush_running(session, now)
    for run in running:
        if run.kind == RunKind.SERVICE.value:
            platform.enqueue_scrapes(session, run, now)
    if running:
        platform.schedule_tick(session, now)


@jobs.handler(SCRAPE)
def scrape(session: Session, payload: dict[str, Any]) -> None:
    """Scrape one item of one service run for one hour, in hour order (see `platform.waiting_for`)."""
    run = session.get(InstanceRun, payload["run_id"])
    if run is None:
        return
    item_name, hour = payload["item"], datetime.fromisoformat(payload["hour"])
    row = scrape_row(session, run, item_name, hour)
    if row is not None and (row.state == "ok" or row.attempts >= MAX_SCRAPE_ATTEMPTS):
        return
    if waiting_for(session, run, item_name, hour) is not None:
        return  # the earlier hour's successful scrape enqueues this one again
    item = next((i for i in platform.scraped_items(session, run, hour) if i.name == item_name), None)
    if item is None or item.metric is None:
        return  # no longer a billable scraped item of this run (PRC-15)
    now = clock.now()
    try:
        if not run.metrics_url:
            raise ScrapeFailed("the run has no metrics URL")
        value = read_counter(run.metrics_url, item.metric)
    except ScrapeFailed as exc:
        failed = record_scrape_failure(session, run, item_name, hour, str(exc))
        if failed.attempts < MAX_SCRAPE_ATTEMPTS:
            retry_at = now + jobs.backoff(failed.attempts)
            platform.enqueue_scrape(session, run, item_name, hour, retry_at, tag=f"retry{failed.attempts}")
        return
    record_scrape(session, run, item_name, hour, value)
    following = hour + HOUR
    if following in platform.scrape_hours(run, now):
        platform.enqueue_scrape(session, run, item_name, following, now, tag="after")


# --- recording scrapes ---------------------------------------------------------------------------------


def counter_increase(value: Decimal, previous: Decimal) -> int:
    """A counter's increase between two scrapes; a value lower than before is a reset, so the new value is
    the increase. Whole units of the floored counters, so fractions are carried to later hours, not lost."""
    now, before = _floor(value), _floor(previous)
    return now - before if now >= before else now


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def scrape_row(session: Session, run: InstanceRun, item: str, hour: datetime) -> MetricScrape | None:
    return session.scalar(
        select(MetricScrape).where(MetricScrape.run_id == run.id, MetricScrape.item == item, MetricScrape.hour == hour)
    )


def waiting_for(session: Session, run: InstanceRun, item: str, hour: datetime) -> datetime | None:
    """The earlier hour whose scrape must succeed first, if any: an hour's increase is measured from the
    previous hour's value, so scrapes of one item succeed in hour order."""
    if hour <= clock_hour(run.started_at):
        return None
    previous = scrape_row(session, run, item, hour - HOUR)
    return None if previous is not None and previous.state == "ok" else hour - HOUR


def record_scrape_failure(session: Session, run: InstanceRun, item: str, hour: datetime, error: str) -> MetricScrape:
    """A failed scrape is kept with its error and retried; it is never read as zero usage."""
    row = scrape_row(session, run, item, hour) or _new_scrape(session, run, item, hour)
    row.state, row.error, row.attempts = "failed", error[:2000], row.attempts + 1
    session.flush()
    return row


def record_scrape(
    session: Session, run: InstanceRun, item: str, hour: datetime, value: Decimal
) -> tuple[MetricScrape, int]:
    """Keep the counter's value for `hour` and write the hour's usage: its increase since the previous
    hour's scrape (0 at the run's start; a reset counts the new value). Returns the row and the increase."""
    row = scrape_row(session, run, item, hour) or _new_scrape(session, run, item, hour)
    previous = Decimal(0)
    if hour > clock_hour(run.started_at):
        before = scrape_row(session, run, item, hour - HOUR)
        assert before is not None and before.value is not None, "scrapes succeed in hour order"
        previous = Decimal(before.value)
    row.state, row.value, row.error, row.attempts = "ok", _text(value), None, row.attempts + 1
    increase = counter_increase(value, previous)
    subscription = session.get_one(Subscription, run.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    reading = platform.usage_reading(
        subscription, product, item, increase, max(hour, run.started_at), platform.resource(run)
    )
    platform.store(session, [reading], run.region)
    session.flush()
    return row, increase


def _new_scrape(session: Session, run: InstanceRun, item: str, hour: datetime) -> MetricScrape:
    row = MetricScrape(run_id=run.id, item=item, hour=hour, state="failed", attempts=0)
    session.add(row)
    return row


def _text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if len(text) <= 64 else str(value.normalize())


# --- reading a deployment's metrics ---------------------------------------------------------------------


def read_counter(url: str, metric: str) -> Decimal:
    """The value of counter `metric` at `url` (Prometheus text format)."""
    try:
        response = outbound.request("GET", url, timeout=SCRAPE_TIMEOUT)
    except outbound.RefusedUrl as exc:
        raise ScrapeFailed(f"cannot fetch {url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise ScrapeFailed(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise ScrapeFailed(f"{url} answered HTTP {response.status_code}")
    return counter_value(response.text, metric)


def counter_value(text: str, metric: str) -> Decimal:
    """Sum of the samples named `<metric>` or `<metric>_total` (every label set), parsed by prometheus_client.
    Values are read through their shortest decimal text, so what is stored is what was served."""
    names = {metric, f"{metric}_total"}
    total, found = Decimal(0), False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in names:
                    total += Decimal(repr(sample.value))
                    found = True
    except (ValueError, TypeError, IndexError, InvalidOperation):
        # Not the parser's message: it quotes the fetched text, which the seller's deployment wrote.
        raise ScrapeFailed("the metrics text cannot be parsed: it is not in the Prometheus text format") from None
    if not found:
        raise ScrapeFailed(f"metric {metric} is missing")
    if not total.is_finite() or total < 0:
        raise ScrapeFailed(f"metric {metric} is {total}, not a counter value")
    return total
