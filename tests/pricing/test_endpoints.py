"""The pricing API: price changes and their schedule (CHG-01/02), what a published pricing may not change
(PRC-08, PRC-09), pricing-model requests the operator decides (PRC-16), listing fees (PRC-17) and
infrastructure prices shown apart from software prices on the product page (LST-10)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock
from agora.db import Database
from agora.models import AuditEvent
from agora.pricing.service import fee_percent
from tests.factories import catalog as listings
from tests.factories.identities import Actor, Cast
from tests.pricing.test_service import (
    EFFECTIVE,
    HOURLY,
    HOURLY_MONTHLY,
    HOURLY_RAISED,
    LOADED_AT,
    METERED,
    NOTICE,
    SERVER,
    USAGE,
    audit_actions,
    marketplace,
    notices,
    run_jobs,
)

Pricing = dict[str, Any]


@pytest.fixture
def cast(db: Database, manual_clock: clock.ManualClock) -> Cast:
    """`SERVER` (hourly) and `METERED` (usage) public since `LOADED_AT`; the clock then moves to `NOTICE`."""
    loaded = marketplace(db)
    manual_clock.set(NOTICE)
    return loaded


def put_pricing(client: TestClient, actor: Actor, code: str, pricing: Pricing) -> Any:
    return client.put(f"/api/v1/products/{code}/pricing", json=pricing, headers=actor.headers)


def request_model(client: TestClient, actor: Actor, code: str, pricing: Pricing) -> Any:
    return client.post(f"/api/v1/products/{code}/pricing-model-requests", json=pricing, headers=actor.headers)


def schedule(client: TestClient, actor: Actor, code: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/products/{code}/prices", headers=actor.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def page(client: TestClient, code: str) -> dict[str, Any]:
    """The public product page, as an anonymous visitor sees it."""
    response = client.get(f"/api/v1/catalog/{code}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def problems(response: Any) -> list[str]:
    """A 422 body's problems as 'loc: msg' lines."""
    assert response.status_code == 422, response.text
    return [f"{p['loc']}: {p['msg']}" for p in response.json()["problems"]]


def instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def audit_events(db: Database, action: str) -> list[tuple[str, str, Any, Any]]:
    with db.reader() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        return [(e.actor, e.target_id, e.before, e.after) for e in rows]


# --- price changes (CHG-01/02) ---------------------------------------------------------------------------------


@pytest.mark.rule("CHG-01")
@pytest.mark.rule("CHG-02")
def test_chg_01_chg_02_new_prices_are_a_version_with_both_dates_and_show_on_the_page_at_once(
    client: TestClient, db: Database, cast: Cast
) -> None:
    response = put_pricing(client, cast.seller, SERVER, HOURLY_RAISED)

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["number"], created["family"], created["pricing"]) == (2, "hourly", HOURLY_RAISED)
    assert instant(created["noticed_at"]) == NOTICE
    assert instant(created["new_subscriptions_from"]) == NOTICE  # CHG-01
    assert instant(created["existing_subscriptions_from"]) == EFFECTIVE  # CHG-02: notice March 16 → July 1
    assert created["created_by"] == "seller:acme"

    for viewer in (cast.seller, cast.operator):
        found = schedule(client, viewer, SERVER)
        assert [(v["number"], v["pricing"]) for v in found] == [(1, HOURLY), (2, HOURLY_RAISED)]
        assert [(instant(v["noticed_at"]), instant(v["existing_subscriptions_from"])) for v in found] == [
            (LOADED_AT, None),
            (NOTICE, EFFECTIVE),
        ]

    shown = page(client, SERVER)
    assert shown["software_pricing"] == HOURLY_RAISED
    assert shown["pricing_family"] == "hourly"
    ((actor, target, before, after),) = audit_events(db, "price.change")
    assert (actor, target) == ("seller:acme", SERVER)
    assert before == {"version": 1, "pricing": HOURLY}
    assert after == {"version": 2, "pricing": HOURLY_RAISED, "existing_from": "2026-07-01"}


@pytest.mark.rule("CHG-02")
def test_chg_02_a_price_change_through_the_api_tells_the_existing_subscribers(
    client: TestClient, db: Database, cast: Cast
) -> None:
    assert put_pricing(client, cast.seller, SERVER, HOURLY_RAISED).status_code == 201
    run_jobs(db)
    # 444455556666's subscription ended before the notice; nobody subscribed to SERVER since
    assert [(to, subject) for to, subject, _ in notices(db)] == [
        ("ops-111122223333@buyer.example", "Price change for Acme Server from 2026-07-01")
    ]


