"""The native metering API through FastAPI's TestClient: `POST /api/v1/usage` (a batch of up to 1,000
records, a result per record, only accepted records stored) and `GET /api/v1/usage` (a seller's products'
usage, a buyer's own; filters, paging and CSV export). The database is checked directly after every refusal.

The clock stands at NOW (12:30 UTC); the market's subscriptions started ten days earlier, so every hour from
06:30 to 12:30 of that day is inside the 6-hour window (MTR-04).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock, config, tasks
from agora.db import Database
from agora.manifest.loader import load_data
from agora.metering.endpoints import CSV_COLUMNS
from agora.models import Subscription, UsageRecord
from tests.factories.metering import (
    BUYER,
    EU_ONLY,
    GATEWAY,
    MANAGED,
    OTHER,
    OTHER_BUYER,
    SAAS,
    UNSUBSCRIBED_BUYER,
    manifest,
    metered_market,
)

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
SUBSCRIBED = NOW - timedelta(days=10)
HOUR = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
TOKENS = {
    "acme": "acme-token",
    "globex": "globex-token",
    "buyer": "buyer-token",
    "other-buyer": "other-buyer-token",
    "unsubscribed": "unsubscribed-token",
    "ops": "ops-token",
}


@pytest.fixture
def market(db: Database, manual_clock: clock.ManualClock) -> Iterator[None]:
    manual_clock.set(NOW)
    metered_market(db, SUBSCRIBED)
    yield


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def record(
    product: str = SAAS,
    dimension: str = "users",
    quantity: Any = 5,
    at: datetime | str = HOUR + timedelta(minutes=37),
    customer: str | None = "cust-1",
    **fields: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "product_code": product,
        "dimension": dimension,
        "quantity": quantity,
        "timestamp": at if isinstance(at, str) else iso(at),
        **fields,
    }
    if customer is not None:
        entry["customer_identifier"] = customer
    return entry


def post(client: TestClient, records: list[dict[str, Any]], who: str = "acme") -> Any:
    return client.post("/api/v1/usage", json={"records": records}, headers=auth(who))


def meter(client: TestClient, records: list[dict[str, Any]], who: str = "acme") -> dict[str, Any]:
    response = post(client, records, who)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def usage(client: TestClient, who: str = "acme", **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/usage", params=params, headers=auth(who))
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def stored(db: Database) -> list[tuple[str, str, str, int, str, str]]:
    """(record id, customer, dimension, quantity, hour, source) of every stored record, in insert order."""
    with db.reader() as session:
        rows = session.execute(
            select(
                UsageRecord.record_id,
                Subscription.customer_identifier,
                UsageRecord.dimension,
                UsageRecord.quantity,
                UsageRecord.period_start,
                UsageRecord.source,
            )
            .join(Subscription, Subscription.id == UsageRecord.subscription_id)
            .order_by(UsageRecord.id)
        )
        return [(r[0], r[1], r[2], r[3], iso(datetime.fromtimestamp(r[4], UTC)), r[5]) for r in rows]


def results(body: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(r["index"], r["status"], r["error"]) for r in body["results"]]


# --- POST /api/v1/usage: a result per record ---------------------------------------------------------------


@pytest.mark.rule("MTR-04")
def test_a_batch_answers_every_record_in_order_and_stores_only_the_accepted_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    body = meter(
        client,
        [
            record(quantity=10),  # accepted
            record(product="acme-nothing"),  # unknown product
            record(dimension="seats"),  # unknown dimension
            record(customer="cust-nobody"),  # no subscription
            record(dimension="requests", quantity=-1),  # negative quantity
            record(dimension="requests", at=NOW - timedelta(hours=6)),  # 6 hours before receipt
            record(dimension="requests", at=NOW + timedelta(seconds=1)),  # in the future
            record(product=MANAGED, dimension="storage", customer="si-1000001"),  # the platform's to report
            record(customer="cust-2", dimension="requests", quantity=7),  # accepted
        ],
    )
    assert results(body) == [
        (0, "accepted", None),
        (1, "refused", "unknown_product"),
        (2, "refused", "unknown_dimension"),
        (3, "refused", "not_subscribed"),
        (4, "refused", "invalid_quantity"),
        (5, "refused", "timestamp_out_of_bounds"),
        (6, "refused", "timestamp_out_of_bounds"),
        (7, "refused", "unknown_dimension"),
        (8, "accepted", None),
    ]
    assert (body["accepted"], body["duplicate"], body["refused"]) == (2, 0, 7)
    details = [r["detail"] for r in body["results"]]
    assert details[0] is None and details[8] is None
    assert details[1:8] == [
        "no product with code 'acme-nothing' [MTR-04]",
        "acme-metered has no dimension 'seats' (its dimensions: requests, users) [MTR-04]",
        "customer cust-nobody has no subscription to acme-metered at 2026-03-10T10:37:00Z [MTR-04]",
        "quantity must not be negative, got -1 [MTR-04]",
        "timestamp 2026-03-10T06:30:00Z is 6 hours or more before receipt (2026-03-10T12:30:00Z) [MTR-04]",
        "timestamp 2026-03-10T12:30:01Z is in the future (server time 2026-03-10T12:30:00Z) [MTR-04]",
        "storage of acme-search is reported by the platform (prometheus), not sent [PRC-14]",
    ]
    refused = [r for r in body["results"] if r["status"] == "refused"]
    assert all(r["metering_record_id"] is None for r in refused)
    first, last = body["results"][0]["metering_record_id"], body["results"][8]["metering_record_id"]
    assert first and last and first != last
    assert stored(db) == [
        (first, "cust-1", "users", 10, "2026-03-10T10:00:00Z", "seller"),
        (last, "cust-2", "requests", 7, "2026-03-10T10:00:00Z", "seller"),
    ]
    assert [(r["metering_record_id"], r["quantity"]) for r in usage(client)] == [(first, 10), (last, 7)]


@pytest.mark.rule("MTR-04")
def test_the_accepted_window_is_the_six_hours_before_receipt_and_never_the_future_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    body = meter(
        client,
        [
            record(at=NOW - timedelta(hours=6)),  # exactly 6 hours: refused
            record(at=NOW - timedelta(hours=6) + timedelta(seconds=1)),  # just inside: stored at 06:00
            record(dimension="requests", at=NOW),  # receipt time itself: accepted
            record(customer="cust-2", at=NOW + timedelta(seconds=1)),  # one second ahead: refused
            record(customer="cust-2", at=NOW + timedelta(days=400)),
        ],
    )
    assert results(body) == [
        (0, "refused", "timestamp_out_of_bounds"),
        (1, "accepted", None),
        (2, "accepted", None),
        (3, "refused", "timestamp_out_of_bounds"),
        (4, "refused", "timestamp_out_of_bounds"),
    ]
    assert [(r[1], r[2], r[4]) for r in stored(db)] == [
        ("cust-1", "users", "2026-03-10T06:00:00Z"),
        ("cust-1", "requests", "2026-03-10T12:00:00Z"),
    ]


@pytest.mark.rule("MTR-04")
def test_a_customer_is_subscribed_only_from_its_subscription_start_MTR_04(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(NOW)
    metered_market(db, HOUR + timedelta(minutes=30))  # subscribed at 10:30
    body = meter(client, [record(at=HOUR + timedelta(minutes=29)), record(at=HOUR + timedelta(minutes=30))])
    assert results(body) == [(0, "refused", "not_subscribed"), (1, "accepted", None)]
    assert [(r[1], r[4]) for r in stored(db)] == [("cust-1", "2026-03-10T10:00:00Z")]


@pytest.mark.rule("MTR-04")
def test_a_seller_names_its_customer_by_identifier_or_account_but_not_both_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    body = meter(
        client,
        [
            record(customer=None, customer_account=BUYER),  # BUYER's subscription is cust-1
            record(customer=None, customer_account=UNSUBSCRIBED_BUYER, dimension="requests"),
            record(customer="cust-2", customer_account=OTHER_BUYER, dimension="requests"),
            record(customer=None, dimension="requests"),
        ],
    )
    assert results(body) == [
        (0, "accepted", None),
        (1, "refused", "not_subscribed"),
        (2, "refused", "invalid_customer"),
        (3, "refused", "invalid_customer"),
    ]
    assert body["results"][2]["detail"] == "give a customer identifier or a customer account, not both"
    assert body["results"][3]["detail"] == "name the customer: a customer identifier or a customer account"
    assert [(r[1], r[2]) for r in stored(db)] == [("cust-1", "users")]


@pytest.mark.rule("MTR-05")
def test_an_identical_resend_is_a_duplicate_with_the_original_id_and_another_quantity_is_refused_MTR_05(
    db: Database, client: TestClient, market: None
) -> None:
    [original] = meter(client, [record(quantity=10)])["results"]
    assert original["status"] == "accepted"
    first_id = original["metering_record_id"]

    again = meter(
        client,
        [
            record(quantity=10),  # the same record
            record(quantity=10, at=HOUR + timedelta(minutes=5)),  # the same hour, another minute: the same key
            record(quantity=11),  # the same key, another quantity
            record(dimension="requests", quantity=3),  # new
            record(dimension="requests", quantity=3),  # repeated inside the batch
            record(dimension="requests", quantity=4),  # conflicting inside the batch
        ],
    )
    assert results(again) == [
        (0, "duplicate", None),
        (1, "duplicate", None),
        (2, "refused", "duplicate_conflict"),
        (3, "accepted", None),
        (4, "duplicate", None),
        (5, "refused", "duplicate_conflict"),
    ]
    ids = [r["metering_record_id"] for r in again["results"]]
    assert ids[0] == ids[1] == first_id
    assert ids[3] and ids[4] == ids[3] and ids[3] != first_id
    assert ids[2] is None and ids[5] is None
    assert again["results"][0]["detail"] == "an identical record was already received"
    assert again["results"][2]["detail"] == (
        "a record for users in this period was already received with quantity 10; it cannot be replaced with 11"
        " [MTR-05]"
    )
    assert (again["accepted"], again["duplicate"], again["refused"]) == (1, 3, 2)
    assert [(r[0], r[2], r[3]) for r in stored(db)] == [(first_id, "users", 10), (ids[3], "requests", 3)]


@pytest.mark.rule("MTR-01")
def test_a_record_is_stored_and_returned_at_the_utc_hour_of_its_timestamp_MTR_01(
    db: Database, client: TestClient, market: None
) -> None:
    body = meter(
        client,
        [
            record(at="2026-03-10T10:37:12.345Z"),
            # 09:07 UTC given in a zone half an hour off UTC: its hour is 09:00 UTC, not 08:30
            record(dimension="requests", at="2026-03-10T14:37:00+05:30"),
            record(customer="cust-2", at="2026-03-10T07:59:59-03:00"),  # 10:59:59 UTC
        ],
    )
    assert results(body) == [(0, "accepted", None), (1, "accepted", None), (2, "accepted", None)]
    assert [(r[1], r[2], r[4]) for r in stored(db)] == [
        ("cust-1", "users", "2026-03-10T10:00:00Z"),
        ("cust-1", "requests", "2026-03-10T09:00:00Z"),
        ("cust-2", "users", "2026-03-10T10:00:00Z"),
    ]
    [first, second, third] = usage(client)
    assert (first["period_start"], first["period_end"], first["customer_identifier"]) == (
        "2026-03-10T10:00:00Z",
        None,
        "cust-1",
    )
    assert (first["product"], first["dimension"], first["quantity"], first["source"]) == (SAAS, "users", 5, "seller")
    assert (first["customer_account"], first["received_at"]) == (BUYER, "2026-03-10T12:30:00Z")
    assert second["period_start"] == "2026-03-10T09:00:00Z"
    assert third["period_start"] == "2026-03-10T10:00:00Z"
    # The same hour named in another zone is the same record (MTR-05).
    again = meter(client, [record(at="2026-03-10T16:15:00+05:30")])  # 10:45 UTC
    assert results(again) == [(0, "duplicate", None)]
    assert again["results"][0]["metering_record_id"] == first["metering_record_id"]


@pytest.mark.rule("MTR-04")
def test_a_timestamp_out_of_any_representable_range_is_refused_not_a_server_error_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    # Neither instant exists in UTC (past year 9999, before year 1): refused per record, like any other
    # timestamp outside the window, not an OverflowError while writing the refusal's message.
    body = meter(client, [record(at="9999-12-31T23:59:59-01:00"), record(at="0001-01-01T00:00:00+01:00"), record()])
    assert results(body) == [
        (0, "refused", "timestamp_out_of_bounds"),
        (1, "refused", "timestamp_out_of_bounds"),
        (2, "accepted", None),
    ]
    assert [r["detail"] for r in body["results"][:2]] == [
        "timestamp 9999-12-31T23:59:59-01:00 is in the future (server time 2026-03-10T12:30:00Z) [MTR-04]",
        "timestamp 0001-01-01T00:00:00+01:00 is 6 hours or more before receipt (2026-03-10T12:30:00Z) [MTR-04]",
    ]
    assert len(stored(db)) == 1


@pytest.mark.rule("MTR-03")
def test_records_for_a_product_not_offered_in_this_endpoints_region_are_refused_MTR_03(
    db: Database, client: TestClient, market: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = meter(client, [record(product=EU_ONLY, customer="eu-1"), record()])
    assert results(body) == [(0, "refused", "wrong_region"), (1, "accepted", None)]
    assert body["results"][0]["detail"] == "acme-eu is not offered in us-east-1; send its records there [MTR-03]"

    monkeypatch.setenv("AGORA_REGION", "eu-west-1")  # the same marketplace served from eu-west-1
    config.reset_settings()
    body = meter(client, [record(product=EU_ONLY, customer="eu-1"), record(dimension="requests")])
    assert results(body) == [(0, "accepted", None), (1, "refused", "wrong_region")]
    assert body["results"][1]["detail"] == "acme-metered is not offered in eu-west-1; send its records there [MTR-03]"
    assert [(r[1], r[2]) for r in stored(db)] == [("cust-1", "users"), ("eu-1", "users")]


# --- batch limits and body validation ----------------------------------------------------------------------


def _market_with_customers(db: Database, count: int) -> list[str]:
    """The metering market plus `count` buyers, each subscribed to SAAS as `bulk-N`."""
    data = manifest(SUBSCRIBED)
    accounts = [f"9000000{n:05d}" for n in range(count)]
    data["buyers"] += [{"account": a, "email": f"{a}@buyer.example"} for a in accounts]
    data["subscriptions"] += [
        {"buyer": a, "product": SAAS, "at": iso(SUBSCRIBED), "customer_identifier": f"bulk-{n}"}
        for n, a in enumerate(accounts)
    ]
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(data, session)
    return [f"bulk-{n}" for n in range(count)]


def _thousand(customers: list[str]) -> list[dict[str, Any]]:
    """1,000 distinct records: 100 customers × 5 hours (07:00–11:00) × 2 dimensions."""
    return [
        record(customer=c, dimension=d, at=HOUR.replace(hour=h, minute=15), quantity=h)
        for c in customers
        for h in range(7, 12)
        for d in ("users", "requests")
    ]


def test_a_batch_of_1000_records_is_accepted_and_1001_is_refused_naming_the_field(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(NOW)
    records = _thousand(_market_with_customers(db, 100))
    assert len(records) == 1000

    too_many = post(client, [*records, record()])
    assert too_many.status_code == 422
    error = too_many.json()
    assert error["error"] == "validation_error"
    assert [(p["loc"], p["type"]) for p in error["problems"]] == [("body.records", "too_long")]
    assert error["detail"].startswith("body.records: ") and "1000" in error["detail"]
    assert stored(db) == []

    body = meter(client, records)
    assert [r["index"] for r in body["results"]] == list(range(1000))
    assert (body["accepted"], body["duplicate"], body["refused"]) == (1000, 0, 0)
    assert len({r["metering_record_id"] for r in body["results"]}) == 1000
    assert len(stored(db)) == 1000
    again = meter(client, records)  # the whole batch resent: every record a duplicate with its id
    assert (again["accepted"], again["duplicate"], again["refused"]) == (0, 1000, 0)
    assert [r["metering_record_id"] for r in again["results"]] == [r["metering_record_id"] for r in body["results"]]
    assert len(stored(db)) == 1000


def _without(entry: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != field}


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"records": []}, "body.records", "too_short"),
        ({}, "body.records", "missing"),
        ({"records": [_without(record(), "dimension")]}, "body.records.0.dimension", "missing"),
        ({"records": [record(), _without(record(), "timestamp")]}, "body.records.1.timestamp", "missing"),
        ({"records": [_without(record(), "quantity")]}, "body.records.0.quantity", "missing"),
        ({"records": [record(quantity="many")]}, "body.records.0.quantity", "int_type"),
        ({"records": [record(quantity=1.5)]}, "body.records.0.quantity", "int_type"),
        ({"records": [record(quantity=True)]}, "body.records.0.quantity", "int_type"),  # lax parsing: 1
        ({"records": [record(quantity="5")]}, "body.records.0.quantity", "int_type"),
        ({"records": [record(quantity=5.0)]}, "body.records.0.quantity", "int_type"),
        ({"records": [record(at="2026-03-10T10:37:00")]}, "body.records.0.timestamp", "timezone_aware"),
        ({"records": [record(at="yesterday")]}, "body.records.0.timestamp", "datetime_from_date_parsing"),
        ({"records": [record(product="")]}, "body.records.0.product_code", "string_too_short"),
        (
            {"records": [record(customer=None, customer_account="1234")]},
            "body.records.0.customer_account",
            "string_pattern_mismatch",
        ),
        ({"records": [record(unit="hours")]}, "body.records.0.unit", "extra_forbidden"),
        (
            {"records": [record(allocations=[{"quantity": "x"}])]},
            "body.records.0.allocations.0.quantity",
            "int_type",
        ),
        ({"records": record()}, "body.records", "list_type"),
    ],
)
def test_a_malformed_body_is_a_422_naming_the_field_and_stores_nothing(
    db: Database, client: TestClient, market: None, body: dict[str, Any], loc: str, kind: str
) -> None:
    response = client.post("/api/v1/usage", json=body, headers=auth("acme"))
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "validation_error"
    assert [(p["loc"], p["type"]) for p in error["problems"]] == [(loc, kind)]
    assert error["detail"].startswith(f"{loc}: ")
    assert stored(db) == []


def test_a_body_that_is_not_json_is_a_422(db: Database, client: TestClient, market: None) -> None:
    response = client.post(
        "/api/v1/usage", content=b"{not json", headers={**auth("acme"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert stored(db) == []


# --- allocations --------------------------------------------------------------------------------------------


def test_allocations_that_sum_to_the_quantity_are_stored_and_any_other_sum_is_refused(
    db: Database, client: TestClient, market: None
) -> None:
    split = [{"quantity": 4, "tags": {"team": "red"}}, {"quantity": 6, "tags": {"team": "blue", "env": "prod"}}]
    body = meter(
        client,
        [
            record(quantity=10, allocations=split),
            record(dimension="requests", quantity=11, allocations=split),  # sums to 10
            record(customer="cust-2", quantity=10, allocations=[{"quantity": 5}, {"quantity": 5}]),  # same tag set
            record(customer="cust-2", dimension="requests", quantity=0, allocations=[]),
            record(customer="cust-2", quantity=2, allocations=[{"quantity": 3}, {"quantity": -1, "tags": {"a": "b"}}]),
            record(customer="cust-2", quantity=1, allocations=[{"quantity": 1, "tags": {"bad|key": "tag"}}]),
        ],
    )
    assert results(body) == [
        (0, "accepted", None),
        (1, "refused", "invalid_allocations"),
        (2, "refused", "invalid_allocations"),
        (3, "refused", "invalid_allocations"),
        (4, "refused", "invalid_allocations"),
        (5, "refused", "invalid_tag"),
    ]
    details = [r["detail"] for r in body["results"]]
    assert details[1] == "allocated quantities sum to 10, not to the record's quantity 11"
    assert details[2] == "allocations[1]: each allocation needs its own tag set"
    assert details[3] == "give 1 to 2500 usage allocations"
    assert details[4] == "allocations[1]: quantity must not be negative"
    assert details[5] == "allocations[0]: tag 'bad|key'='tag' is not a valid tag"
    assert [(r[1], r[2], r[3]) for r in stored(db)] == [("cust-1", "users", 10)]
    [only] = usage(client)
    assert only["allocations"] == [
        {"quantity": 4, "tags": {"team": "red"}},
        {"quantity": 6, "tags": {"env": "prod", "team": "blue"}},
    ]


# --- who may send -------------------------------------------------------------------------------------------


def test_metering_without_a_valid_token_is_401_and_an_operator_is_403(
    db: Database, client: TestClient, market: None
) -> None:
    batch = {"records": [record()]}
    missing = client.post("/api/v1/usage", json=batch)
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized" and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/api/v1/usage", json=batch, headers={"Authorization": "Bearer no-such-token"})
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "unauthorized", "detail": "the API token is unknown or revoked"},
    )
    operator = client.post("/api/v1/usage", json=batch, headers=auth("ops"))
    assert (operator.status_code, operator.json()) == (
        403,
        {"error": "forbidden", "detail": "this action is for buyer or seller accounts, not operator"},
    )
    assert client.get("/api/v1/usage").status_code == 401
    assert stored(db) == []


@pytest.mark.rule("MTR-04")
def test_a_seller_cannot_meter_another_sellers_product_it_looks_unknown_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    body = meter(client, [record(product=OTHER, customer="gx-1")])  # globex's product, acme's token
    assert results(body) == [(0, "refused", "unknown_product")]
    # the same answer as for a product that does not exist: its existence is not revealed
    assert body["results"][0]["detail"] == f"no product with code {OTHER!r} [MTR-04]"
    assert stored(db) == []
    owner = meter(client, [record(product=OTHER, customer="gx-1")], who="globex")
    assert results(owner) == [(0, "accepted", None)]
    assert [(r[1], r[5]) for r in stored(db)] == [("gx-1", "seller")]


@pytest.mark.rule("MTR-04")
def test_a_buyers_software_meters_only_the_buyers_own_subscription_MTR_04(
    db: Database, client: TestClient, market: None
) -> None:
    mine = meter(client, [record(product=GATEWAY, dimension="calls", customer=None, quantity=3)], who="buyer")
    assert results(mine) == [(0, "accepted", None)]
    not_theirs = meter(client, [record(product=GATEWAY, dimension="calls", customer=None)], who="other-buyer")
    assert results(not_theirs) == [(0, "refused", "not_subscribed")]
    assert not_theirs["results"][0]["detail"] == (
        "customer the caller has no subscription to acme-gateway at 2026-03-10T10:37:00Z [MTR-04]"
    )
    nobody = meter(client, [record(customer=None)], who="unsubscribed")
    assert results(nobody) == [(0, "refused", "not_subscribed")]
    # A buyer naming another customer is refused, never metered on either subscription; naming itself is fine.
    named = meter(
        client,
        [
            record(customer="cust-2", quantity=9),
            record(customer=None, customer_account=OTHER_BUYER, quantity=9),
            record(customer="cust-1", quantity=9),
        ],
        who="buyer",
    )
    assert results(named) == [
        (0, "refused", "invalid_customer"),
        (1, "refused", "invalid_customer"),
        (2, "accepted", None),
    ]
    assert named["results"][0]["detail"] == (
        "customer cust-2 is not the caller's subscription to acme-metered: a buyer meters its own usage; leave the"
        " customer out or name your own [MTR-04]"
    )
    own_account = meter(client, [record(customer=None, customer_account=BUYER, quantity=9)], who="buyer")
    assert results(own_account) == [(0, "duplicate", None)]  # the same subscription, hour and quantity as above
    assert [(r[1], r[2], r[3], r[5]) for r in stored(db)] == [
        ("gw-1", "calls", 3, "buyer"),
        ("cust-1", "users", 9, "buyer"),
    ]
    # the buyer's record and the seller's for the same customer, dimension and hour are one key (MTR-05)
    seller = meter(client, [record(quantity=9)])
    assert results(seller) == [(0, "duplicate", None)]


# --- GET /api/v1/usage --------------------------------------------------------------------------------------


@pytest.fixture
def metered(db: Database, client: TestClient, market: None) -> dict[str, str]:
    """Usage of both sellers and both buyers; answers each record's id by a short name."""
    acme = meter(
        client,
        [
            record(quantity=1, at=HOUR.replace(hour=8)),
            record(quantity=2, at=HOUR.replace(hour=9)),
            record(quantity=3, at=HOUR.replace(hour=10)),
            record(customer="cust-2", dimension="requests", quantity=4),
        ],
    )
    globex = meter(client, [record(product=OTHER, customer="gx-1", quantity=5)], who="globex")
    buyer = meter(client, [record(product=GATEWAY, dimension="calls", customer=None, quantity=6)], who="buyer")
    ids = [r["metering_record_id"] for body in (acme, globex, buyer) for r in body["results"]]
    assert all(ids)
    return dict(zip(["c1-08", "c1-09", "c1-10", "c2-10", "gx-10", "gw-10"], ids, strict=True))


