"""Native API of platform-measured usage (MTR-06, PRC-14): instance, endpoint and service runs, ML jobs,
Prometheus scrapes and infrastructure bill lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import ANY_ROLE, Principal, require
from agora.deps import Uow
from agora.errors import Invalid
from agora.metering import platform
from agora.metering.platform import BillLine, RunKind
from agora.models import Buyer, InstanceRun, MetricScrape, Product, Role, Subscription
from agora.paging import Page, Paging
from agora.validation import Instant

router = APIRouter(prefix="/api/v1", tags=["metering"])
runner = require(Role.BUYER, Role.OPERATOR)
anyone = require(*ANY_ROLE)
watcher = require(Role.SELLER, Role.OPERATOR)
operator = require(Role.OPERATOR)

Account = Field(None, pattern=r"^[0-9]{12}$", description="the buyer's account; operators only")


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str = Field(min_length=1, max_length=64)
    buyer: str | None = Account
    instance_id: str = Field(min_length=1, max_length=platform.MAX_INSTANCE_ID)
    instance_type: str | None = Field(
        None, min_length=1, max_length=64, description="priced instance type; for a service, its template"
    )
    kind: RunKind = RunKind.INSTANCE
    instances: int = Field(1, ge=1, le=10_000, description="endpoints: instances behind it; instances: 1")
    metrics_url: str | None = Field(None, max_length=500, description="services: the Prometheus endpoint")


class MlJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str = Field(min_length=1, max_length=64)
    buyer: str | None = Account
    use: Literal["training", "batch_inference"]
    instance_type: str = Field(min_length=1, max_length=64)
    instances: int = Field(1, ge=1, le=10_000)
    seconds: int = Field(ge=1, le=10**9, description="run time of the job, in seconds (PRC-12)")
    job_id: str | None = Field(None, min_length=1, max_length=128, description="sending it again is stored once")
    at: Instant | None = Field(None, description="when the job started; now when left out")


class BillLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str = Field(min_length=1, max_length=64)
    item: str = Field(min_length=1, max_length=160)
    customer_identifier: str | None = Field(None, min_length=1, max_length=128)
    instance_id: str | None = Field(None, min_length=1, max_length=platform.MAX_INSTANCE_ID)
    hour: Instant = Field(description="the hour the charge belongs to (rounded down to the hour)")
    quantity: int = Field(ge=0)


class BillLinesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[BillLineIn] = Field(min_length=1, max_length=1000)


class RunOut(BaseModel):
    id: int
    instance_id: str
    kind: str
    product: str
    buyer: str
    customer_identifier: str
    instance_type: str
    instances: int
    region: str
    state: str = Field(description="running or stopped")
    started_at: str
    stopped_at: str | None
    metered_through: str
    metrics_url: str | None


class RunsOut(BaseModel):
    instances: list[RunOut]


class MlJobOut(BaseModel):
    job_id: str | None
    status: str
    metering_record_id: str | None
    dimension: str
    quantity: int
    timestamp: str


class ScrapeOut(BaseModel):
    id: int
    product: str
    instance_id: str
    run_id: int
    item: str
    hour: str
    state: str
    value: str | None = Field(description="the counter's value at the scrape, exact")
    attempts: int
    error: str | None


class ScrapesOut(BaseModel):
    scrapes: list[ScrapeOut]


class LineResultOut(BaseModel):
    index: int
    status: str
    metering_record_id: str | None
    error: str | None
    detail: str | None


class BillLinesOut(BaseModel):
    results: list[LineResultOut]


def _subscription(session: Session, principal: Principal, product: str, buyer: str | None) -> Subscription:
    """The subscription a run or job is for: the calling buyer's own, or the buyer an operator names."""
    if principal.role is Role.BUYER:
        if buyer is not None and buyer != principal.handle:
            raise Invalid.at("buyer", "a buyer runs instances for its own account only; leave buyer out")
        buyer_id = principal.id
    else:
        if buyer is None:
            raise Invalid.at("buyer", "name the buyer account the run is for")
        found = session.scalar(select(Buyer.id).where(Buyer.account == buyer))
        if found is None:
            raise Invalid.at("buyer", f"no buyer {buyer}")
        buyer_id = found
    return platform.active_subscription(session, buyer_id, product, clock.now())


@router.post("/instances", status_code=201, response_model=RunOut)
def start(body: RunIn, session: Uow, principal: Principal = Depends(runner)) -> dict[str, Any]:
    """Start metering an instance, ML endpoint or managed-service instance (MTR-06)."""
    subscription = _subscription(session, principal, body.product, body.buyer)
    run = platform.start_run(
        session,
        subscription,
        body.kind,
        body.instance_id,
        body.instance_type,
        clock.now(),
        instances=body.instances,
        metrics_url=body.metrics_url,
    )
    return describe_run(session, run)


@router.post("/instances/{instance_id}/stop", response_model=RunOut)
def stop(instance_id: str, session: Uow, principal: Principal = Depends(runner)) -> dict[str, Any]:
    """Stop a running instance; the rest of its usage is written now. Another buyer's instance is 404."""
    buyer_id = principal.id if principal.role is Role.BUYER else None
    run = platform.stop_run(session, instance_id, clock.now(), buyer_id=buyer_id)
    return describe_run(session, run)


@router.get("/instances", response_model=RunsOut)
def runs(
    session: Uow,
    principal: Principal = Depends(anyone),
    running: bool | None = Query(None, description="only running (true) or stopped (false) runs"),
    product: str | None = None,
    page: Page = Depends(Paging),
) -> dict[str, Any]:
    """Runs the caller may see: a buyer its own, a seller its products', an operator all; newest first."""
    return {"instances": visible_runs(session, principal, running=running, product=product, page=page)}