@pytest.mark.rule("CHG-02")
def test_chg_02_putting_the_same_prices_again_is_not_another_change(client: TestClient, cast: Cast) -> None:
    assert put_pricing(client, cast.seller, SERVER, HOURLY_RAISED).status_code == 201
    again = put_pricing(client, cast.seller, SERVER, HOURLY_RAISED)
    assert again.status_code in (200, 201), again.text
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1, 2]


def test_price_schedule_and_changes_belong_to_the_seller(client: TestClient, cast: Cast) -> None:
    """Another seller gets 404 as if the product did not exist; buyers and operators cannot change prices."""
    assert client.get(f"/api/v1/products/{SERVER}/prices", headers=cast.other_seller.headers).status_code == 404
    assert put_pricing(client, cast.other_seller, SERVER, HOURLY_RAISED).status_code == 404
    assert client.get(f"/api/v1/products/{SERVER}/prices", headers=cast.buyer.headers).status_code == 403
    assert put_pricing(client, cast.buyer, SERVER, HOURLY_RAISED).status_code == 403
    assert put_pricing(client, cast.operator, SERVER, HOURLY_RAISED).status_code == 403
    assert client.put(f"/api/v1/products/{SERVER}/pricing", json=HOURLY_RAISED).status_code == 401
    assert put_pricing(client, cast.seller, "no-such-product", HOURLY_RAISED).status_code == 404
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]


@pytest.mark.rule("PRC-06")
def test_prc_06_new_prices_must_pass_the_pricing_rules(client: TestClient, cast: Cast) -> None:
    response = put_pricing(client, cast.seller, SERVER, {"hourly": {"m5.large": "0.10"}, "free_trial_days": 45})
    assert any("PRC-06" in line for line in problems(response))
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]


# --- what may change once published (PRC-08, PRC-09) ----------------------------------------------------------


def _dimensions(pricing: Pricing) -> list[dict[str, Any]]:
    dimensions: list[dict[str, Any]] = pricing["usage"]["dimensions"]
    return dimensions


def _rename(pricing: Pricing) -> None:
    _dimensions(pricing)[1]["name"] = "operators"


def _remove(pricing: Pricing) -> None:
    del _dimensions(pricing)[1]


def _add(pricing: Pricing) -> None:
    _dimensions(pricing).append({"name": "guests", "description": "Guests per hour", "unit": "UserHrs", "rate": "0"})


def _describe(pricing: Pricing) -> None:
    _dimensions(pricing)[0]["description"] = "Users active in the hour"


@pytest.mark.rule("PRC-08")
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _rename,
            [
                "pricing.dimensions.admins: a published dimension cannot be removed [PRC-08]",
                "pricing.dimensions.operators: dimensions cannot be added after listing [PRC-08]",
            ],
        ),
        (_remove, ["pricing.dimensions.admins: a published dimension cannot be removed [PRC-08]"]),
        (_add, ["pricing.dimensions.guests: dimensions cannot be added after listing [PRC-08]"]),
        (
            _describe,
            ["pricing.dimensions.users.description: a published dimension's description cannot change [PRC-08]"],
        ),
    ],
    ids=["rename", "remove", "add", "description"],
)
def test_prc_08_published_dimensions_are_fixed(
    client: TestClient, cast: Cast, edit: Callable[[Pricing], None], expected: list[str]
) -> None:
    pricing = copy.deepcopy(USAGE)
    edit(pricing)
    assert problems(put_pricing(client, cast.seller, METERED, pricing)) == expected
    assert [v["number"] for v in schedule(client, cast.seller, METERED)] == [1]
    assert page(client, METERED)["software_pricing"] == USAGE


@pytest.mark.rule("PRC-08")
def test_prc_08_a_dimension_rate_may_change(client: TestClient, cast: Cast) -> None:
    pricing = copy.deepcopy(USAGE)
    _dimensions(pricing)[0]["rate"] = "0.15"
    response = put_pricing(client, cast.seller, METERED, pricing)
    assert response.status_code == 201, response.text
    assert response.json()["number"] == 2
    assert page(client, METERED)["software_pricing"]["usage"]["dimensions"][0]["rate"] == "0.15"