def names(records: list[dict[str, Any]], ids: dict[str, str]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r["metering_record_id"]] for r in records]


def test_a_seller_queries_only_its_own_products_usage_with_filters(client: TestClient, metered: dict[str, str]) -> None:
    assert names(usage(client), metered) == ["c1-08", "c1-09", "c1-10", "c2-10", "gw-10"]
    assert names(usage(client, product=SAAS), metered) == ["c1-08", "c1-09", "c1-10", "c2-10"]
    assert names(usage(client, product=GATEWAY), metered) == ["gw-10"]
    assert names(usage(client, customer="cust-1"), metered) == ["c1-08", "c1-09", "c1-10"]
    assert names(usage(client, dimension="requests"), metered) == ["c2-10"]
    assert names(usage(client, start="2026-03-10T09:00:00Z", end="2026-03-10T10:00:00Z"), metered) == ["c1-09"]
    assert names(usage(client, start="2026-03-10T09:00:00Z", customer="cust-1"), metered) == ["c1-09", "c1-10"]
    assert names(usage(client, end="2026-03-10T09:00:00+00:00"), metered) == ["c1-08"]
    assert usage(client, product="acme-nothing") == []
    # another seller's product, its customer or its dimension: nothing, as for a product that does not exist
    assert usage(client, product=OTHER) == []
    assert usage(client, customer="gx-1") == []
    assert names(usage(client, "globex"), metered) == ["gx-10"]
    assert names(usage(client, "globex", product=SAAS), metered) == []
    # the operator sees every record
    assert names(usage(client, "ops"), metered) == ["c1-08", "c1-09", "c1-10", "c2-10", "gx-10", "gw-10"]


