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

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock, jobs, migrate
from agora.auth import Principal
from agora.billing import service as billing
from agora.billing.rating import month_bounds
from agora.config import get_settings
from agora.db import Database, open_database
from agora.errors import AgoraError
from agora.manifest.loader import load_data
from agora.manifest.parse import ManifestError, Problem
from agora.models import Buyer, Invoice, Job, JobState, Notification, Product, Role, Seller, Subscription
from agora.pricing.schema import PricingDocument

EVENT_TYPES = (
    "subscribe",
    "unsubscribe",
    "instance_start",
    "instance_stop",
    "annual_purchase",
    "contract_purchase",
    "meter",
    "ml_job",
    "endpoint_start",
    "endpoint_stop",
    "price_change",
    "offer_create",
    "offer_accept",
    "refund",
)


@dataclass(frozen=True)
class Event:
    index: int
    at: datetime
    kind: str
    body: dict[str, Any]


def parse_events(raw: list[Any]) -> list[Event]:
    """Each event is `{at, <type>: {...}}`; every problem is reported, located, before anything runs."""
    problems: list[Problem] = []
    events: list[Event] = []
    for index, item in enumerate(raw):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(where, "must be a mapping with `at` and one event"))
            continue
        at = item.get("at")
        if isinstance(at, str):
            try:
                at = datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                at = None
        if not isinstance(at, datetime) or at.tzinfo is None:
            problems.append(Problem(f"{where}.at", "must be a UTC timestamp like 2026-03-01T10:00:00Z"))
            continue
        kinds = [key for key in item if key != "at"]
        if len(kinds) != 1 or kinds[0] not in EVENT_TYPES:
            problems.append(Problem(where, f"must name exactly one event of: {', '.join(EVENT_TYPES)}"))
            continue
        body = item[kinds[0]]
        if not isinstance(body, dict):
            problems.append(Problem(f"{where}.{kinds[0]}", "must be a mapping"))
            continue
        events.append(Event(index, at.astimezone(UTC), kinds[0], body))
    if problems:
        raise ManifestError(problems)
    return sorted(events, key=lambda e: (e.at, e.index))


