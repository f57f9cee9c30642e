"""`agora simulate`: a manifest and its event timeline run on a throw-away database under a moved clock.

This is the live system, not a model of it: each event calls the service the API calls, and between
events the clock moves to every due job in turn (trial reminders, price-change dates, renewals, the
hourly platform tick, month-end billing) and the worker runs it, exactly as `agora worker` would. An event
the marketplace refuses is listed under `refused` with the error the API would have answered, and the run
goes on. The output depends only on the file, so the same file prints the same bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock, jobs, migrate
from agora.auth import Principal
from agora.billing import service as billing
from agora.billing.rating import month_bounds
from agora.config import get_settings
from agora.db import Database, open_database
from agora.errors import AgoraError
from agora.manifest import events
from agora.manifest.loader import apply_subscription, load_data, parse_manifest
from agora.manifest.parse import ManifestError, Problem
from agora.manifest.schema import SubscriptionIn
from agora.models import Buyer, Invoice, Job, JobState, Notification, Product, Role, Seller, Subscription


@dataclass(frozen=True)
class Event:
    """One entry of the timeline: an event of the file, or a manifest subscription starting at its `at`."""

    index: int
    at: datetime
    kind: str
    body: Any


def run(
    data: dict[str, Any], *, until: str | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Simulate `data` (a parsed manifest with `events`) and return the DESIGN.md output document.
    `progress(done, total)` hears how many of the simulated months the clock has moved past."""
    data = dict(data)
    starts = [_instant(item.get("at")) for item in _entries(data, "events") + _entries(data, "subscriptions")]
    if not any(starts):
        parse_manifest(data)  # a file with no usable instant may have other problems: those first
        raise ManifestError([Problem("events", "a simulation needs at least one timestamped event or subscription")])
    first = min(i for i in starts if i is not None)
    last = max(i for i in starts if i is not None)
    last_period = until or billing.period_of(last)
    if until is not None and until < billing.period_of(first):
        raise ManifestError([Problem("--until", f"{until} is before the first event ({first:%Y-%m})")])
    with tempfile.TemporaryDirectory(prefix="agora-simulate-") as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'simulation.db'}")
        try:
            migrate.upgrade(db)
            with clock.use_clock(clock.ManualClock(first)) as moved:
                assert isinstance(moved, clock.ManualClock)
                simulation = Simulation(db, moved)
                if progress is not None:
                    simulation.months = (billing.period_of(first), last_period, progress)
                return simulation.play(data, first, last_period)
        finally:
            db.dispose()


