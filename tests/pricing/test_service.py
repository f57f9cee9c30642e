"""The pricing service against a real database: price versions written by the manifest loader and by price
changes (CHG-01/02), who is told of a change (CHG-02), which version `price_for` returns, what may change in
a published pricing (PRC-08, PRC-09) and the listing fee (PRC-17).

The quickest public product with subscribers is a manifest: `marketplace` loads one on top of `add_cast`."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from agora import clock, jobs, tasks
from agora.auth import Principal
from agora.catalog.service import get_by_code
from agora.db import Database
from agora.errors import Invalid, InvalidTransition
from agora.manifest.loader import LoadReport, apply, parse_manifest
from agora.manifest.parse import ManifestError
from agora.models import AuditEvent, Base, Job, Notification, PriceVersion, Subscription
from agora.pricing import service
from agora.pricing.schema import PricingDocument
from tests.factories.identities import Actor, Cast, add_cast

SERVER = "acme-server"  # ami, hourly
METERED = "acme-metered"  # ami, usage
LATE_BUYER = "777788889999"
LATE_EMAIL = "late@buyer.example"

HOURLY: dict[str, Any] = {"hourly": {"m5.large": "0.10", "c5.xlarge": "0.20"}}
HOURLY_RAISED: dict[str, Any] = {"hourly": {"m5.large": "0.12", "c5.xlarge": "0.20"}}
HOURLY_MONTHLY: dict[str, Any] = {**HOURLY, "monthly": "300"}
USAGE: dict[str, Any] = {
    "usage": {
        "category": "users",
        "dimensions": [
            {"name": "users", "description": "Active users per hour", "unit": "UserHrs", "rate": "0.125"},
            {"name": "admins", "description": "Administrators per hour", "unit": "UserHrs", "rate": "0.5"},
        ],
    }
}

LOADED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the `manual_clock` start
SUBSCRIBED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ENDED_AT = datetime(2026, 3, 10, tzinfo=UTC)
NOTICE = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # the PRICING example
EFFECTIVE = datetime(2026, 7, 1, tzinfo=UTC)  # first of the month after June 14
LATE_AT = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)


# --- a small marketplace ----------------------------------------------------------------------------------


def product_entry(code: str, pricing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A public AMI product of the cast's seller `acme`, sold in us-east-1."""
    entry = {
        "code": code,
        "seller": "acme",
        "kind": "ami",
        "title": code.replace("-", " ").title(),
        "short_description": "A server image",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": "Full refund within 30 days: billing@acme.example",
        "state": "public",
        "pricing": copy.deepcopy(pricing),
    }
    entry.update(fields)
    return entry


def subscription(buyer: str, product: str, at: datetime) -> dict[str, Any]:
    return {"buyer": buyer, "product": product, "at": at.isoformat()}


def initial_manifest() -> dict[str, Any]:
    """Both products, each with a subscriber from before any change; `SERVER` also with one that ends."""
    return {
        "buyers": [{"account": LATE_BUYER, "email": LATE_EMAIL}],
        "products": [product_entry(SERVER, HOURLY), product_entry(METERED, USAGE)],
        "subscriptions": [
            subscription("111122223333", SERVER, SUBSCRIBED_AT),
            subscription("444455556666", SERVER, SUBSCRIBED_AT),
            subscription("111122223333", METERED, SUBSCRIBED_AT),
        ],
    }


def load(db: Database, data: dict[str, Any]) -> LoadReport:
    with db.unit_of_work() as session:
        return apply(parse_manifest(data), session)


def end_subscription(db: Database, buyer_account: str, code: str, at: datetime) -> None:
    with db.unit_of_work() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.customer_identifier == f"{code}-{buyer_account}")
        ).one()
        sub.ended_at = at


def marketplace(db: Database) -> Cast:
    """The cast, both products loaded at `LOADED_AT`, and buyer 444455556666's `SERVER` subscription ended
    before the notice."""
    tasks.register_all()
    cast = add_cast(db)
    load(db, initial_manifest())
    end_subscription(db, "444455556666", SERVER, ENDED_AT)
    return cast


def principal(actor: Actor) -> Principal:
    return Principal(actor.role, actor.id, actor.handle)


def change_price(db: Database, seller: Actor, code: str, pricing: dict[str, Any]) -> int:
    """`service.change_price` in its own unit of work; returns the new version's number."""
    with db.unit_of_work() as session:
        product = get_by_code(session, code)
        assert product is not None
        version = service.change_price(session, principal(seller), product, PricingDocument.model_validate(pricing))
        return version.number