@pytest.mark.rule("PRC-09")
@pytest.mark.parametrize(
    ("code", "pricing", "expected"),
    [
        (METERED, HOURLY, "pricing: a usage-priced product cannot move to another model: list a new product instead"),
        (
            SERVER,
            {"usage": USAGE["usage"]},
            "pricing: a product with standard pricing cannot move to usage pricing: list a new product instead",
        ),
    ],
    ids=["usage-to-hourly", "hourly-to-usage"],
)
@pytest.mark.parametrize("route", ["put-pricing", "model-request"])
def test_prc_09_usage_and_standard_pricing_never_convert(
    client: TestClient, cast: Cast, route: str, code: str, pricing: Pricing, expected: str
) -> None:
    send = put_pricing if route == "put-pricing" else request_model
    assert problems(send(client, cast.seller, code, pricing)) == [f"{expected} [PRC-09]"]
    assert [v["number"] for v in schedule(client, cast.seller, code)] == [1]
    requests = client.get("/api/v1/pricing-model-requests", params={"state": ""}, headers=cast.operator.headers)
    assert requests.json() == []


# --- pricing-model requests (PRC-16) --------------------------------------------------------------------------


def requests_seen(client: TestClient, actor: Actor, state: str | None = None) -> list[dict[str, Any]]:
    params = {} if state is None else {"state": state}
    response = client.get("/api/v1/pricing-model-requests", params=params, headers=actor.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


@pytest.mark.rule("PRC-16")
def test_prc_16_a_model_change_through_put_pricing_needs_approval(client: TestClient, cast: Cast) -> None:
    response = put_pricing(client, cast.seller, SERVER, HOURLY_MONTHLY)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "model_change_needs_approval"
    assert f"/api/v1/products/{SERVER}/pricing-model-requests" in body["detail"]
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]


@pytest.mark.rule("PRC-16")
def test_prc_16_the_operator_approves_a_model_change_which_becomes_a_new_version(
    client: TestClient, db: Database, cast: Cast
) -> None:
    created = request_model(client, cast.seller, SERVER, HOURLY_MONTHLY)
    assert created.status_code == 201, created.text
    request = created.json()
    assert {k: request[k] for k in ("product", "from_family", "to_family", "state", "requested_by")} == {
        "product": SERVER,
        "from_family": "hourly",
        "to_family": "hourly_monthly",
        "state": "pending",
        "requested_by": "seller:acme",
    }
    # nothing changes until the operator decides
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]
    assert page(client, SERVER)["software_pricing"] == HOURLY
    assert [r["id"] for r in requests_seen(client, cast.operator)] == [request["id"]]
    assert [r["id"] for r in requests_seen(client, cast.seller)] == [request["id"]]
    assert requests_seen(client, cast.other_seller) == []
    assert request_model(client, cast.other_seller, SERVER, HOURLY_MONTHLY).status_code == 404

    approve = f"/api/v1/pricing-model-requests/{request['id']}/approve"
    assert client.post(approve, headers=cast.seller.headers).status_code == 403
    assert client.post(approve, headers=cast.buyer.headers).status_code == 403
    response = client.post(approve, headers=cast.operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved"

    found = schedule(client, cast.seller, SERVER)
    assert [(v["number"], v["family"], v["created_by"]) for v in found] == [
        (1, "hourly", "operator:manifest"),
        (2, "hourly_monthly", "operator:ops"),
    ]
    assert found[1]["pricing"] == HOURLY_MONTHLY
    assert instant(found[1]["existing_subscriptions_from"]) == EFFECTIVE
    shown = page(client, SERVER)
    assert (shown["pricing_family"], shown["software_pricing"]) == ("hourly_monthly", HOURLY_MONTHLY)
    assert requests_seen(client, cast.operator) == []
    assert [r["state"] for r in requests_seen(client, cast.operator, "approved")] == ["approved"]

    for decision in ("approve", "reject"):
        again = client.post(
            f"/api/v1/pricing-model-requests/{request['id']}/{decision}",
            json={"reason": "twice"},
            headers=cast.operator.headers,
        )
        assert again.status_code == 409, again.text
    assert audit_actions(db, SERVER)[-3:] == [
        "pricing_model_request.create",
        "pricing_model_request.approve",
        "price.change",
    ]
    assert [to for to, _, _ in notices(db, "pricing_model_approved")] == ["seller:acme"]  # no e-mail on file


@pytest.mark.rule("PRC-16")
def test_prc_16_a_rejection_needs_a_reason_and_changes_no_price(client: TestClient, db: Database, cast: Cast) -> None:
    request = request_model(client, cast.seller, SERVER, HOURLY_MONTHLY).json()
    reject = f"/api/v1/pricing-model-requests/{request['id']}/reject"
    assert client.post(reject, json={}, headers=cast.operator.headers).status_code == 422
    assert client.post(reject, json={"reason": "   "}, headers=cast.operator.headers).status_code == 422
    assert client.post(reject, json={"reason": "no"}, headers=cast.seller.headers).status_code == 403

    response = client.post(reject, json={"reason": "Monthly fees need a support plan"}, headers=cast.operator.headers)

    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["reason"]) == ("rejected", "Monthly fees need a support plan")
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]
    assert page(client, SERVER)["software_pricing"] == HOURLY
    ((actor, target, _, after),) = audit_events(db, "pricing_model_request.reject")
    assert (actor, target, after["reason"]) == ("operator:ops", SERVER, "Monthly fees need a support plan")
    ((to, _, body),) = notices(db, "pricing_model_rejected")
    assert to == "seller:acme"
    assert "Monthly fees need a support plan" in body
    assert notices(db, "pricing_model_approved") == []