def test_a_buyer_sees_only_its_own_usage(client: TestClient, metered: dict[str, str]) -> None:
    mine = usage(client, "buyer")
    assert names(mine, metered) == ["c1-08", "c1-09", "c1-10", "gx-10", "gw-10"]
    assert {r["customer_account"] for r in mine} == {BUYER}
    assert names(usage(client, "buyer", product=SAAS), metered) == ["c1-08", "c1-09", "c1-10"]
    assert names(usage(client, "buyer", customer="cust-2"), metered) == []
    assert names(usage(client, "other-buyer"), metered) == ["c2-10"]
    assert usage(client, "unsubscribed") == []


def test_usage_pages_by_the_last_id(client: TestClient, metered: dict[str, str]) -> None:
    response = client.get("/api/v1/usage", params={"limit": 2}, headers=auth("acme"))
    page = response.json()
    assert names(page["records"], metered) == ["c1-08", "c1-09"]
    assert page["next_after"] == page["records"][-1]["id"]
    rest = client.get("/api/v1/usage", params={"limit": 3, "after": page["next_after"]}, headers=auth("acme")).json()
    assert names(rest["records"], metered) == ["c1-10", "c2-10", "gw-10"]
    assert rest["next_after"] == rest["records"][-1]["id"]
    end = client.get("/api/v1/usage", params={"limit": 3, "after": rest["next_after"]}, headers=auth("acme")).json()
    assert end == {"records": [], "next_after": None}