def run(
    data: dict[str, Any], *, until: str | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Simulate `data` (a parsed manifest with `events`) and return the DESIGN.md output document.
    `progress(done, total)` hears how many of the simulated months the clock has moved past."""
    data = dict(data)
    events = parse_events(data.pop("events", None) or [])
    starts = [e.at for e in events]
    starts += [i for i in (_instant(s.get("at")) for s in data.get("subscriptions") or []) if i is not None]
    if not starts:
        raise ManifestError([Problem("events", "a simulation needs at least one timestamped event or subscription")])
    first = min(starts)
    last_period = until or billing.period_of(max(starts))
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
                return simulation.play(data, events, first, last_period)
        finally:
            db.dispose()


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

    def play(self, data: dict[str, Any], events: list[Event], first: datetime, last_period: str) -> dict[str, Any]:
        from agora.tasks import register_all

        register_all()
        with self.db.unit_of_work() as session:
            load_data(data, session)
            billing.schedule_close(session, billing.period_of(first))
        for event in events:
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
        handler: Callable[[Session, dict[str, Any]], None] = getattr(self, f"_{event.kind}")
        try:
            with self.db.unit_of_work() as session:
                handler(session, event.body)
        except AgoraError as error:
            self._refuse(event, error.detail)
        except (KeyError, TypeError, ValueError, ValidationError) as error:
            self._refuse(event, f"malformed event: {error}")
        except ManifestError as error:
            self._refuse(event, "; ".join(str(p) for p in error.problems))

    def _refuse(self, event: Event, error: str) -> None:
        self.refused.append({"at": _iso(event.at), "event": event.kind, "error": error})

    def _buyer(self, session: Session, account: Any) -> Principal:
        buyer = session.scalar(select(Buyer).where(Buyer.account == str(account)))
        if buyer is None:
            raise AgoraError(f"no buyer account {account}")
        return Principal(Role.BUYER, buyer.id, buyer.account)

    def _product(self, session: Session, code: Any) -> Product:
        product = session.scalar(select(Product).where(Product.code == str(code)))
        if product is None:
            raise AgoraError(f"no product {code!r}")
        return product

    def _seller_of(self, session: Session, product: Product) -> Principal:
        seller = session.get_one(Seller, product.seller_id)
        return Principal(Role.SELLER, seller.id, seller.handle)

    def _subscription(self, session: Session, buyer: Principal, product: Product) -> Subscription:
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.buyer_id == buyer.id,
                Subscription.product_id == product.id,
                Subscription.ended_at.is_(None),
            )
        )
        if subscription is None:
            raise AgoraError(f"{buyer.handle} has no active subscription to {product.code}")
        return subscription

    def _subscribe(self, session: Session, body: dict[str, Any]) -> None:
        from agora.subscriptions import service

        buyer = self._buyer(session, body["buyer"])
        service.subscribe(
            session, buyer, str(body["product"]), accept_eula=True, license_reference=body.get("license_reference")
        )

    def _unsubscribe(self, session: Session, body: dict[str, Any]) -> None:
        from agora.subscriptions import service

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        service.cancel(session, buyer, subscription.id)

    def _instance_start(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import platform

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        platform.start_instance(
            session,
            subscription,
            str(body["instance"]),
            str(body["instance_type"]),
            clock.now(),
            str(body.get("region") or get_settings().region),
        )

    def _instance_stop(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import platform

        platform.stop_instance(session, str(body["instance"]), clock.now())

    def _endpoint_start(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import platform

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        platform.start_endpoint(
            session,
            subscription,
            str(body.get("endpoint") or body["instance"]),
            str(body["instance_type"]),
            clock.now(),
            instances=int(body.get("instances", 1)),
        )

    def _endpoint_stop(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import platform

        platform.stop_run(session, str(body.get("endpoint") or body["instance"]), clock.now())

    def _ml_job(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import platform

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        platform.ml_job(
            session,
            subscription,
            str(body["use"]),
            str(body["instance_type"]),
            int(body.get("instances", 1)),
            int(body["seconds"]),
            clock.now(),
            job_id=body.get("job_id"),
        )

    def _annual_purchase(self, session: Session, body: dict[str, Any]) -> None:
        from agora.subscriptions import annual

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        annual.buy(
            session,
            buyer,
            subscription.id,
            str(body["instance_type"]),
            int(body.get("quantity", 1)),
            auto_renew=bool(body.get("auto_renew", False)),
        )

    def _contract_purchase(self, session: Session, body: dict[str, Any]) -> None:
        from agora.subscriptions import contracts

        buyer = self._buyer(session, body["buyer"])
        subscription = self._subscription(session, buyer, self._product(session, body["product"]))
        quantities = {str(k): int(v) for k, v in dict(body["quantities"]).items()}
        contracts.buy(session, buyer, subscription.id, int(body["duration_months"]), quantities)

    def _meter(self, session: Session, body: dict[str, Any]) -> None:
        from agora.metering import service
        from agora.metering.records import Reading, Source

        product = self._product(session, body["product"])
        reading = Reading(
            product_code=product.code,
            dimension=str(body["dimension"]),
            quantity=int(body["quantity"]),
            timestamp=clock.now(),
            customer_identifier=body.get("customer_identifier"),
            customer_account=str(body["buyer"]) if body.get("buyer") and not body.get("customer_identifier") else None,
        )
        [outcome] = service.ingest(session, self._seller_of(session, product), [reading], source=Source.SELLER)
        if not outcome.ok:
            raise AgoraError(outcome.message)

    def _price_change(self, session: Session, body: dict[str, Any]) -> None:
        from agora.pricing import service

        product = self._product(session, body["product"])
        document = PricingDocument.model_validate(body["pricing"])
        service.change_price(session, self._seller_of(session, product), product, document)

    def _offer_create(self, session: Session, body: dict[str, Any]) -> None:
        from agora.offers import service

        product = self._product(session, body["product"])
        seller = self._seller_of(session, product)
        instalments = [(_required_instant(i["at"]), Decimal(str(i["amount"]))) for i in body.get("schedule") or []]
        schedule = [{"at": _iso(due), "amount": amount} for due, amount in instalments]
        total = body.get("total")
        if total is None and instalments:
            total = sum((amount for _, amount in instalments), Decimal(0))
        data = {
            "product": product.code,
            "buyer": str(body["buyer"]),
            "pricing": PricingDocument.model_validate(body["pricing"]),
            "duration_days": int(body["duration_days"]),
            "accept_by": _required_instant(body["accept_by"]),
            "total": Decimal(str(total)) if total is not None else None,
            "schedule": schedule,
        }
        offer = service.create(session, seller, data)
        service.extend(session, seller, offer.public_id)
        self.offers[str(body["id"])] = offer.public_id

    def _offer_accept(self, session: Session, body: dict[str, Any]) -> None:
        from agora.offers import service

        public_id = self.offers.get(str(body["id"]))
        if public_id is None:
            raise AgoraError(f"no offer {body['id']!r}")
        service.accept(session, self._buyer(session, body["buyer"]), public_id, accept_eula=True)

    def _refund(self, session: Session, body: dict[str, Any]) -> None:
        """RFD-01: the product's seller approves a refund of the buyer's charges for `periods`."""
        from agora.billing import refunds

        product = self._product(session, body["product"])
        buyer = session.scalar(select(Buyer).where(Buyer.account == str(body["buyer"])))
        if buyer is None:
            raise AgoraError(f"no buyer account {body['buyer']}")
        amount = body.get("amount")
        refunds.seller_refund(
            session,
            self._seller_of(session, product),
            buyer_account=buyer.account,
            buyer_email=buyer.email,
            product_code=product.code,
            periods=[str(p) for p in body.get("periods") or [billing.period_of(clock.now())]],
            amount=Decimal(str(amount)) if amount is not None else None,
            reason=str(body.get("reason") or "refund approved by the seller"),
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


def _required_instant(value: Any) -> datetime:
    instant = _instant(value)
    if instant is None:
        raise ValueError(f"{value!r} is not a UTC timestamp")
    return instant


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