@pytest.mark.rule("PRC-16")
def test_prc_16_a_request_must_change_the_model(client: TestClient, cast: Cast) -> None:
    assert problems(request_model(client, cast.seller, SERVER, HOURLY_RAISED)) == ["pricing: same pricing model"]
    missing = client.post("/api/v1/pricing-model-requests/9999/approve", headers=cast.operator.headers)
    assert missing.status_code == 404


# --- PATCH on a published listing -----------------------------------------------------------------------------


@pytest.mark.rule("CHG-02")
def test_chg_02_patch_cannot_change_a_published_price_but_other_fields_become_a_change_request(
    client: TestClient, cast: Cast
) -> None:
    response = client.patch(
        f"/api/v1/products/{SERVER}",
        json={"pricing": HOURLY_RAISED, "short_description": "Faster"},
        headers=cast.seller.headers,
    )
    assert response.status_code == 422, response.text
    assert f"PUT /api/v1/products/{SERVER}/pricing" in response.json()["detail"]
    assert response.json()["problems"] == [{"loc": "pricing", "msg": "use the pricing endpoint"}]

    response = client.patch(
        f"/api/v1/products/{SERVER}", json={"short_description": "Faster"}, headers=cast.seller.headers
    )
    assert response.status_code == 200, response.text
    request = response.json()["change_request"]
    assert (request["state"], request["changes"]) == ("pending", {"short_description": "Faster"})
    assert page(client, SERVER)["software_pricing"] == HOURLY
    assert [v["number"] for v in schedule(client, cast.seller, SERVER)] == [1]


@pytest.mark.rule("CHG-02")
def test_chg_02_a_pricing_change_request_from_before_launch_cannot_overwrite_the_published_price(
    client: TestClient, db: Database, cast: Cast
) -> None:
    code = "acme-insights"
    listings.make_limited(client, db, cast, code)
    raised = copy.deepcopy(listings.PAID_SAAS_PRICING)
    raised["usage"]["dimensions"][0]["rate"] = "0.25"
    response = client.patch(f"/api/v1/products/{code}", json={"pricing": raised}, headers=cast.seller.headers)
    assert response.status_code == 200, response.text
    request_id = response.json()["change_request"]["id"]
    listings.sign_off(client, cast.seller, code)

    decided = client.post(f"/api/v1/change-requests/{request_id}/approve", json={}, headers=cast.operator.headers)

    latest = schedule(client, cast.seller, code)[-1]
    assert decided.status_code != 200 or latest["pricing"] == raised
    assert page(client, code)["software_pricing"] == latest["pricing"]


# --- listing fees (PRC-17) ------------------------------------------------------------------------------------


def put_fee(client: TestClient, actor: Actor, **body: Any) -> Any:
    return client.put("/api/v1/fees", json=body, headers=actor.headers)


@pytest.mark.rule("PRC-17")
def test_prc_17_fees_by_kind_and_family_through_the_api(client: TestClient, db: Database, cast: Cast) -> None:
    response = put_fee(client, cast.operator, kind="ami", family="hourly", percent="20")
    assert response.status_code == 200, response.text
    assert response.json() == {"kind": "ami", "family": "hourly", "percent": "20"}
    assert put_fee(client, cast.operator, percent="5").json() == {"kind": "*", "family": "*", "percent": "5"}

    listed = client.get("/api/v1/fees", headers=cast.operator.headers)
    assert listed.status_code == 200, listed.text
    assert {(f["kind"], f["family"]) for f in listed.json()} == {("ami", "hourly"), ("*", "*")}
    with db.reader() as session:
        assert fee_percent(session, "ami", "hourly") == 20
        assert fee_percent(session, "ami", "monthly") == 5  # the '*' default
        assert fee_percent(session, "saas", "usage") == 5
        assert fee_percent(session, "ami", "free") == 0
        assert fee_percent(session, "ami", "byol") == 0
        assert fee_percent(session, "ami", "hourly", open_source=True) == 0
    assert [(a, t) for a, t, _, _ in audit_events(db, "fee.set")] == [
        ("operator:ops", "ami/hourly"),
        ("operator:ops", "*/*"),
    ]