def versions(db: Database, code: str) -> list[tuple[int, str, datetime, datetime | None, dict[str, Any]]]:
    with db.reader() as session:
        product = get_by_code(session, code)
        assert product is not None
        return [
            (v.number, v.family, v.noticed_at, v.existing_from, v.pricing) for v in service.versions(session, product)
        ]


def price_at(db: Database, buyer_account: str, code: str, at: datetime) -> int:
    with db.reader() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.customer_identifier == f"{code}-{buyer_account}")
        ).one()
        return service.price_for(session, sub, at).number


def run_jobs(db: Database) -> int:
    return jobs.Worker(db).run_until_idle()


def notices(db: Database, kind: str = "price_change") -> list[tuple[str, str, str]]:
    with db.reader() as session:
        rows = session.scalars(select(Notification).where(Notification.kind == kind).order_by(Notification.id))
        return [(n.to, n.subject, n.body) for n in rows]


def audit_actions(db: Database, code: str) -> list[str]:
    with db.reader() as session:
        return list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == code).order_by(AuditEvent.id))
        )


def snapshot(db: Database) -> dict[str, list[Any]]:
    with db.reader() as session:
        return {
            table.name: [tuple(row) for row in session.execute(select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }


# --- version 1 and manifest reloads -------------------------------------------------------------------------


@pytest.mark.rule("CHG-01")
def test_chg_01_manifest_public_product_gets_price_version_1(db: Database, manual_clock: clock.ManualClock) -> None:
    """The launch price is version 1, noticed when the product goes public; it has no later date for existing
    subscribers because there were none."""
    marketplace(db)
    assert versions(db, SERVER) == [
        (1, "hourly", LOADED_AT, None, {"hourly": {"m5.large": "0.10", "c5.xlarge": "0.20"}})
    ]
    assert [v[:2] for v in versions(db, METERED)] == [(1, "usage")]


@pytest.mark.rule("CHG-02")
def test_chg_02_manifest_reload_unchanged_adds_no_version(db: Database, manual_clock: clock.ManualClock) -> None:
    """Reloading the same prices is not a price change: no version, no notice."""
    marketplace(db)
    manual_clock.set(NOTICE)
    report = load(db, initial_manifest())
    assert report.counts["products"]["unchanged"] == 2
    assert len(versions(db, SERVER)) == 1
    with db.reader() as session:
        assert session.scalars(select(Job.name).where(Job.name == "pricing.notify_subscribers")).all() == []


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_chg_01_chg_02_manifest_reload_with_a_new_hourly_price_adds_version_2(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    marketplace(db)
    manual_clock.set(NOTICE)
    data = initial_manifest()
    data["products"][0]["pricing"] = copy.deepcopy(HOURLY_RAISED)

    report = load(db, data)

    assert report.counts["products"]["updated"] == 1
    assert report.counts["products"]["unchanged"] == 1
    found = versions(db, SERVER)
    assert [v[:4] for v in found] == [(1, "hourly", LOADED_AT, None), (2, "hourly", NOTICE, EFFECTIVE)]
    assert found[1][4] == HOURLY_RAISED
    with db.reader() as session:
        product = get_by_code(session, SERVER)
        assert product is not None
        assert product.pricing == HOURLY_RAISED
    assert "price.change" in audit_actions(db, SERVER)
    # a second load of the same file is a no-op
    assert load(db, data).counts["products"]["unchanged"] == 2
    assert len(versions(db, SERVER)) == 2


@pytest.mark.rule("PRC-08")
def test_prc_08_manifest_reload_renaming_a_usage_dimension_is_refused_and_changes_nothing(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    marketplace(db)
    manual_clock.set(NOTICE)
    before = snapshot(db)
    data = initial_manifest()
    data["products"][1]["pricing"]["usage"]["dimensions"][1]["name"] = "operators"

    with pytest.raises(ManifestError) as info:
        load(db, data)

    problems = [(p.path, p.rule) for p in info.value.problems]
    assert ("products[1].pricing.dimensions.admins", "PRC-08") in problems
    assert ("products[1].pricing.dimensions.operators", "PRC-08") in problems
    assert {rule for _, rule in problems} == {"PRC-08"}
    assert snapshot(db) == before


@pytest.mark.rule("PRC-09")
def test_prc_09_manifest_reload_moving_usage_to_hourly_is_refused(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    marketplace(db)
    before = snapshot(db)
    data = initial_manifest()
    data["products"][1]["pricing"] = copy.deepcopy(HOURLY)

    with pytest.raises(ManifestError) as info:
        load(db, data)

    assert [(p.rule, "new product" in p.message) for p in info.value.problems] == [("PRC-09", True)]
    assert snapshot(db) == before


# --- price changes: who is told, which price applies -------------------------------------------------------


@pytest.mark.rule("CHG-02")
def test_chg_02_every_subscriber_from_before_the_notice_is_told_the_effective_date(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    cast = marketplace(db)
    manual_clock.set(NOTICE)

    assert change_price(db, cast.seller, SERVER, HOURLY_RAISED) == 2
    assert notices(db) == []  # a job, written in the same transaction, sends them
    run_jobs(db)

    sent = notices(db)
    # 111122223333 subscribed before the notice; 444455556666's subscription had ended
    assert [to for to, _, _ in sent] == ["ops-111122223333@buyer.example"]
    _, subject, body = sent[0]
    assert "2026-07-01" in subject
    assert "2026-07-01" in body
    assert f"{SERVER}-111122223333" in body
    run_jobs(db)
    assert len(notices(db)) == 1  # nothing is sent twice


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_chg_01_a_subscriber_from_after_the_notice_is_not_told_but_is_told_of_the_next_change(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    cast = marketplace(db)
    manual_clock.set(NOTICE)
    change_price(db, cast.seller, SERVER, HOURLY_RAISED)
    run_jobs(db)
    manual_clock.set(LATE_AT)
    load(db, {"subscriptions": [subscription(LATE_BUYER, SERVER, LATE_AT)]})
    run_jobs(db)
    assert [to for to, _, _ in notices(db)] == ["ops-111122223333@buyer.example"]

    manual_clock.set(datetime(2026, 5, 2, tzinfo=UTC))  # + 90 days = July 31 → August 1
    change_price(db, cast.seller, SERVER, {"hourly": {"m5.large": "0.15", "c5.xlarge": "0.25"}})
    run_jobs(db)

    second = notices(db)[1:]
    assert [to for to, _, _ in second] == ["ops-111122223333@buyer.example", LATE_EMAIL]
    assert all("2026-08-01" in subject for _, subject, _ in second)


@pytest.mark.rule("CHG-02")
def test_chg_02_a_subscription_ending_after_the_notice_is_still_told(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    cast = marketplace(db)
    end_subscription(db, "111122223333", SERVER, datetime(2026, 4, 1, tzinfo=UTC))
    manual_clock.set(NOTICE)
    change_price(db, cast.seller, SERVER, HOURLY_RAISED)
    run_jobs(db)
    assert [to for to, _, _ in notices(db)] == ["ops-111122223333@buyer.example"]


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_chg_01_chg_02_price_for_existing_and_new_subscribers(db: Database, manual_clock: clock.ManualClock) -> None:
    cast = marketplace(db)
    assert price_at(db, "111122223333", SERVER, SUBSCRIBED_AT) == 1
    manual_clock.set(NOTICE)
    change_price(db, cast.seller, SERVER, HOURLY_RAISED)
    manual_clock.set(LATE_AT)
    load(db, {"subscriptions": [subscription(LATE_BUYER, SERVER, LATE_AT)]})

    # existing subscriber: old price until July 1, 00:00 UTC
    assert price_at(db, "111122223333", SERVER, NOTICE) == 1
    assert price_at(db, "111122223333", SERVER, datetime(2026, 6, 30, 23, 59, tzinfo=UTC)) == 1
    assert price_at(db, "111122223333", SERVER, EFFECTIVE) == 2
    assert price_at(db, "111122223333", SERVER, EFFECTIVE + timedelta(days=45)) == 2
    # new subscriber: the new price from its first instant
    assert price_at(db, LATE_BUYER, SERVER, LATE_AT) == 2
    with db.reader() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.customer_identifier == f"{SERVER}-{LATE_BUYER}")
        ).one()
        assert service.price_for(session, sub, LATE_AT).pricing == HOURLY_RAISED


def test_a_draft_product_has_no_price_version_to_change(db: Database, manual_clock: clock.ManualClock) -> None:
    cast = marketplace(db)
    load(db, {"products": [product_entry("acme-draft", HOURLY, state="draft")]})
    assert versions(db, "acme-draft") == []
    with pytest.raises(InvalidTransition, match="draft"):
        change_price(db, cast.seller, "acme-draft", HOURLY_RAISED)


# --- what a published pricing may not change ----------------------------------------------------------------


@pytest.mark.rule("PRC-08")
def test_prc_08_service_refuses_a_changed_description_and_writes_nothing(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    cast = marketplace(db)
    pricing = copy.deepcopy(USAGE)
    pricing["usage"]["dimensions"][0]["description"] = "Users active in the hour"
    with pytest.raises(Invalid) as info:
        change_price(db, cast.seller, METERED, pricing)
    assert info.value.problems == [
        {
            "loc": "pricing.dimensions.users.description",
            "msg": "a published dimension's description cannot change [PRC-08]",
        }
    ]
    assert len(versions(db, METERED)) == 1


@pytest.mark.rule("PRC-16")
def test_prc_16_service_refuses_a_model_change_without_approval(db: Database, manual_clock: clock.ManualClock) -> None:
    cast = marketplace(db)
    with pytest.raises(service.ModelChangeNeedsApproval, match="PRC-16"):
        change_price(db, cast.seller, SERVER, HOURLY_MONTHLY)
    assert len(versions(db, SERVER)) == 1


# --- listing fees (PRC-17) ----------------------------------------------------------------------------------


def set_fees(db: Database, operator: Actor, *rates: tuple[str, str, str]) -> None:
    with db.unit_of_work() as session:
        for kind, family, percent in rates:
            service.set_fee(session, principal(operator), kind, family, Decimal(percent))


def fee(db: Database, kind: str, family: str, *, open_source: bool = False) -> Decimal:
    with db.reader() as session:
        return service.fee_percent(session, kind, family, open_source=open_source)


@pytest.mark.rule("PRC-17")
def test_prc_17_most_specific_fee_wins_and_free_byol_open_source_pay_none(db: Database) -> None:
    cast = add_cast(db)
    assert fee(db, "ami", "hourly") == 0  # nothing configured
    set_fees(db, cast.operator, ("ami", "hourly", "20"), ("ami", "*", "15"), ("*", "usage", "8"), ("*", "*", "5"))

    assert fee(db, "ami", "hourly") == 20
    assert fee(db, "ami", "monthly") == 15
    assert fee(db, "container", "usage") == 8
    assert fee(db, "saas", "contract") == 5
    for family in ("free", "byol"):
        assert fee(db, "ami", family) == 0
        assert fee(db, "saas", family) == 0
    assert fee(db, "ami", "hourly", open_source=True) == 0
    assert fee(db, "saas", "contract", open_source=True) == 0


@pytest.mark.rule("PRC-17")
def test_prc_17_setting_a_fee_replaces_the_rate_and_is_audited(db: Database) -> None:
    cast = add_cast(db)
    set_fees(db, cast.operator, ("ami", "hourly", "20"))
    set_fees(db, cast.operator, ("ami", "hourly", "12.5"))
    assert fee(db, "ami", "hourly") == Decimal("12.5")
    with db.reader() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "fee.set").order_by(AuditEvent.id))
        assert [(e.actor, e.target_id, e.before, e.after) for e in events] == [
            ("operator:ops", "ami/hourly", None, {"percent": "20"}),
            ("operator:ops", "ami/hourly", {"percent": "20.00"}, {"percent": "12.5"}),
        ]


@pytest.mark.rule("PRC-17")
@pytest.mark.parametrize("family", ["free", "byol"])
def test_prc_17_a_fee_on_free_or_byol_is_refused(db: Database, family: str) -> None:
    cast = add_cast(db)
    with pytest.raises(Invalid, match="PRC-17"):
        set_fees(db, cast.operator, ("ami", family, "3"))
    set_fees(db, cast.operator, ("ami", family, "0"))  # stating "no fee" is fine
    assert fee(db, "ami", family) == 0


def test_fee_out_of_range_is_refused(db: Database) -> None:
    cast = add_cast(db)
    with pytest.raises(Invalid, match="between 0 and 100"):
        set_fees(db, cast.operator, ("ami", "hourly", "100.01"))
    set_fees(db, cast.operator, ("ami", "hourly", "100"))
    assert fee(db, "ami", "hourly") == 100


@pytest.mark.rule("CHG-01")
def test_chg_01_price_versions_are_kept_in_order(db: Database, manual_clock: clock.ManualClock) -> None:
    """CHG-01: prices are never overwritten: every change is the next version, and the older ones stay as they were."""
    cast = marketplace(db)
    manual_clock.set(NOTICE)
    change_price(db, cast.seller, SERVER, HOURLY_RAISED)
    manual_clock.advance(timedelta(days=1))
    change_price(db, cast.seller, SERVER, HOURLY)
    found = versions(db, SERVER)
    assert [(n, p) for n, _, _, _, p in found] == [(1, HOURLY), (2, HOURLY_RAISED), (3, HOURLY)]
    with db.reader() as session:
        assert session.scalars(select(PriceVersion.number).order_by(PriceVersion.id)).all() == [1, 1, 2, 3]
