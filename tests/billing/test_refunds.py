"""Refunds (RFD-01…05): credit notes, the seller's approval, annual windows, never more than was charged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock, tasks
from agora.auth import Principal
from agora.billing import rating, refunds, runs, simulate
from agora.db import Database
from agora.errors import Forbidden, Invalid
from agora.manifest.loader import load_data
from agora.models import AnnualPurchase, Buyer, Role, Seller, Subscription
from agora.pricing.versions import Version
from agora.subscriptions import annual
from tests.billing.test_simulate import BUYER, OTHER, ev, invoices, market

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def seller(db: Database, handle: str = "acme") -> Principal:
    with db.reader() as session:
        found = session.scalars(select(Seller).where(Seller.handle == handle)).one()
        return Principal(Role.SELLER, found.id, found.handle)


def buyer(db: Database, account: str = BUYER) -> Principal:
    with db.reader() as session:
        found = session.scalars(select(Buyer).where(Buyer.account == account)).one()
        return Principal(Role.BUYER, found.id, found.account)


def load(db: Database, clock_: clock.ManualClock) -> None:
    """The simulation market with tokens, a vault subscription with a 4-hour run billed in March."""
    data = market([])
    data.pop("events")
    data["sellers"][0]["api_tokens"] = ["acme-token"]
    data["sellers"].append({"id": "globex", "name": "Globex", "tax_form": "W-9", "api_tokens": ["globex-token"]})
    data["buyers"][0]["api_tokens"] = ["buyer-token"]
    data["operators"] = [{"id": "ops", "api_tokens": ["ops-token"]}]
    data["subscriptions"].append({"buyer": BUYER, "product": "vault", "at": "2026-03-01T00:00:00Z"})
    clock_.set(T0)
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(data, session)


def close_march(db: Database, clock_: clock.ManualClock) -> None:
    from agora.metering import platform

    clock_.set(at(2, 10))
    with db.unit_of_work() as session:
        subscription = session.scalars(select(Subscription).where(Subscription.customer_identifier != "c-1")).first()
        assert subscription is not None
        platform.start_instance(session, subscription, "i-1", "m5.large", at(2, 10), "us-east-1")
    clock_.set(at(2, 14))
    with db.unit_of_work() as session:
        platform.stop_instance(session, "i-1", at(2, 14))
    clock_.set(datetime(2026, 4, 2, tzinfo=UTC))
    runs.close(db, "2026-03")


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def post(client: TestClient, token: str, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/refunds", json=body, headers={"Authorization": f"Bearer {token}"})


REFUND = {
    "buyer_account": BUYER,
    "buyer_email": "a@buyer.example",
    "product": "vault",
    "periods": ["2026-03"],
    "reason": "outage on March 2",
}


@pytest.mark.rule("RFD-01")
def test_a_seller_approved_refund_is_issued_as_a_credit_note_RFD_01(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    load(db, manual_clock)
    close_march(db, manual_clock)
    response = post(client, "acme-token", REFUND)
    assert response.status_code == 201, response.text
    note = response.json()
    assert (note["kind"], note["total"]) == ("credit_note", "-0.40")
    assert [(x["charge"], x["amount"]) for x in note["lines"]] == [("refund", "-0.40")]
    assert post(client, "acme-token", {**REFUND, "buyer_email": "x@y.example"}).status_code == 422
    assert post(client, "globex-token", REFUND).status_code == 404  # not globex's product
    assert post(client, "buyer-token", REFUND).status_code == 403  # the seller approves, not the buyer
    mine = client.get("/api/v1/invoices", headers={"Authorization": "Bearer buyer-token"}).json()["invoices"]
    assert sorted(i["kind"] for i in mine) == ["credit_note", "monthly"]


@pytest.mark.rule("RFD-05")
def test_a_refund_never_exceeds_what_was_charged_RFD_05(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    load(db, manual_clock)
    close_march(db, manual_clock)
    too_much = post(client, "acme-token", {**REFUND, "amount": "0.41"})
    assert too_much.status_code == 422 and "[RFD-05]" in too_much.json()["detail"]
    assert post(client, "acme-token", {**REFUND, "amount": "0.15"}).status_code == 201
    assert post(client, "acme-token", {**REFUND, "amount": "0.26"}).status_code == 422  # 0.25 is left
    assert post(client, "acme-token", REFUND).json()["total"] == "-0.25"  # the rest
    assert post(client, "acme-token", REFUND).status_code == 422  # nothing left


@pytest.mark.rule("RFD-04")
def test_a_tax_refund_is_refused_because_no_tax_was_calculated_RFD_04(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    load(db, manual_clock)
    close_march(db, manual_clock)
    response = post(client, "acme-token", {**REFUND, "kind": "tax"})
    assert response.status_code == 422 and "[RFD-04]" in response.json()["detail"]


def _annual(db: Database, when: datetime, clock_: clock.ManualClock) -> int:
    clock_.set(when)
    with db.unit_of_work() as session:
        subscription = session.scalars(select(Subscription).where(Subscription.customer_identifier != "c-1")).first()
        assert subscription is not None
        purchase = annual.buy(session, buyer(db), subscription.id, "m5.large", 2, auto_renew=True)
        return purchase.id


@pytest.mark.rule("RFD-03")
def test_annual_refund_windows_RFD_03(db: Database, manual_clock: clock.ManualClock) -> None:
    load(db, manual_clock)
    operator = Principal(Role.OPERATOR, 1, "ops")
    full = _annual(db, at(3), manual_clock)
    manual_clock.set(at(4, 23))  # 47 h later: support may refund in full
    with db.unit_of_work() as session:
        note = refunds.annual_refund(session, operator, full, "full", "bought by mistake")
        assert note.total_cents == -140000
        purchase = session.get_one(AnnualPurchase, full)
        assert purchase.ends_at == at(4, 23) and not purchase.auto_renew  # the refund ends it
    late = _annual(db, at(5), manual_clock)
    manual_clock.set(at(7, 1))  # 49 h later
    with pytest.raises(Invalid, match="48 hours"), db.unit_of_work() as session:
        refunds.annual_refund(session, operator, late, "full", "too late")
    with pytest.raises(Forbidden, match="seller"), db.unit_of_work() as session:
        refunds.annual_refund(session, operator, late, "prorata", "support cannot")
    manual_clock.set(at(15))  # 10 days in: the seller may refund the unused share
    with db.unit_of_work() as session:
        note = refunds.annual_refund(session, seller(db), late, "prorata", "downsizing")
        assert note.total_cents == -round(140000 * 355 / 365)
    other = _annual(db, at(16), manual_clock)
    manual_clock.set(at(31))  # 15 days
    with pytest.raises(Invalid, match="14 days"), db.unit_of_work() as session:
        refunds.annual_refund(session, seller(db), other, "prorata", "too late")


@pytest.mark.rule("RFD-02")
def test_charges_after_a_trial_converts_are_refunded_when_cancelled_within_7_days_RFD_02() -> None:
    pricing = {"hourly": {"m5.large": "0.10"}, "free_trial_days": 7}
    versions = [Version(1, T0 - timedelta(days=1), pricing)]

    def billed(ended: datetime) -> list[rating.Line]:
        subscription = rating.Subscription(
            1, "p", T0, ended, versions, trial_ends_at=T0 + timedelta(days=7)
        )  # converts March 8
        usage = [rating.Usage(at(9, h), "hourly:m5.large", 1, "i#1") for h in range(5)]
        return rating.rate(subscription, usage, "2026-03")

    within = billed(at(12))  # cancelled 4 days after the conversion
    assert [(x.charge, x.quantity, x.amount) for x in within] == [("refund", 5, Decimal("0.00"))]
    assert "[RFD-02]" in within[0].explain
    after = billed(at(16))  # 8 days after: charged
    assert [(x.charge, x.amount) for x in after] == [("hourly", Decimal("0.50"))]


@pytest.mark.rule("RFD-01")
def test_the_simulation_refund_event_issues_a_credit_note_RFD_01() -> None:
    start = {"buyer": BUYER, "product": "vault"}
    result = simulate.run(
        market(
            [
                ev("01T09:00:00", "subscribe", **start),
                ev("02T10:00:00", "instance_start", **start, instance="a", instance_type="m5.large"),
                ev("02T14:00:00", "instance_stop", instance="a"),
                ev("05T10:00:00", "refund", buyer=BUYER, product="vault", periods=["2026-03"]),  # not billed yet
                {"at": "2026-04-03T10:00:00Z", "refund": {**start, "amount": "0.10", "periods": ["2026-03"]}},
                {"at": "2026-04-03T11:00:00Z", "refund": {"buyer": OTHER, "product": "vault"}},
            ]
        ),
        until="2026-04",
    )
    assert [(r["at"][:10], r["event"]) for r in result["refused"]] == [
        ("2026-03-05", "refund"),
        ("2026-04-03", "refund"),
    ]
    assert invoices(result)[0]["total"] == "0.40"
    [note] = invoices(result, "credit_note")
    assert (note["period"], note["total"], note["lines"][0]["charge"]) == ("2026-04", "-0.10", "refund")


def test_the_operator_marks_invoices_paid_or_voids_an_unpaid_one_with_a_credit_note(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    load(db, manual_clock)
    close_march(db, manual_clock)
    ops = {"Authorization": "Bearer ops-token"}
    [invoice] = [
        i
        for i in client.get("/api/v1/invoices?period=2026-03", headers=ops).json()["invoices"]
        if i["kind"] == "monthly"
    ]
    buyer_pays = client.post(f"/api/v1/invoices/{invoice['id']}/pay", headers={"Authorization": "Bearer buyer-token"})
    assert buyer_pays.status_code == 403
    note = client.post(f"/api/v1/invoices/{invoice['id']}/void", json={"reason": "billed twice"}, headers=ops)
    assert note.status_code == 201 and note.json()["total"] == "-0.40"
    again = client.post(f"/api/v1/invoices/{invoice['id']}/void", json={"reason": "again"}, headers=ops)
    assert again.status_code == 409
    assert client.get(f"/api/v1/invoices/{invoice['id']}", headers=ops).json()["state"] == "void"
    assert client.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=ops).status_code == 409


def test_a_paid_invoice_is_refunded_not_voided(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    load(db, manual_clock)
    close_march(db, manual_clock)
    ops = {"Authorization": "Bearer ops-token"}
    [invoice] = [
        i
        for i in client.get("/api/v1/invoices?period=2026-03", headers=ops).json()["invoices"]
        if i["kind"] == "monthly"
    ]
    paid = client.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=ops)
    assert paid.status_code == 200 and paid.json()["state"] == "paid"
    voided = client.post(f"/api/v1/invoices/{invoice['id']}/void", json={"reason": "late"}, headers=ops)
    assert voided.status_code == 409 and "refunded" in voided.json()["detail"]
    assert post(client, "acme-token", REFUND).status_code == 201


@pytest.mark.rule("RFD-01")
def test_a_seller_learns_nothing_of_a_buyer_it_has_no_relation_with_RFD_01(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    """Whether the e-mail is the stranger's or not, and whether the account exists at all, one answer."""
    load(db, manual_clock)
    close_march(db, manual_clock)
    with db.unit_of_work() as session:
        load_data({"buyers": [{"account": "999988887777", "email": "z@buyer.example"}]}, session)
    answers = [
        post(client, "acme-token", {**REFUND, "buyer_account": account, "buyer_email": email})
        for account, email in (("999988887777", "z@buyer.example"), ("999988887777", "x@y.example"),
                               ("000000000000", "z@buyer.example"))
    ]  # fmt: skip
    assert {(a.status_code, a.text) for a in answers} == {(422, answers[0].text)}, [a.text for a in answers]
    assert answers[0].json()["problems"] == [{"loc": "buyer_account", "msg": "is not a customer of vault [RFD-01]"}]
    # the product's own customer with the wrong e-mail is told so
    wrong = post(client, "acme-token", {**REFUND, "buyer_email": "x@y.example"})
    assert wrong.json()["problems"][0]["loc"] == "buyer_email"