@pytest.mark.rule("PRC-17")
@pytest.mark.parametrize("family", ["free", "byol"])
def test_prc_17_a_non_zero_fee_on_free_or_byol_is_refused(client: TestClient, cast: Cast, family: str) -> None:
    response = put_fee(client, cast.operator, kind="ami", family=family, percent="2.5")
    assert problems(response) == ["percent: must be 0"]
    assert "PRC-17" in response.json()["detail"]
    assert put_fee(client, cast.operator, family=family, percent="0").status_code == 200


@pytest.mark.rule("PRC-17")
def test_prc_17_fees_are_set_by_the_operator_only(client: TestClient, cast: Cast) -> None:
    for actor in (cast.seller, cast.buyer):
        assert put_fee(client, actor, kind="ami", family="hourly", percent="1").status_code == 403
        assert client.get("/api/v1/fees", headers=actor.headers).status_code == 403
    assert problems(put_fee(client, cast.operator, family="weekly", percent="1")) == ["family: unknown"]
    assert put_fee(client, cast.operator, kind="mainframe", percent="1").status_code == 422
    assert put_fee(client, cast.operator, percent="-1").status_code == 422
    assert client.get("/api/v1/fees", headers=cast.operator.headers).json() == []


@pytest.mark.rule("PRC-17")
def test_prc_17_the_fee_answered_is_the_fee_kept(client: TestClient, cast: Cast) -> None:
    answered = put_fee(client, cast.operator, kind="ami", family="hourly", percent="12.345")
    kept = client.get("/api/v1/fees", headers=cast.operator.headers).json()
    assert answered.status_code == 422 or [answered.json()] == kept


# --- infrastructure prices (LST-10) ---------------------------------------------------------------------------


def put_infrastructure(client: TestClient, actor: Actor, instance_type: str, region: str, hourly: str) -> Any:
    body = {"instance_type": instance_type, "region": region, "hourly": hourly}
    return client.put("/api/v1/infrastructure-prices", json=body, headers=actor.headers)


@pytest.mark.rule("LST-10")
def test_lst_10_infrastructure_prices_show_beside_software_prices(client: TestClient, db: Database, cast: Cast) -> None:
    assert page(client, SERVER)["infrastructure_pricing"] == []

    response = put_infrastructure(client, cast.operator, "m5.large", "us-east-1", "0.096")
    assert response.status_code == 200, response.text
    assert response.json() == {"instance_type": "m5.large", "region": "us-east-1", "hourly": "0.096"}
    put_infrastructure(client, cast.operator, "m5.large", "eu-west-1", "0.107")  # a region SERVER is not in
    put_infrastructure(client, cast.operator, "r5.large", "us-east-1", "0.126")  # a type SERVER has no price for

    shown = page(client, SERVER)
    assert shown["infrastructure_pricing"] == [
        {"instance_type": "m5.large", "region": "us-east-1", "hourly_estimate": "0.096"}
    ]
    assert shown["software_pricing"] == HOURLY  # never added into the software price
    assert page(client, METERED)["infrastructure_pricing"] == []  # usage pricing has no instance types

    assert put_infrastructure(client, cast.operator, "m5.large", "us-east-1", "0.1").status_code == 200
    assert page(client, SERVER)["infrastructure_pricing"][0]["hourly_estimate"] == "0.1"
    listed = client.get("/api/v1/infrastructure-prices", headers=cast.operator.headers).json()
    assert len(listed) == 3
    *_, (actor, target, before, after) = audit_events(db, "infrastructure_price.set")
    assert (actor, target, Decimal(before["hourly"]), after) == (
        "operator:ops",
        "m5.large/us-east-1",
        Decimal("0.096"),
        {"hourly": "0.1"},
    )


@pytest.mark.rule("LST-10")
def test_lst_10_only_the_operator_sets_infrastructure_prices(client: TestClient, cast: Cast) -> None:
    for actor in (cast.buyer, cast.seller):
        assert put_infrastructure(client, actor, "m5.large", "us-east-1", "0.001").status_code == 403
        assert client.get("/api/v1/infrastructure-prices", headers=actor.headers).status_code == 403
    assert client.put("/api/v1/infrastructure-prices", json={}).status_code == 401
    assert page(client, SERVER)["infrastructure_pricing"] == []
