"""`agora simulate`: the live marketplace on a moved clock, from a manifest's event timeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.billing import simulate

BUYER = "111122223333"
OTHER = "444455556666"


HOURLY = {"m5.large": "0.10", "m5.xlarge": "0.20"}
USERS = {"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.125"}
SEATS = {"name": "seats", "description": "Seats", "prices": {"1": "10", "12": "100"}}


def ev(at: str, kind: str, **body: Any) -> dict[str, Any]:
    return {"at": f"2026-03-{at}Z", kind: body}


def product(code: str, kind: str, pricing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "seller": "acme",
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Simulated",
        "category": "security",
        "regions": ["us-east-1"],
        "refund_policy": "Full refund within 30 days",
        "state": "public",
        "pricing": pricing,
        **fields,
    }


def market(events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-9", "data_sharing": True}],
        "buyers": [{"account": BUYER, "email": "a@buyer.example"}, {"account": OTHER, "email": "b@buyer.example"}],
        "products": [
            product("vault", "ami", {"hourly": HOURLY, "annual": {"m5.large": "700"}}),
            product("trial", "ami", {"hourly": HOURLY, "free_trial_days": 7}),
            product("crm", "container", {"hourly": {"c5.large": "0.05"}, "monthly": "300"}),
            product("analytics", "saas", {"usage": {"category": "users", "dimensions": [USERS]}}),
            product("seats", "saas", {"contract": {"dimensions": [SEATS]}}),
        ],
        "subscriptions": [
            {"buyer": BUYER, "product": "analytics", "at": "2026-03-01T00:00:00Z", "customer_identifier": "c-1"}
        ],
        "events": events,
        **extra,
    }


def invoices(result: dict[str, Any], kind: str = "monthly") -> list[dict[str, Any]]:
    return [i for i in result["invoices"] if i["kind"] == kind]


@pytest.mark.rule("MTR-06")
def test_the_design_example_bills_a_four_hour_run_MTR_06() -> None:
    result = simulate.run(
        market(
            [
                {"at": "2026-03-01T09:00:00Z", "subscribe": {"buyer": BUYER, "product": "vault"}},
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {
                        "buyer": BUYER,
                        "product": "vault",
                        "instance": "i-1",
                        "instance_type": "m5.large",
                    },
                },
                {"at": "2026-03-01T14:00:00Z", "instance_stop": {"instance": "i-1"}},
            ]
        )
    )
    [invoice] = invoices(result)
    assert (invoice["buyer"], invoice["period"], invoice["currency"], invoice["total"]) == (
        BUYER,
        "2026-03",
        "USD",
        "0.40",
    )
    [line] = invoice["lines"]
    assert {
        k: line[k] for k in ("product", "charge", "instance_type", "dimension", "quantity", "unit_price", "amount")
    } == {
        "product": "vault",
        "charge": "hourly",
        "instance_type": "m5.large",
        "dimension": None,
        "quantity": "4",
        "unit_price": "0.10",
        "amount": "0.40",
    }
    assert line["explain"].startswith("i-1 2026-03-01 10:00–14:00, 4 h, not covered by trial or annual")


@pytest.mark.rule("MTR-06")
def test_unsubscribing_stops_the_buyers_runs_at_that_instant_MTR_06() -> None:
    """An instance and an ML endpoint still running when the buyer unsubscribes are stopped then: the
    instance bills the hours begun before 12:30 and the endpoint its seconds up to 12:30, however long the
    month runs on; stopping them afterwards is refused (they are no longer running), and the buyer's run of
    another product goes on."""
    ml = {"ml": {use: {"ml.m5.large": "0.50"} for use in ("training", "realtime_inference", "batch_inference")}}
    manifest = market(
        [
            ev("01T09:00:00", "subscribe", buyer=BUYER, product="vault"),
            ev("01T09:00:00", "subscribe", buyer=BUYER, product="forecast"),
            ev("01T09:00:00", "subscribe", buyer=BUYER, product="crm"),
            ev("01T10:00:00", "instance_start", buyer=BUYER, product="vault", instance="i-1", instance_type="m5.large"),
            ev("01T10:00:00", "instance_start", buyer=BUYER, product="crm", instance="c-1", instance_type="c5.large"),
            ev(
                "01T10:00:00",
                "endpoint_start",
                buyer=BUYER,
                product="forecast",
                endpoint="e-1",
                instance_type="ml.m5.large",
                instances=2,
            ),
            ev("01T12:30:00", "unsubscribe", buyer=BUYER, product="vault"),
            ev("01T12:30:00", "unsubscribe", buyer=BUYER, product="forecast"),
            ev("01T14:00:00", "instance_stop", instance="i-1"),
            ev("01T15:00:00", "endpoint_stop", endpoint="e-1"),
            ev("01T16:00:00", "instance_stop", instance="c-1"),
        ]
    )
    manifest["products"].append(product("forecast", "ml_algorithm", ml))
    result = simulate.run(manifest)
    assert [(r["at"], r["event"]) for r in result["refused"]] == [
        ("2026-03-01T14:00:00Z", "instance_stop"),
        ("2026-03-01T15:00:00Z", "endpoint_stop"),
    ]
    assert "not running" in result["refused"][0]["error"]
    [invoice] = invoices(result)
    lines = {(x["product"], x["charge"]): x for x in invoice["lines"]}
    vault, endpoint = lines[("vault", "hourly")], lines[("forecast", "realtime_inference")]
    assert (vault["quantity"], vault["amount"]) == ("3", "0.30")  # 10:00, 11:00, 12:00 begun before 12:30
    assert vault["explain"].startswith("i-1 2026-03-01 10:00–13:00, 3 h")  # the billed hours
    assert endpoint["amount"] == "2.50"  # 2 instances × 2.5 h × 0.50
    crm = lines[("crm", "hourly")]
    assert (crm["quantity"], crm["amount"]) == ("6", "0.30")  # not unsubscribed: runs until its stop at 16:00


@pytest.mark.rule("SUB-01")
def test_a_trial_covers_the_most_expensive_instance_and_sends_its_messages_SUB_01() -> None:
    start = {"buyer": BUYER, "product": "trial"}
    result = simulate.run(
        market(
            [
                {"at": "2026-03-01T09:00:00Z", "subscribe": start},
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {**start, "instance": "a", "instance_type": "m5.large"},
                },
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {**start, "instance": "b", "instance_type": "m5.xlarge"},
                },
                {"at": "2026-03-01T12:00:00Z", "instance_stop": {"instance": "a"}},
                {"at": "2026-03-01T12:00:00Z", "instance_stop": {"instance": "b"}},
            ]
        )
    )
    [invoice] = invoices(result)
    assert [(x["instance_type"], x["quantity"], x["amount"]) for x in invoice["lines"]] == [("m5.large", "2", "0.20")]
    kinds = [(n["at"], n["kind"]) for n in result["notifications"]]
    assert kinds == [
        ("2026-03-01T09:00:00Z", "trial_welcome"),
        ("2026-03-05T09:00:00Z", "trial_reminder"),
        ("2026-03-08T09:00:00Z", "trial_ended"),
    ]


@pytest.mark.rule("SUB-04")
def test_a_monthly_fee_is_prorated_from_the_sign_up_day_then_charged_in_full_SUB_04() -> None:
    result = simulate.run(
        market(
            [{"at": "2026-03-16T08:00:00Z", "subscribe": {"buyer": BUYER, "product": "crm"}}],
        ),
        until="2026-04",
    )
    totals = [(i["period"], i["total"]) for i in invoices(result)]
    assert totals == [("2026-03", "160.00"), ("2026-04", "300.00")]


@pytest.mark.rule("BIL-02")
def test_annual_and_contract_purchases_are_invoiced_upfront_at_purchase_BIL_02() -> None:
    result = simulate.run(
        market(
            [
                {"at": "2026-03-01T09:00:00Z", "subscribe": {"buyer": BUYER, "product": "vault"}},
                {
                    "at": "2026-03-02T09:00:00Z",
                    "annual_purchase": {"buyer": BUYER, "product": "vault", "instance_type": "m5.large", "quantity": 2},
                },
                {"at": "2026-03-03T09:00:00Z", "subscribe": {"buyer": BUYER, "product": "seats"}},
                {
                    "at": "2026-03-03T10:00:00Z",
                    "contract_purchase": {
                        "buyer": BUYER,
                        "product": "seats",
                        "duration_months": 12,
                        "quantities": {"seats": 3},
                    },
                },
            ]
        )
    )
    upfront = invoices(result, "upfront")
    assert [(i["lines"][0]["charge"], i["total"]) for i in upfront] == [("annual", "1400.00"), ("contract", "300.00")]


@pytest.mark.rule("SUB-03")
def test_an_annual_subscription_covers_one_of_two_running_instances_SUB_03() -> None:
    start = {"buyer": BUYER, "product": "vault"}
    result = simulate.run(
        market(
            [
                {"at": "2026-03-01T09:00:00Z", "subscribe": start},
                {"at": "2026-03-01T09:30:00Z", "annual_purchase": {**start, "instance_type": "m5.large"}},
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {**start, "instance": "a", "instance_type": "m5.large"},
                },
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {**start, "instance": "b", "instance_type": "m5.large"},
                },
                {"at": "2026-03-01T13:00:00Z", "instance_stop": {"instance": "a"}},
                {"at": "2026-03-01T13:00:00Z", "instance_stop": {"instance": "b"}},
            ]
        )
    )
    [line] = invoices(result)[0]["lines"]
    assert (line["quantity"], line["amount"]) == ("3", "0.30")
    assert "annual subscriptions covered 3 other m5.large h [SUB-03]" in line["explain"]


def test_refused_events_are_listed_and_the_run_goes_on() -> None:
    result = simulate.run(
        market(
            [
                {
                    "at": "2026-03-02T05:00:00Z",
                    "meter": {
                        "customer_identifier": "c-1",
                        "product": "analytics",
                        "dimension": "bogus",
                        "quantity": 3,
                    },
                },
                {"at": "2026-03-02T06:00:00Z", "subscribe": {"buyer": BUYER, "product": "nope"}},
                {
                    "at": "2026-03-02T07:00:00Z",
                    "meter": {
                        "customer_identifier": "c-1",
                        "product": "analytics",
                        "dimension": "users",
                        "quantity": 8,
                    },
                },
            ]
        )
    )
    assert [(r["at"], r["event"]) for r in result["refused"]] == [
        ("2026-03-02T05:00:00Z", "meter"),
        ("2026-03-02T06:00:00Z", "subscribe"),
    ]
    assert "no dimension 'bogus'" in result["refused"][0]["error"]
    assert invoices(result)[0]["total"] == "1.00"


def test_a_bad_event_timeline_is_refused_with_located_problems() -> None:
    with pytest.raises(simulate.ManifestError) as caught:
        simulate.run(market([{"at": "yesterday", "subscribe": {}}, {"at": "2026-03-01T00:00:00Z", "fly": {}}]))
    assert [str(p).split(":")[0] for p in caught.value.problems] == [
        "events[0].at",
        "events[0].subscribe.buyer",
        "events[0].subscribe.product",
        "events[1].fly",
    ]


def test_the_same_file_prints_the_same_bytes(tmp_path: Path) -> None:
    data = market(
        [
            {"at": "2026-03-01T09:00:00Z", "subscribe": {"buyer": OTHER, "product": "trial"}},
            {
                "at": "2026-03-01T10:00:00Z",
                "instance_start": {"buyer": OTHER, "product": "trial", "instance": "x", "instance_type": "m5.xlarge"},
            },
            {"at": "2026-03-09T10:00:00Z", "instance_stop": {"instance": "x"}},
            {
                "at": "2026-03-05T10:00:00Z",
                "meter": {"customer_identifier": "c-1", "product": "analytics", "dimension": "users", "quantity": 5},
            },
        ]
    )
    path = tmp_path / "timeline.yaml"
    path.write_text(yaml.safe_dump(data))

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agora", "simulate", str(path), "--json"],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = run()
    assert first == run()
    result = json.loads(first)
    totals = {(i["buyer"], i["period"]): i["total"] for i in invoices(result)}
    # x: trial until Mar 8 09:00, then 25 billable hours to Mar 9 10:00 at 0.20
    assert totals == {(BUYER, "2026-03"): "0.63", (OTHER, "2026-03"): "5.00"}


@pytest.mark.rule("OFR-01")
def test_offer_events_bill_the_offer_s_prices_and_instalments_on_their_dates_OFR_01() -> None:
    offer = {
        "id": "o-1",
        "product": "vault",
        "buyer": BUYER,
        "pricing": {"hourly": {"m5.large": "0.05"}},
        "duration_days": 365,
        "accept_by": "2026-03-10T00:00:00Z",
        "schedule": [{"at": "2026-03-05T00:00:00Z", "amount": "100"}, {"at": "2026-04-05T00:00:00Z", "amount": "50"}],
    }
    start = {"buyer": BUYER, "product": "vault"}
    result = simulate.run(
        market(
            [
                ev("01T09:00:00", "offer_create", **offer),
                ev("02T09:00:00", "offer_accept", id="o-1", buyer=OTHER),  # not the named buyer
                ev("03T09:00:00", "offer_accept", id="o-1", buyer=BUYER),
                ev("04T10:00:00", "instance_start", **start, instance="a", instance_type="m5.large"),
                ev("04T12:00:00", "instance_stop", instance="a"),
                ev("20T09:00:00", "unsubscribe", **start),
                ev("21T10:00:00", "instance_start", **start, instance="b", instance_type="m5.large"),
            ]
        ),
        until="2026-04",
    )
    assert [r["event"] for r in result["refused"]] == ["offer_accept", "instance_start"]
    assert [(i["period"], i["total"]) for i in invoices(result, "upfront")] == [
        ("2026-03", "100.00"),
        ("2026-04", "50.00"),
    ]
    [march] = [i for i in invoices(result) if i["period"] == "2026-03"]
    assert [(x["unit_price"], x["quantity"], x["amount"]) for x in march["lines"]] == [("0.05", "2", "0.10")]
    assert "offer_extended" in [n["kind"] for n in result["notifications"]]


def test_an_offer_accepted_after_its_deadline_is_refused_and_the_run_goes_on() -> None:
    offer = {
        "id": "late",
        "product": "vault",
        "buyer": BUYER,
        "pricing": {"hourly": {"m5.large": "0.05"}},
        "duration_days": 30,
        "accept_by": "2026-03-02T00:00:00Z",
    }
    result = simulate.run(
        market([ev("01T09:00:00", "offer_create", **offer), ev("05T09:00:00", "offer_accept", id="late", buyer=BUYER)])
    )
    [refusal] = result["refused"]
    assert refusal["event"] == "offer_accept"
    assert (
        refusal["error"].startswith("offer late could be accepted until 2026-03-02") and "[OFR-03]" in refusal["error"]
    )


@pytest.mark.rule("SUB-01")
@pytest.mark.rule("SUB-02")
def test_a_manifest_subscription_starts_its_trial_at_its_at_like_subscribing_SUB_01_SUB_02() -> None:
    """A subscription listed in the manifest is the buyer subscribing at `at`: its 5-day trial covers the
    first run, the welcome is sent at `at`, and, the trial used, a later subscription is paid from its start."""
    start = {"buyer": BUYER, "product": "trial5"}
    manifest = market(
        [
            ev("01T10:00:00", "instance_start", **start, instance="a", instance_type="m5.large"),
            ev("01T14:00:00", "instance_stop", instance="a"),
            ev("08T00:00:00", "unsubscribe", **start),
            ev("08T01:00:00", "subscribe", **start),
            ev("08T02:00:00", "instance_start", **start, instance="b", instance_type="m5.large"),
            ev("08T04:00:00", "instance_stop", instance="b"),
        ]
    )
    manifest["products"].append(product("trial5", "ami", {"hourly": HOURLY, "free_trial_days": 5}))
    manifest["subscriptions"].append({**start, "at": "2026-03-01T06:00:00Z"})
    result = simulate.run(manifest)
    assert result["refused"] == []
    kinds = [(n["at"], n["kind"]) for n in result["notifications"] if n["to"] == "a@buyer.example"]
    assert kinds == [
        ("2026-03-01T06:00:00Z", "trial_welcome"),
        ("2026-03-03T06:00:00Z", "trial_reminder"),
        ("2026-03-06T06:00:00Z", "trial_ended"),
    ]
    [invoice] = invoices(result)
    lines = [(x["product"], x["quantity"], x["amount"]) for x in invoice["lines"] if x["charge"] == "hourly"]
    assert lines == [("trial5", "2", "0.20")]  # only run b, after the one trial was used


@pytest.mark.rule("BIL-02")
def test_a_subscribe_event_takes_an_identifier_a_contract_and_annual_subscriptions_BIL_02() -> None:
    """A `subscribe` event buys what a manifest subscription buys, at the event's instant: the contract and the
    annual subscriptions are invoiced then, and the seller meters the buyer by the identifier it names."""
    result = simulate.run(
        market(
            [
                ev("02T09:00:00", "subscribe", buyer=OTHER, product="analytics", customer_identifier="c-2"),
                ev(
                    "02T10:00:00",
                    "meter",
                    customer_identifier="c-2",
                    product="analytics",
                    dimension="users",
                    quantity=8,
                ),
                ev(
                    "03T09:00:00",
                    "subscribe",
                    buyer=OTHER,
                    product="seats",
                    contract={"duration_months": 12, "quantities": {"seats": 3}},
                ),
                ev("04T09:00:00", "subscribe", buyer=OTHER, product="vault", annual={"m5.large": 2}, auto_renew=True),
            ]
        )
    )
    assert result["refused"] == []
    upfront = [(i["buyer"], i["lines"][0]["charge"], i["total"]) for i in invoices(result, "upfront")]
    assert upfront == [(OTHER, "contract", "300.00"), (OTHER, "annual", "1400.00")]
    [monthly] = [i for i in invoices(result) if i["buyer"] == OTHER]
    assert [(x["charge"], x["quantity"], x["amount"]) for x in monthly["lines"]] == [("usage", "8", "1.00")]