def _entries(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    items = data.get(section)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _month_number(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month)


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    return None


class Simulation:
    def __init__(self, db: Database, moved: clock.ManualClock) -> None:
        self.db = db
        self.clock = moved
        self.refused: list[dict[str, Any]] = []
        self.offers: dict[str, str] = {}  # the file's offer id → the marketplace's
        self.months: tuple[str, str, Callable[[int, int], None]] | None = None  # first, last, told as it goes

    def play(self, data: dict[str, Any], first: datetime, last_period: str) -> dict[str, Any]:
        from agora.tasks import register_all

        register_all()
        with self.db.unit_of_work() as session:
            # Every problem of the file, its events' included, is found here, before anything runs. The
            # subscriptions are checked with the rest but each starts at its `at`, on the moved clock, as if its
            # buyer subscribed then: the trial, its messages, its purchases (SUB-01/02).
            load_data(data, session, subscriptions=False)
            billing.schedule_close(session, billing.period_of(first))
        manifest = parse_manifest(data)
        timeline = [
            Event(i, sub.at.astimezone(UTC), "subscription", sub) for i, sub in enumerate(manifest.subscriptions)
        ]
        timeline += [Event(i, e.at.astimezone(UTC), e.kind, e.body) for i, e in enumerate(manifest.events)]
        # At one instant, the manifest's subscriptions (the marketplace's state) come before the events.
        for event in sorted(timeline, key=lambda e: (e.at, e.kind != "subscription", e.index)):
            self.advance(event.at)
            self.apply(event)
        _, end = month_bounds(last_period)
        self.advance(end + billing.CLOSE_DELAY)
        return self.output(billing.period_of(first), last_period)

    # --- the clock ------------------------------------------------------------------------------------

    def advance(self, until: datetime) -> None:
        """Move the clock to `until`, stopping at each due job on the way and running it."""
        worker = jobs.Worker(self.db)
        while True:
            worker.run_until_idle()
            with self.db.reader() as session:
                due = session.scalar(select(func.min(Job.run_at)).where(Job.state == JobState.QUEUED.value))
            if due is None or due > until:
                break
            if due > self.clock.now():
                self.clock.set(due)
                self._tell_months()
        if until > self.clock.now():
            self.clock.set(until)
        self._tell_months()

    def _tell_months(self) -> None:
        """A month is simulated once the clock has left it."""
        if self.months is None:
            return
        first, last, tell = self.months
        total = _month_number(last) - _month_number(first) + 1
        tell(min(total, _month_number(billing.period_of(self.clock.now())) - _month_number(first)), total)

    # --- events ---------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        handler: Callable[[Session, Any], None] = getattr(self, f"_{event.kind}")
        try:
            with self.db.unit_of_work() as session:
                handler(session, event.body)
        except AgoraError as error:
            self._refuse(event, error.detail)
        except ManifestError as error:
            self._refuse(event, "; ".join(str(p) for p in error.problems))

    def _refuse(self, event: Event, error: str) -> None:
        self.refused.append({"at": _iso(event.at), "event": event.kind, "error": error})

    def _buyer(self, session: Session, account: str) -> Principal:
        buyer = session.scalar(select(Buyer).where(Buyer.account == account))
        if buyer is None:
            raise AgoraError(f"no buyer account {account}")
        return Principal(Role.BUYER, buyer.id, buyer.account)

    def _product(self, session: Session, code: str) -> Product:
        product = session.scalar(select(Product).where(Product.code == code))
        if product is None:
            raise AgoraError(f"no product {code!r}")
        return product

    def _seller_of(self, session: Session, product: Product) -> Principal:
        seller = session.get_one(Seller, product.seller_id)
        return Principal(Role.SELLER, seller.id, seller.handle)

    def _subscription_of(self, session: Session, account: str, code: str) -> tuple[Principal, Subscription]:
        buyer = self._buyer(session, account)
        product = self._product(session, code)
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.buyer_id == buyer.id,
                Subscription.product_id == product.id,
                Subscription.ended_at.is_(None),
            )
        )
        if subscription is None:
            raise AgoraError(f"{buyer.handle} has no active subscription to {product.code}")
        return buyer, subscription

    def _subscription(self, session: Session, body: SubscriptionIn) -> None:
        apply_subscription(session, body)

    def _subscribe(self, session: Session, body: events.Subscribe) -> None:
        """The buyer subscribes as through the API, then buys the contract and annual subscriptions named with
        it, all at the event's instant; if any of it is refused, none of it happens."""
        from agora.subscriptions import annual, contracts, service

        buyer = self._buyer(session, body.buyer)
        subscription, _ = service.subscribe(
            session,
            buyer,
            body.product,
            accept_eula=True,
            license_reference=body.license_reference,
            customer_identifier=body.customer_identifier,
        )
        if body.contract is not None:
            quantities = dict(body.contract.quantities)
            contracts.buy(session, buyer, subscription.id, body.contract.duration_months, quantities)
        for instance_type, quantity in sorted((body.annual or {}).items()):
            annual.buy(session, buyer, subscription.id, instance_type, quantity, auto_renew=body.auto_renew)

    def _unsubscribe(self, session: Session, body: events.Unsubscribe) -> None:
        from agora.subscriptions import service

        buyer, subscription = self._subscription_of(session, body.buyer, body.product)
        service.cancel(session, buyer, subscription.id)

    def _instance_start(self, session: Session, body: events.InstanceStart) -> None:
        from agora.metering import platform

        _, subscription = self._subscription_of(session, body.buyer, body.product)
        region = body.region or get_settings().region
        platform.start_instance(session, subscription, body.instance, body.instance_type, clock.now(), region)

    def _instance_stop(self, session: Session, body: events.InstanceStop) -> None:
        from agora.metering import platform

        platform.stop_instance(session, body.instance, clock.now())

    def _endpoint_start(self, session: Session, body: events.EndpointStart) -> None:
        from agora.metering import platform

        _, subscription = self._subscription_of(session, body.buyer, body.product)
        platform.start_endpoint(
            session, subscription, body.endpoint, body.instance_type, clock.now(), instances=body.instances
        )

    def _endpoint_stop(self, session: Session, body: events.EndpointStop) -> None:
        from agora.metering import platform

        platform.stop_run(session, body.endpoint, clock.now())

    def _ml_job(self, session: Session, body: events.MlJob) -> None:
        from agora.metering import platform

        _, subscription = self._subscription_of(session, body.buyer, body.product)
        platform.ml_job(
            session,
            subscription,
            body.use,
            body.instance_type,
            body.instances,
            body.seconds,
            clock.now(),
            job_id=body.job_id,
        )

    def _annual_purchase(self, session: Session, body: events.AnnualPurchase) -> None:
        from agora.subscriptions import annual

        buyer, subscription = self._subscription_of(session, body.buyer, body.product)
        annual.buy(session, buyer, subscription.id, body.instance_type, body.quantity, auto_renew=body.auto_renew)

    def _contract_purchase(self, session: Session, body: events.ContractPurchase) -> None:
        from agora.subscriptions import contracts

        buyer, subscription = self._subscription_of(session, body.buyer, body.product)
        contracts.buy(session, buyer, subscription.id, body.duration_months, dict(body.quantities))

    def _meter(self, session: Session, body: events.Meter) -> None:
        from agora.metering import service
        from agora.metering.records import Reading, Source

        product = self._product(session, body.product)
        reading = Reading(
            product_code=product.code,
            dimension=body.dimension,
            quantity=body.quantity,
            timestamp=clock.now(),
            customer_identifier=body.customer_identifier,
            customer_account=body.buyer,
        )
        [outcome] = service.ingest(session, self._seller_of(session, product), [reading], source=Source.SELLER)
        if not outcome.ok:
            raise AgoraError(outcome.message)

    def _price_change(self, session: Session, body: events.PriceChange) -> None:
        from agora.pricing import service

        product = self._product(session, body.product)
        service.change_price(session, self._seller_of(session, product), product, body.pricing)

    def _offer_create(self, session: Session, body: events.OfferCreate) -> None:
        from agora.offers import service

        product = self._product(session, body.product)
        seller = self._seller_of(session, product)
        instalments = [(i.at.astimezone(UTC), i.amount) for i in body.schedule or []]
        schedule = [{"at": _iso(due), "amount": amount} for due, amount in instalments]
        total = body.total
        if total is None and instalments:
            total = sum((amount for _, amount in instalments), Decimal(0))
        data = {
            "product": product.code,
            "buyer": body.buyer,
            "pricing": body.pricing,
            "duration_days": body.duration_days,
            "accept_by": body.accept_by.astimezone(UTC),
            "total": total,
            "schedule": schedule,
        }
        offer = service.create(session, seller, data)
        service.extend(session, seller, offer.public_id)
        self.offers[body.id] = offer.public_id

    def _offer_accept(self, session: Session, body: events.OfferAccept) -> None:
        from agora.offers import service

        public_id = self.offers.get(body.id)
        if public_id is None:
            raise AgoraError(f"no offer {body.id!r}")
        service.accept(session, self._buyer(session, body.buyer), public_id, accept_eula=True)

    def _refund(self, session: Session, body: events.Refund) -> None:
        """RFD-01: the product's seller approves a refund of the buyer's charges for `periods`."""
        from agora.billing import refunds

        product = self._product(session, body.product)
        buyer = session.scalar(select(Buyer).where(Buyer.account == body.buyer))
        if buyer is None:
            raise AgoraError(f"no buyer account {body.buyer}")
        refunds.seller_refund(
            session,
            self._seller_of(session, product),
            buyer_account=buyer.account,
            buyer_email=buyer.email,
            product_code=product.code,
            periods=list(body.periods or [billing.period_of(clock.now())]),
            amount=body.amount,
            reason=body.reason or "refund approved by the seller",
        )

    # --- output ---------------------------------------------------------------------------------------

    def output(self, first_period: str, last_period: str) -> dict[str, Any]:
        with self.db.reader() as session:
            invoices = session.scalars(
                select(Invoice)
                .join(Buyer, Buyer.id == Invoice.buyer_id)
                .where(Invoice.period >= first_period, Invoice.period <= last_period)
                .order_by(Invoice.period, Buyer.account, Invoice.issued_at, Invoice.id)
            ).all()
            rendered = []
            for invoice in invoices:
                rendered.append(billing.design_shape(billing.invoice_json(session, invoice)))
            notifications = [
                {"at": _iso(n.created_at), "to": n.to, "kind": n.kind, "subject": n.subject}
                for n in session.scalars(select(Notification).order_by(Notification.created_at, Notification.id))
            ]
        result = {"invoices": rendered, "notifications": notifications, "refused": self.refused}
        return self._with_file_ids(result)

    def _with_file_ids(self, value: Any) -> Any:
        """Offers get random public ids; the output names them by the file's ids, so it is reproducible."""
        if isinstance(value, str):
            for file_id, public_id in self.offers.items():
                value = value.replace(public_id, file_id)
            return value
        if isinstance(value, list):
            return [self._with_file_ids(item) for item in value]
        if isinstance(value, dict):
            return {key: self._with_file_ids(item) for key, item in value.items()}
        return value


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