@router.post("/ml/jobs", status_code=201, response_model=MlJobOut)
def ml_job(body: MlJobIn, session: Uow, principal: Principal = Depends(runner)) -> dict[str, Any]:
    """Record a training or batch-inference job: instances × seconds (PRC-12, MTR-06)."""
    now = clock.now()
    subscription = _subscription(session, principal, body.product, body.buyer)
    at = body.at or now
    if at > now:
        raise Invalid.at("at", "must not be in the future")
    job = platform.ml_job(
        session, subscription, body.use, body.instance_type, body.instances, body.seconds, at, body.job_id
    )
    return {
        "job_id": job.job_id,
        "status": job.outcome.status.value,
        "metering_record_id": job.outcome.record_id,
        "dimension": job.dimension,
        "quantity": job.quantity,
        "timestamp": job.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@router.get("/metering/scrapes", response_model=ScrapesOut)
def scrapes(
    session: Uow,
    principal: Principal = Depends(watcher),
    state: Literal["ok", "failed"] | None = None,
    page: Page = Depends(Paging),
) -> dict[str, Any]:
    """Prometheus scrapes of managed-service runs (a seller: its products'); failed ones carry their error."""
    return {"scrapes": visible_scrapes(session, principal, state=state, page=page)}


@router.post("/metering/bill-lines", response_model=BillLinesOut)
def bill_lines(body: BillLinesIn, session: Uow, principal: Principal = Depends(operator)) -> dict[str, Any]:
    """Pass infrastructure bill lines through as usage of the products' `bill` items (PRC-14)."""
    lines = [
        BillLine(line.product, line.item, line.hour, line.quantity, line.customer_identifier, line.instance_id)
        for line in body.lines
    ]
    outcomes = platform.record_bill_lines(session, lines)
    return {
        "results": [
            {
                "index": index,
                "status": outcome.status.value,
                "metering_record_id": outcome.record_id,
                "error": outcome.problem.value if outcome.problem else None,
                "detail": outcome.message or None,
            }
            for index, outcome in enumerate(outcomes)
        ]
    }


# --- what callers may see (the queries of this API) -----------------------------------------------------


def visible_runs(
    session: Session,
    principal: Principal,
    *,
    running: bool | None = None,
    product: str | None = None,
    page: Page | None = None,
) -> list[dict[str, Any]]:
    """A buyer's own runs, a seller's products' runs, every run for an operator; newest first."""
    statement = (
        select(InstanceRun, Subscription, Product, Buyer)
        .join(Subscription, Subscription.id == InstanceRun.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
    )
    order = [InstanceRun.started_at, InstanceRun.id]
    statement = statement.order_by(*(c.desc() for c in order))
    if principal.role is Role.BUYER:
        statement = statement.where(Subscription.buyer_id == principal.id)
    elif principal.role is Role.SELLER:
        statement = statement.where(Product.seller_id == principal.id)
    if running is not None:
        statement = statement.where(
            InstanceRun.stopped_at.is_(None) if running else InstanceRun.stopped_at.is_not(None)
        )
    if product:
        statement = statement.where(Product.code == product)
    rows = (
        page.rows(session, statement, order, lambda r: (r[0].started_at, r[0].id), newest_first=True)
        if page
        else session.execute(statement)
    )
    return [run_view(run, subscription, product_, buyer) for run, subscription, product_, buyer in rows]


def run_view(run: InstanceRun, subscription: Subscription, product: Product, buyer: Buyer) -> dict[str, Any]:
    return {
        "id": run.id,
        "instance_id": run.instance_id,
        "kind": run.kind,
        "product": product.code,
        "buyer": buyer.account,
        "customer_identifier": subscription.customer_identifier,
        "instance_type": run.instance_type,
        "instances": run.instances,
        "region": run.region,
        "state": "running" if run.stopped_at is None else "stopped",
        "started_at": _iso(run.started_at),
        "stopped_at": _iso(run.stopped_at) if run.stopped_at else None,
        "metered_through": _iso(run.metered_through),
        "metrics_url": run.metrics_url,
    }


def describe_run(session: Session, run: InstanceRun) -> dict[str, Any]:
    subscription = session.get_one(Subscription, run.subscription_id)
    product = session.get_one(Product, subscription.product_id)
    return run_view(run, subscription, product, session.get_one(Buyer, subscription.buyer_id))


def visible_scrapes(
    session: Session, principal: Principal, *, state: str | None = None, page: Page | None = None
) -> list[dict[str, Any]]:
    """Scrapes of a seller's products (every scrape for an operator), failed ones with their errors."""
    statement = (
        select(MetricScrape, InstanceRun, Product)
        .join(InstanceRun, InstanceRun.id == MetricScrape.run_id)
        .join(Subscription, Subscription.id == InstanceRun.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
    )
    order = [MetricScrape.hour, MetricScrape.id]
    statement = statement.order_by(*(c.desc() for c in order))
    if principal.role is Role.SELLER:
        statement = statement.where(Product.seller_id == principal.id)
    if state:
        statement = statement.where(MetricScrape.state == state)
    return [
        {
            "id": row.id,
            "product": product.code,
            "instance_id": run.instance_id,
            "run_id": run.id,
            "item": row.item,
            "hour": _iso(row.hour),
            "state": row.state,
            "value": row.value,
            "attempts": row.attempts,
            "error": row.error,
        }
        for row, run, product in (
            page.rows(session, statement, order, lambda r: (r[0].hour, r[0].id), newest_first=True)
            if page
            else session.execute(statement)
        )
    ]


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