def test_usage_exports_as_csv_with_a_header_row(client: TestClient, metered: dict[str, str]) -> None:
    response = client.get("/api/v1/usage", params={"format": "csv", "product": SAAS}, headers=auth("acme"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="usage.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[0][:3] == ["metering_record_id", "product", "customer_identifier"]
    as_dicts = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    columns = ("metering_record_id", "customer_identifier", "customer_account", "dimension", "period_start")
    assert [(*(r[c] for c in columns), r["quantity"], r["source"]) for r in as_dicts] == [
        (metered["c1-08"], "cust-1", BUYER, "users", "2026-03-10T08:00:00Z", "1", "seller"),
        (metered["c1-09"], "cust-1", BUYER, "users", "2026-03-10T09:00:00Z", "2", "seller"),
        (metered["c1-10"], "cust-1", BUYER, "users", "2026-03-10T10:00:00Z", "3", "seller"),
        (metered["c2-10"], "cust-2", OTHER_BUYER, "requests", "2026-03-10T10:00:00Z", "4", "seller"),
    ]
    assert all(r["product"] == SAAS and r["period_end"] == "" and r["resource"] == "" for r in as_dicts)

    theirs = client.get("/api/v1/usage", params={"format": "csv"}, headers=auth("other-buyer"))
    lines = theirs.text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert [line.split(",")[0] for line in lines[1:]] == [metered["c2-10"]]
    empty = client.get("/api/v1/usage", params={"format": "csv", "product": OTHER}, headers=auth("acme"))
    assert empty.text.splitlines() == [",".join(CSV_COLUMNS)]


def test_usage_query_errors_name_the_parameter(client: TestClient, metered: dict[str, str]) -> None:
    naive = client.get("/api/v1/usage", params={"start": "2026-03-10T09:00:00"}, headers=auth("acme"))
    assert naive.status_code == 422
    assert naive.json()["problems"][0]["loc"] == "query.start"  # the shared instant type, like `end` below
    for params, loc in (
        ({"format": "xml"}, "query.format"),
        ({"limit": 0}, "query.limit"),
        ({"end": "soon"}, "query.end"),
        ({"after": -1}, "query.after"),
    ):
        response = client.get("/api/v1/usage", params=params, headers=auth("acme"))
        assert response.status_code == 422, params
        error = response.json()
        assert error["error"] == "validation_error" and [p["loc"] for p in error["problems"]] == [loc]
