"""The AWS front door as boto3 sees it: unmodified `meteringmarketplace` and `marketplace-entitlement` clients
against a live server, for every operation and every refusal (api-surface.md §0–2), with the database checked
afterwards.

boto3 signs with the wall clock, so the server's clock is frozen at the real current second and the market's
subscriptions start a day before it; time-window rules are tested with timestamps relative to that instant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore
import httpx
import jwt
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import select, update

from agora import clock
from agora.auth import forget_access_keys
from agora.db import Database
from agora.metering import registration
from agora.models import AccessKey, UsageRecord
from agora.subscriptions.contracts import add_months
from tests.factories.metering import (
    BUYER,
    BUYER_KEY,
    CONTAINER,
    CONTRACT,
    EU_ONLY,
    GATEWAY,
    MANAGED,
    ML,
    OTHER,
    OTHER_BUYER,
    OTHER_BUYER_KEY,
    OTHER_SELLER_KEY,
    SAAS,
    SELLER_KEY,
    UNSUBSCRIBED_BUYER,
    UNSUBSCRIBED_KEY,
    metered_market,
)
from tests.live import live_server

REGION = "us-east-1"
ONE_ATTEMPT = Config(retries={"max_attempts": 1})
Key = tuple[str, str]


@dataclass(frozen=True)
class Live:
    db: Database
    url: str
    clock: clock.ManualClock
    now: datetime  # the server's frozen time, a whole second

    @property
    def hour(self) -> datetime:
        """Two hours back, on the hour: every minute of it is inside the 6-hour window (MTR-04)."""
        return (self.now - timedelta(hours=2)).replace(minute=0, second=0)

    def metering(self, key: Key = BUYER_KEY, region: str = REGION, **options: Any) -> Any:
        return boto3.client(
            "meteringmarketplace",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=ONE_ATTEMPT.merge(Config(**options)) if options else ONE_ATTEMPT,
        )

    def entitlement(self, key: Key = SELLER_KEY, region: str = REGION) -> Any:
        return boto3.client(
            "marketplace-entitlement",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=ONE_ATTEMPT,
        )

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)

    def stored(self) -> list[tuple[str, int, str, int, str | None]]:
        """(record id, period start, dimension, quantity, client token) of every stored record, oldest first."""
        c = UsageRecord
        with self.db.reader() as session:
            rows = session.execute(
                select(c.record_id, c.period_start, c.dimension, c.quantity, c.client_token).order_by(c.id)
            )
            return [(r.record_id, r.period_start, r.dimension, r.quantity, r.client_token) for r in rows]


@contextmanager
def serving(db: Database, contract_buyers: Sequence[str] = ()) -> Iterator[Live]:
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.use_clock(clock.ManualClock(now)) as frozen:
        assert isinstance(frozen, clock.ManualClock)
        metered_market(db, now - timedelta(days=1), contract_buyers)
        with live_server(db) as url:
            yield Live(db, url, frozen, now)


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    with serving(db) as running:
        yield running


def refused(call: Callable[[], Any], code: str) -> ClientError:
    """`call` fails with the AWS error `code`, carrying the request id the server answered with."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value
    assert error.response["Error"]["Code"] == code, error.response
    metadata = error.response["ResponseMetadata"]
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    uuid.UUID(metadata["RequestId"])
    return error


def epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- MeterUsage -------------------------------------------------------------------------------------------


@pytest.mark.rule("MTR-01")
def test_meter_usage_answers_a_record_id_and_stores_the_hour_MTR_01(live: Live) -> None:
    """MTR-01: the record is stored for its hour, product, customer and dimension, and reads back through the
    native usage API for the buyer and the seller alike."""
    answer = live.metering().meter_usage(
        ProductCode=GATEWAY,
        Timestamp=live.hour + timedelta(minutes=37, seconds=5),
        UsageDimension="calls",
        UsageQuantity=5,
    )
    record_id = answer["MeteringRecordId"]
    metadata = answer["ResponseMetadata"]
    assert metadata["HTTPStatusCode"] == 200
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    uuid.UUID(metadata["RequestId"])

    [row] = live.stored()
    assert row[:4] == (record_id, epoch(live.hour), "calls", 5)
    for token in ("buyer-token", "acme-token"):
        [seen] = live.api("GET", "/usage", token, params={"product": GATEWAY}).json()["records"]
        assert seen["metering_record_id"] == record_id
        assert seen["period_start"] == iso(live.hour)
        assert (seen["customer_identifier"], seen["customer_account"]) == ("gw-1", BUYER)
        assert (seen["dimension"], seen["quantity"], seen["source"]) == ("calls", 5, "buyer")
    assert live.api("GET", "/usage", "globex-token").json()["records"] == []


@pytest.mark.rule("MTR-05")
def test_meter_usage_resent_identically_is_stored_once_MTR_05(live: Live) -> None:
    """MTR-05: a resend of the same hour and quantity answers the first record's id, whether it carries a
    new ClientToken (boto3 makes one per call) or the same one."""
    m = live.metering()
    first = m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=5)
    record_id = first["MeteringRecordId"]
    later_in_the_hour = live.hour + timedelta(minutes=59, seconds=59)
    again = m.meter_usage(ProductCode=GATEWAY, Timestamp=later_in_the_hour, UsageDimension="calls", UsageQuantity=5)
    assert again["MeteringRecordId"] == record_id
    assert again["ResponseMetadata"]["RequestId"] != first["ResponseMetadata"]["RequestId"]

    token = "retry-token-1"
    hour = live.hour + timedelta(hours=1)
    made = m.meter_usage(
        ProductCode=GATEWAY, Timestamp=hour, UsageDimension="calls", UsageQuantity=2, ClientToken=token
    )
    retried = m.meter_usage(
        ProductCode=GATEWAY, Timestamp=hour, UsageDimension="calls", UsageQuantity=2, ClientToken=token
    )
    assert retried["MeteringRecordId"] == made["MeteringRecordId"] != record_id
    assert [(r[0], r[3]) for r in live.stored()] == [(record_id, 5), (made["MeteringRecordId"], 2)]


@pytest.mark.rule("MTR-05")
def test_meter_usage_with_another_quantity_for_the_hour_is_a_duplicate_request_MTR_05(live: Live) -> None:
    m = live.metering()
    first = m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=5)
    with pytest.raises(m.exceptions.DuplicateRequestException) as caught:
        m.meter_usage(
            ProductCode=GATEWAY, Timestamp=live.hour + timedelta(minutes=30), UsageDimension="calls", UsageQuantity=6
        )
    assert "MTR-05" in caught.value.response["Error"]["Message"]
    assert [(r[0], r[3]) for r in live.stored()] == [(first["MeteringRecordId"], 5)]


@pytest.mark.rule("MTR-05")
def test_meter_usage_client_token_reused_for_another_record_is_an_idempotency_conflict_MTR_05(live: Live) -> None:
    m = live.metering()
    m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=5, ClientToken="t-1")
    next_hour = live.hour + timedelta(hours=1)
    with pytest.raises(m.exceptions.IdempotencyConflictException):
        m.meter_usage(
            ProductCode=GATEWAY, Timestamp=next_hour, UsageDimension="calls", UsageQuantity=5, ClientToken="t-1"
        )
    with pytest.raises(m.exceptions.IdempotencyConflictException):
        m.meter_usage(
            ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=4, ClientToken="t-1"
        )
    assert len(live.stored()) == 1
    # The refused record was not stored: it is accepted with a token of its own.
    m.meter_usage(ProductCode=GATEWAY, Timestamp=next_hour, UsageDimension="calls", UsageQuantity=5, ClientToken="t-2")
    assert [(r[1], r[4]) for r in live.stored()] == [(epoch(live.hour), "t-1"), (epoch(next_hour), "t-2")]


@pytest.mark.rule("MTR-04")
@pytest.mark.parametrize(
    "offset",
    [
        timedelta(hours=-6),
        timedelta(hours=-6, seconds=-1),
        timedelta(days=-2),
        timedelta(seconds=1),
        timedelta(hours=1),
    ],
    ids=["6h-ago", "6h1s-ago", "2d-ago", "1s-ahead", "1h-ahead"],
)
def test_meter_usage_outside_the_6_hour_window_is_out_of_bounds_MTR_04(live: Live, offset: timedelta) -> None:
    m = live.metering()
    with pytest.raises(m.exceptions.TimestampOutOfBoundsException) as caught:
        m.meter_usage(ProductCode=GATEWAY, Timestamp=live.now + offset, UsageDimension="calls", UsageQuantity=1)
    assert "MTR-04" in caught.value.response["Error"]["Message"]
    assert live.stored() == []


@pytest.mark.rule("MTR-04")
def test_meter_usage_inside_the_window_edges_is_accepted_MTR_04(live: Live) -> None:
    m = live.metering()
    for at in (live.now - timedelta(hours=6) + timedelta(seconds=1), live.now):
        m.meter_usage(ProductCode=GATEWAY, Timestamp=at, UsageDimension="calls", UsageQuantity=1)
    assert len(live.stored()) == 2


@pytest.mark.rule("MTR-04")
def test_meter_usage_refuses_unknown_products_dimensions_and_customers_MTR_04(live: Live) -> None:
    m = live.metering()
    usage = {"Timestamp": live.hour, "UsageQuantity": 1}
    with pytest.raises(m.exceptions.InvalidUsageDimensionException):
        m.meter_usage(ProductCode=GATEWAY, UsageDimension="bogus", **usage)
    with pytest.raises(m.exceptions.InvalidProductCodeException):
        m.meter_usage(ProductCode="acme-nothing", UsageDimension="calls", **usage)
    with pytest.raises(m.exceptions.InvalidProductCodeException):
        m.meter_usage(ProductCode="bad code!!", UsageDimension="calls", **usage)  # botocore leaves patterns to us
    for key in (OTHER_BUYER_KEY, UNSUBSCRIBED_KEY):  # neither subscribes to GATEWAY
        other = live.metering(key)
        with pytest.raises(other.exceptions.CustomerNotEntitledException):
            other.meter_usage(ProductCode=GATEWAY, UsageDimension="calls", **usage)
    assert live.stored() == []


@pytest.mark.rule("MTR-03")
def test_meter_usage_sent_to_another_regions_endpoint_is_refused_MTR_03(live: Live) -> None:
    m = live.metering(region="eu-west-1")
    with pytest.raises(m.exceptions.InvalidEndpointRegionException) as caught:
        m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=1)
    assert "MTR-03" in caught.value.response["Error"]["Message"]
    assert live.stored() == []


def test_meter_usage_allocations_must_sum_and_carry_valid_tags(live: Live) -> None:
    """api-surface §1.5.6: allocations sum to the quantity, each with its own tag set of at most 5 valid tags."""
    m = live.metering()

    def meter(*allocations: tuple[int, dict[str, str]]) -> Any:
        return m.meter_usage(
            ProductCode=GATEWAY,
            Timestamp=live.hour,
            UsageDimension="calls",
            UsageQuantity=10,
            UsageAllocations=[
                {"AllocatedUsageQuantity": q, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                for q, tags in allocations
            ],
        )

    with pytest.raises(m.exceptions.InvalidUsageAllocationsException):
        meter((4, {"team": "a"}), (5, {"team": "b"}))
    with pytest.raises(m.exceptions.InvalidUsageAllocationsException):
        meter((4, {"team": "a"}), (6, {"team": "a"}))  # the same tag set twice
    with pytest.raises(m.exceptions.InvalidTagException):
        meter((10, {f"k{n}": "v" for n in range(6)}))
    with pytest.raises(m.exceptions.InvalidTagException):
        meter((10, {"cost~center": "x"}))
    with pytest.raises(m.exceptions.InvalidTagException):
        meter((10, {"team": "é"}))
    assert live.stored() == []

    record_id = meter((4, {"team": "a", "env": "prod"}), (6, {"team": "b"}))["MeteringRecordId"]
    [seen] = live.api("GET", "/usage", "acme-token").json()["records"]
    assert seen["metering_record_id"] == record_id
    assert seen["allocations"] == [
        {"quantity": 4, "tags": {"env": "prod", "team": "a"}},
        {"quantity": 6, "tags": {"team": "b"}},
    ]


def test_meter_usage_dry_run_checks_without_storing(live: Live) -> None:
    m = live.metering()
    usage = {"ProductCode": GATEWAY, "Timestamp": live.hour, "UsageDimension": "calls", "ClientToken": "dry-1"}
    refused(lambda: m.meter_usage(DryRun=True, UsageQuantity=3, **usage), "DryRunOperation")
    with pytest.raises(m.exceptions.InvalidUsageDimensionException):
        m.meter_usage(DryRun=True, UsageQuantity=3, **{**usage, "UsageDimension": "bogus"})
    assert live.stored() == []

    # Neither the hour nor the client token was taken by the dry run.
    record_id = m.meter_usage(UsageQuantity=4, **usage)["MeteringRecordId"]
    with pytest.raises(m.exceptions.DuplicateRequestException):  # a dry run sees what a real call would
        m.meter_usage(DryRun=True, UsageQuantity=5, **{**usage, "ClientToken": "dry-2"})
    assert [(r[0], r[3], r[4]) for r in live.stored()] == [(record_id, 4, "dry-1")]


def test_meter_usage_with_a_sellers_key_is_refused(live: Live) -> None:
    """MeterUsage is called by the buyer's deployment; the seller reports through BatchMeterUsage."""
    m = live.metering(SELLER_KEY)
    refused(
        lambda: m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=1),
        "AccessDeniedException",
    )
    assert live.stored() == []


# --- BatchMeterUsage --------------------------------------------------------------------------------------


def record(at: datetime, dimension: str = "users", quantity: int = 1, customer: str = "cust-1") -> dict[str, Any]:
    return {"Timestamp": at, "CustomerIdentifier": customer, "Dimension": dimension, "Quantity": quantity}


def statuses(answer: dict[str, Any]) -> list[str]:
    return [result["Status"] for result in answer["Results"]]


@pytest.mark.rule("MTR-04")
@pytest.mark.rule("MTR-05")
def test_batch_answers_each_record_and_stores_the_accepted_once_MTR_04_MTR_05(live: Live) -> None:
    m = live.metering(SELLER_KEY)
    by_account = {"Timestamp": live.hour, "CustomerAWSAccountId": BUYER, "Dimension": "requests", "Quantity": 7}
    records = [
        record(live.hour, quantity=3),
        record(live.hour, customer="cust-9"),  # no such customer
        by_account,
        record(live.hour + timedelta(minutes=10), quantity=2, customer="cust-2"),
    ]
    answer = m.batch_meter_usage(ProductCode=SAAS, UsageRecords=records)
    assert statuses(answer) == ["Success", "CustomerNotSubscribed", "Success", "Success"]
    assert answer["UnprocessedRecords"] == []
    echoed = answer["Results"][2]["UsageRecord"]
    assert (echoed["CustomerAWSAccountId"], echoed["Dimension"], echoed["Quantity"]) == (BUYER, "requests", 7)
    assert echoed["Timestamp"] == live.hour
    assert "MeteringRecordId" not in answer["Results"][1]
    ids = [result.get("MeteringRecordId") for result in answer["Results"]]
    assert [(r[0], r[1], r[2], r[3]) for r in live.stored()] == [
        (ids[0], epoch(live.hour), "users", 3),
        (ids[2], epoch(live.hour), "requests", 7),
        (ids[3], epoch(live.hour), "users", 2),
    ]

    # MTR-05: the identical record again (by identifier or by account) is a success with the first id; the same
    # key with another quantity is a per-record DuplicateRecord.
    again = m.batch_meter_usage(
        ProductCode=SAAS,
        UsageRecords=[
            record(live.hour + timedelta(minutes=59), quantity=3),
            {**by_account, "Quantity": 8},
            {"Timestamp": live.hour, "CustomerAWSAccountId": BUYER, "Dimension": "users", "Quantity": 3},
        ],
    )
    assert statuses(again) == ["Success", "DuplicateRecord", "Success"]
    assert again["Results"][0]["MeteringRecordId"] == again["Results"][2]["MeteringRecordId"] == ids[0]
    assert "MeteringRecordId" not in again["Results"][1]
    assert [r[3] for r in live.stored()] == [3, 7, 2]
    usage = live.api("GET", "/usage", "acme-token", params={"product": SAAS}).json()["records"]
    assert [(u["customer_identifier"], u["dimension"], u["quantity"]) for u in usage] == [
        ("cust-1", "users", 3),
        ("cust-1", "requests", 7),
        ("cust-2", "users", 2),
    ]


@pytest.mark.rule("MTR-05")
def test_batch_repeating_a_record_inside_one_request_stores_it_once_MTR_05(live: Live) -> None:
    m = live.metering(SELLER_KEY)
    answer = m.batch_meter_usage(
        ProductCode=SAAS,
        UsageRecords=[record(live.hour, quantity=3), record(live.hour, quantity=3), record(live.hour, quantity=4)],
    )
    assert statuses(answer) == ["Success", "Success", "DuplicateRecord"]
    assert answer["Results"][0]["MeteringRecordId"] == answer["Results"][1]["MeteringRecordId"]
    assert [(r[0], r[3]) for r in live.stored()] == [(answer["Results"][0]["MeteringRecordId"], 3)]


@pytest.mark.rule("MTR-04")
def test_batch_usage_outside_the_subscription_is_customer_not_subscribed_MTR_04(live: Live) -> None:
    """MTR-04: usage after a cancellation, or before a subscription began, is refused per record. Usage from
    before the cancellation is still accepted (the seller has an hour to send its last records, SUB-06)."""
    subscriptions = live.api("GET", "/subscriptions", "other-buyer-token").json()
    [cust_2] = [s["id"] for s in subscriptions if s["customer_identifier"] == "cust-2"]
    live.clock.advance(timedelta(seconds=-30))  # cancelled half a minute ago
    assert live.api("POST", f"/subscriptions/{cust_2}/cancel", "other-buyer-token").status_code == 200
    live.clock.set(live.now)
    subscribed = live.api("POST", "/subscriptions", "unsubscribed-token", json={"product": SAAS, "accept_eula": True})
    assert subscribed.status_code == 201, subscribed.text
    newcomer = subscribed.json()["customer_identifier"]

    m = live.metering(SELLER_KEY)
    answer = m.batch_meter_usage(
        ProductCode=SAAS,
        UsageRecords=[
            record(live.now - timedelta(seconds=31), customer="cust-2"),
            record(live.now - timedelta(seconds=30), dimension="requests", customer="cust-2"),
            record(live.now - timedelta(minutes=1), customer=newcomer),
            record(live.now, dimension="requests", customer=newcomer),
        ],
    )
    assert statuses(answer) == ["Success", "CustomerNotSubscribed", "CustomerNotSubscribed", "Success"]
    assert [(r[2], r[3]) for r in live.stored()] == [("users", 1), ("requests", 1)]


def test_batch_of_26_records_is_refused_whole(live: Live) -> None:
    """api-surface §1.5.2: at most 25 records; botocore does not check the maximum, the server does."""
    m = live.metering(SELLER_KEY)
    records = [record(live.hour - timedelta(hours=n % 3), customer=f"cust-{1 + n // 3 % 2}") for n in range(26)]
    error = refused(lambda: m.batch_meter_usage(ProductCode=SAAS, UsageRecords=records), "ValidationException")
    assert "25" in error.response["Error"]["Message"]
    assert live.stored() == []


@pytest.mark.rule("MTR-04")
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (lambda live: record(live.now - timedelta(hours=6)), "TimestampOutOfBoundsException"),
        (lambda live: record(live.now + timedelta(minutes=5)), "TimestampOutOfBoundsException"),
        (lambda live: record(live.hour, dimension="bogus"), "InvalidUsageDimensionException"),
        (lambda live: {**record(live.hour), "CustomerAWSAccountId": BUYER}, "InvalidCustomerIdentifierException"),
        (
            lambda live: {"Timestamp": live.hour, "CustomerAWSAccountId": "12ab", "Dimension": "users"},
            "InvalidCustomerIdentifierException",
        ),
        (
            lambda live: {**record(live.hour), "LicenseArn": "arn:aws:license-manager::1:license:l-1"},
            "InvalidLicenseException",
        ),
    ],
    ids=["6h-ago", "future", "unknown-dimension", "identifier-and-account", "bad-account", "license-arn"],
)
def test_one_bad_record_refuses_the_whole_batch_MTR_04(
    live: Live, bad: Callable[[Live], dict[str, Any]], error: str
) -> None:
    """MTR-04 with AWS's batch semantics: one bad record and nothing of the batch is stored."""
    m = live.metering(SELLER_KEY)
    records = [record(live.hour, quantity=3), bad(live), record(live.hour, dimension="requests")]
    with pytest.raises(ClientError) as caught:
        m.batch_meter_usage(ProductCode=SAAS, UsageRecords=records)
    assert caught.value.response["Error"]["Code"] == error
    assert isinstance(caught.value, getattr(m.exceptions, error))
    assert "UsageRecords[1]" in caught.value.response["Error"]["Message"]
    assert live.stored() == []


@pytest.mark.rule("MTR-04")
def test_batch_for_a_product_the_seller_does_not_own_is_an_invalid_product_MTR_04(live: Live) -> None:
    m = live.metering(SELLER_KEY)
    for code in (OTHER, "acme-nothing", "bad code!!"):
        with pytest.raises(m.exceptions.InvalidProductCodeException):
            m.batch_meter_usage(ProductCode=code, UsageRecords=[record(live.hour, customer="gx-1")])
    with pytest.raises(m.exceptions.InvalidProductCodeException):
        m.batch_meter_usage(UsageRecords=[record(live.hour)])  # ProductCode is optional in the newest models
    assert live.stored() == []


@pytest.mark.parametrize(
    ("code", "dimension", "customer"),
    [(GATEWAY, "calls", "gw-1"), (CONTAINER, "calls", "ctr-1"), (ML, "calls", "ml-1")],
    ids=["ami", "container", "ml"],
)
def test_batch_for_a_product_metered_by_the_buyers_deployment_is_an_invalid_product(
    live: Live, code: str, dimension: str, customer: str
) -> None:
    """api-surface §1.1/§1.2: BatchMeterUsage is the SaaS operation, called by the seller; server images and
    containers meter with MeterUsage from the buyer's deployment (ML products are metered by the platform).
    The product's kind is checked before its dimensions, and the whole batch is refused."""
    m = live.metering(SELLER_KEY)
    with pytest.raises(m.exceptions.InvalidProductCodeException) as caught:
        m.batch_meter_usage(ProductCode=code, UsageRecords=[record(live.hour, dimension, 1, customer)])
    message = caught.value.response["Error"]["Message"]
    assert "UsageRecords[0]" in message and "MeterUsage" in message and "not processed" in message
    assert live.stored() == []
    if code == GATEWAY:  # the same usage through the operation for AMI products is accepted
        live.metering().meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=1)
        assert [(r[2], r[3]) for r in live.stored()] == [("calls", 1)]


@pytest.mark.rule("MTR-03")
def test_batch_sent_to_a_region_the_product_is_not_in_is_refused_MTR_03(live: Live) -> None:
    m = live.metering(SELLER_KEY)
    with pytest.raises(m.exceptions.InvalidEndpointRegionException):
        m.batch_meter_usage(ProductCode=EU_ONLY, UsageRecords=[record(live.hour, customer="eu-1")])
    elsewhere = live.metering(SELLER_KEY, region="eu-west-1")
    with pytest.raises(elsewhere.exceptions.InvalidEndpointRegionException):
        elsewhere.batch_meter_usage(ProductCode=SAAS, UsageRecords=[record(live.hour)])
    assert live.stored() == []


@pytest.mark.rule("PRC-14")
@pytest.mark.rule("MTR-04")
def test_an_item_the_platform_reports_cannot_be_sent_PRC_14(live: Live) -> None:
    m = live.metering(SELLER_KEY)
    customer = "si-1000001"
    with pytest.raises(m.exceptions.InvalidUsageDimensionException) as caught:
        m.batch_meter_usage(
            ProductCode=MANAGED,
            UsageRecords=[record(live.hour, "queries", 10, customer), record(live.hour, "storage", 10, customer)],
        )
    assert "PRC-14" in caught.value.response["Error"]["Message"]
    assert live.stored() == []
    answer = m.batch_meter_usage(ProductCode=MANAGED, UsageRecords=[record(live.hour, "queries", 10, customer)])
    assert statuses(answer) == ["Success"]
    assert [(r[2], r[3]) for r in live.stored()] == [("queries", 10)]


def test_batch_with_a_buyers_key_is_refused(live: Live) -> None:
    m = live.metering(BUYER_KEY)
    refused(lambda: m.batch_meter_usage(ProductCode=SAAS, UsageRecords=[record(live.hour)]), "AccessDeniedException")
    assert live.stored() == []


def test_batch_of_no_records_answers_no_results(live: Live) -> None:
    answer = live.metering(SELLER_KEY).batch_meter_usage(ProductCode=SAAS, UsageRecords=[])
    assert (answer["Results"], answer["UnprocessedRecords"]) == ([], [])


# --- SigV4 ------------------------------------------------------------------------------------------------


def meter_one(m: Any, live: Live) -> Any:
    return m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=1)


def test_a_wrong_secret_is_an_invalid_signature(live: Live) -> None:
    m = live.metering((BUYER_KEY[0], "not-the-secret"))
    error = refused(lambda: meter_one(m, live), "InvalidSignatureException")
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert live.stored() == []


def test_an_unknown_or_revoked_key_is_unrecognized(live: Live) -> None:
    refused(lambda: meter_one(live.metering(("AKIDNOBODY000001", "whatever")), live), "UnrecognizedClientException")
    m = live.metering()
    meter_one(m, live)
    revoked = live.api("DELETE", f"/keys/{BUYER_KEY[0]}", "buyer-token")
    assert revoked.status_code == 200, revoked.text
    refused(lambda: meter_one(m, live), "UnrecognizedClientException")

    # Revoked elsewhere (another process, or the database directly): refused once this process's credential
    # cache lets go of the key, within ACCESS_KEY_TTL; forgetting it stands for that time passing.
    other = live.metering(OTHER_BUYER_KEY)
    refused(lambda: meter_one(other, live), "CustomerNotEntitledException")
    with live.db.unit_of_work() as session:
        session.execute(
            update(AccessKey).where(AccessKey.access_key_id == OTHER_BUYER_KEY[0]).values(revoked_at=live.now)
        )
    forget_access_keys()
    refused(lambda: meter_one(other, live), "UnrecognizedClientException")
    assert len(live.stored()) == 1


@pytest.mark.parametrize(("skew", "says"), [(16, "Signature expired"), (-16, "Signature not yet current")])
def test_a_signature_more_than_15_minutes_off_the_servers_clock_is_refused(live: Live, skew: int, says: str) -> None:
    live.clock.advance(timedelta(minutes=skew))  # the client signs with the real time
    error = refused(lambda: meter_one(live.metering(), live), "InvalidSignatureException")
    assert says in error.response["Error"]["Message"]
    live.clock.set(live.now)
    meter_one(live.metering(), live)


def test_an_unsigned_request_is_refused(live: Live) -> None:
    m = live.metering(signature_version=botocore.UNSIGNED)
    refused(lambda: meter_one(m, live), "MissingAuthenticationTokenException")
    assert live.stored() == []


# --- ResolveCustomer --------------------------------------------------------------------------------------


def subscribe_to_saas(live: Live) -> dict[str, Any]:
    response = live.api("POST", "/subscriptions", "unsubscribed-token", json={"product": SAAS, "accept_eula": True})
    assert response.status_code == 201, response.text
    subscription: dict[str, Any] = response.json()
    return subscription


@pytest.mark.rule("SUB-06")
def test_resolve_customer_turns_the_registration_token_into_the_customer_SUB_06(live: Live) -> None:
    subscription = subscribe_to_saas(live)
    token = subscription["fulfillment"]["registration_token"]
    m = live.metering(SELLER_KEY)
    resolved = m.resolve_customer(RegistrationToken=token)
    assert resolved["CustomerIdentifier"] == subscription["customer_identifier"]
    assert (resolved["ProductCode"], resolved["CustomerAWSAccountId"]) == (SAAS, UNSUBSCRIBED_BUYER)
    assert resolved["ResponseMetadata"]["RequestId"] == resolved["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

    answer = m.batch_meter_usage(
        ProductCode=SAAS, UsageRecords=[record(live.now, customer=resolved["CustomerIdentifier"])]
    )
    assert statuses(answer) == ["Success"]


@pytest.mark.rule("SUB-06")
def test_resolve_customer_after_the_token_lifetime_is_an_expired_token_SUB_06(live: Live) -> None:
    """The token is issued two hours before now (an hour is its lifetime), so that the server's clock and the
    SDK's signing clock still agree when it is resolved."""
    live.clock.set(live.now - timedelta(hours=2))
    token = subscribe_to_saas(live)["fulfillment"]["registration_token"]
    live.clock.set(live.now)
    m = live.metering(SELLER_KEY)
    with pytest.raises(m.exceptions.ExpiredTokenException):
        m.resolve_customer(RegistrationToken=token)


@pytest.mark.rule("SUB-06")
def test_resolve_customer_resolves_a_token_once_SUB_06(live: Live) -> None:
    """api-surface §1.5.10: a reused token is an expired token. The use is durable (a new server process, or
    another one sharing the database, refuses it too), and concurrent resolutions let exactly one through."""
    subscription = subscribe_to_saas(live)
    token = subscription["fulfillment"]["registration_token"]
    m = live.metering(SELLER_KEY)
    assert m.resolve_customer(RegistrationToken=token)["CustomerIdentifier"] == subscription["customer_identifier"]
    with pytest.raises(m.exceptions.ExpiredTokenException) as caught:
        m.resolve_customer(RegistrationToken=token)
    assert "already resolved" in caught.value.response["Error"]["Message"]
    with live_server(live.db) as other_process:
        again = boto3.client(
            "meteringmarketplace",
            endpoint_url=other_process,
            region_name=REGION,
            aws_access_key_id=SELLER_KEY[0],
            aws_secret_access_key=SELLER_KEY[1],
            config=ONE_ATTEMPT,
        )
        with pytest.raises(again.exceptions.ExpiredTokenException):
            again.resolve_customer(RegistrationToken=token)
    native = live.api("POST", "/fulfillment/resolve", "acme-token", json={"registration_token": token})
    assert (native.status_code, native.json()["error"]) == (400, "expired_token")

    # A fresh token (a new subscription), resolved by eight clients at once.
    cancelled = live.api("POST", f"/subscriptions/{subscription['id']}/cancel", "unsubscribed-token")
    assert cancelled.status_code == 200, cancelled.text
    fresh = subscribe_to_saas(live)["fulfillment"]["registration_token"]

    def resolve(client: Any) -> str:
        try:
            client.resolve_customer(RegistrationToken=fresh)
        except client.exceptions.ExpiredTokenException:
            return "expired"
        return "resolved"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(resolve, [live.metering(SELLER_KEY) for _ in range(8)]))
    assert sorted(answers) == ["expired"] * 7 + ["resolved"]


@pytest.mark.rule("SUB-06")
def test_resolve_customer_refuses_garbage_and_other_sellers_SUB_06(live: Live) -> None:
    token = subscribe_to_saas(live)["fulfillment"]["registration_token"]
    m = live.metering(SELLER_KEY)
    with pytest.raises(m.exceptions.InvalidTokenException):
        m.resolve_customer(RegistrationToken="not-a-token")
    with pytest.raises(m.exceptions.InvalidTokenException):
        m.resolve_customer(RegistrationToken=token[:-4] + "AAAA")
    other = live.metering(OTHER_SELLER_KEY)
    with pytest.raises(other.exceptions.InvalidTokenException):
        other.resolve_customer(RegistrationToken=token)
    refused(lambda: live.metering(BUYER_KEY).resolve_customer(RegistrationToken=token), "AccessDeniedException")
    # None of the refused attempts used the token up.
    assert m.resolve_customer(RegistrationToken=token)["ProductCode"] == SAAS


# --- GetEntitlements --------------------------------------------------------------------------------------


def entitlements(answer: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [
        (e["CustomerIdentifier"], e["CustomerAWSAccountId"], e["Dimension"], e["Value"]["IntegerValue"])
        for e in answer["Entitlements"]
    ]


@pytest.mark.rule("SUB-07")
def test_get_entitlements_answers_the_contracts_quantities_and_expiry_SUB_07(live: Live) -> None:
    e = live.entitlement()
    answer = e.get_entitlements(ProductCode=CONTRACT)
    assert entitlements(answer) == [
        ("ct-1", BUYER, "admins", 2),
        ("ct-1", BUYER, "seats", 10),
        ("ct-2", OTHER_BUYER, "seats", 5),
    ]
    expires = add_months(live.now - timedelta(days=1), 12)
    assert {item["ExpirationDate"] for item in answer["Entitlements"]} == {expires}
    assert {item["ProductCode"] for item in answer["Entitlements"]} == {CONTRACT}
    assert "NextToken" not in answer
    assert answer["ResponseMetadata"]["RequestId"] == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

    def filtered(**names: list[str]) -> list[tuple[str, str, str, int]]:
        return entitlements(e.get_entitlements(ProductCode=CONTRACT, Filter=names))

    assert filtered(CUSTOMER_IDENTIFIER=["ct-1"]) == [("ct-1", BUYER, "admins", 2), ("ct-1", BUYER, "seats", 10)]
    assert filtered(CUSTOMER_IDENTIFIER=["ct-1", "ct-2"], DIMENSION=["seats"]) == [
        ("ct-1", BUYER, "seats", 10),
        ("ct-2", OTHER_BUYER, "seats", 5),
    ]
    assert filtered(CUSTOMER_AWS_ACCOUNT_ID=[OTHER_BUYER]) == [("ct-2", OTHER_BUYER, "seats", 5)]
    assert filtered(DIMENSION=["admins"], CUSTOMER_AWS_ACCOUNT_ID=[OTHER_BUYER]) == []

    for bad in (
        {"Filter": {"CUSTOMER_IDENTIFIER": ["ct-1"], "CUSTOMER_AWS_ACCOUNT_ID": [BUYER]}},
        {"Filter": {"COLOUR": ["blue"]}},
        {"MaxResults": 26},
        {"NextToken": "forged"},
    ):
        with pytest.raises(e.exceptions.InvalidParameterException):
            e.get_entitlements(ProductCode=CONTRACT, **bad)

    assert live.entitlement(OTHER_SELLER_KEY).get_entitlements(ProductCode=CONTRACT)["Entitlements"] == []
    assert e.get_entitlements(ProductCode=OTHER)["Entitlements"] == []


@pytest.mark.rule("SUB-07")
@pytest.mark.parametrize("region", ["eu-west-1", "us-west-2"])
def test_get_entitlements_is_served_in_the_marketplaces_region_only_SUB_07(live: Live, region: str) -> None:
    """api-surface §2: the entitlement service runs in us-east-1 only. A request signed for another region is
    refused with the model's client error, for a product offered in that region as well (entitlements are not
    regional), and nothing about the contracts is revealed."""
    e = live.entitlement(region=region)
    for code in (CONTRACT, EU_ONLY):
        with pytest.raises(e.exceptions.InvalidParameterException) as caught:
            e.get_entitlements(ProductCode=code)
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert REGION in error["Error"]["Message"] and region in error["Error"]["Message"]
        assert "Entitlements" not in error
    assert len(live.entitlement().get_entitlements(ProductCode=CONTRACT)["Entitlements"]) == 3
    assert live.entitlement().get_entitlements(ProductCode=EU_ONLY)["Entitlements"] == []  # answered, not refused


@pytest.mark.rule("SUB-07")
def test_the_paginator_walks_every_entitlement_once_SUB_07(live: Live) -> None:
    paginator = live.entitlement().get_paginator("get_entitlements")
    pages = list(paginator.paginate(ProductCode=CONTRACT, PaginationConfig={"PageSize": 1}))
    assert [len(page["Entitlements"]) for page in pages] == [1, 1, 1]
    assert [item for page in pages for item in entitlements(page)] == [
        ("ct-1", BUYER, "admins", 2),
        ("ct-1", BUYER, "seats", 10),
        ("ct-2", OTHER_BUYER, "seats", 5),
    ]


@pytest.mark.rule("SUB-07")
def test_the_paginator_walks_more_than_a_page_of_entitlements_SUB_07(db: Database) -> None:
    accounts = [f"9000000000{n:02d}" for n in range(30)]
    with serving(db, contract_buyers=accounts) as live:
        paginator = live.entitlement().get_paginator("get_entitlements")
        pages = list(paginator.paginate(ProductCode=CONTRACT, Filter={"DIMENSION": ["seats"]}))
    assert [len(page["Entitlements"]) for page in pages] == [25, 7]
    seen = [(customer, account) for page in pages for customer, account, _, _ in entitlements(page)]
    assert len(seen) == len(set(seen)) == 32
    assert {account for _, account in seen} == {BUYER, OTHER_BUYER, *accounts}


# --- RegisterUsage ----------------------------------------------------------------------------------------


def test_register_usage_answers_a_signed_entitlement_token(live: Live) -> None:
    answer = live.metering().register_usage(ProductCode=CONTAINER, PublicKeyVersion=1, Nonce="nonce-42")
    claims = jwt.decode(answer["Signature"], registration.public_key_pem(), algorithms=["EdDSA"])
    assert (claims["productCode"], claims["nonce"], claims["customerAWSAccountId"]) == (CONTAINER, "nonce-42", BUYER)
    assert (claims["customerIdentifier"], claims["publicKeyVersion"]) == ("ctr-1", 1)
    assert claims["iat"] == epoch(live.now)
    assert answer["ResponseMetadata"]["RequestId"] == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_register_usage_refusals(live: Live) -> None:
    m = live.metering()
    with pytest.raises(m.exceptions.InvalidPublicKeyVersionException):
        m.register_usage(ProductCode=CONTAINER, PublicKeyVersion=2)
    with pytest.raises(m.exceptions.PlatformNotSupportedException):
        m.register_usage(ProductCode=GATEWAY, PublicKeyVersion=1)
    with pytest.raises(m.exceptions.InvalidProductCodeException):
        m.register_usage(ProductCode="acme-nothing", PublicKeyVersion=1)
    unsubscribed = live.metering(UNSUBSCRIBED_KEY)
    with pytest.raises(unsubscribed.exceptions.CustomerNotEntitledException):
        unsubscribed.register_usage(ProductCode=CONTAINER, PublicKeyVersion=1)
    elsewhere = live.metering(region="eu-west-1")
    with pytest.raises(elsewhere.exceptions.InvalidRegionException):
        elsewhere.register_usage(ProductCode=CONTAINER, PublicKeyVersion=1)
    refused(
        lambda: live.metering(SELLER_KEY).register_usage(ProductCode=CONTAINER, PublicKeyVersion=1),
        "AccessDeniedException",
    )


@pytest.mark.rule("MTR-04")
def test_meter_usage_outside_the_buyers_subscription_is_not_entitled_MTR_04(live: Live) -> None:
    """MTR-04 for MeterUsage: usage before the subscription began, or after it was cancelled, is refused;
    usage from before the cancellation is still accepted."""
    subscribed = live.api(
        "POST", "/subscriptions", "unsubscribed-token", json={"product": GATEWAY, "accept_eula": True}
    )
    assert subscribed.status_code == 201, subscribed.text
    newcomer = live.metering(UNSUBSCRIBED_KEY)
    with pytest.raises(newcomer.exceptions.CustomerNotEntitledException):
        newcomer.meter_usage(
            ProductCode=GATEWAY, Timestamp=live.now - timedelta(seconds=1), UsageDimension="calls", UsageQuantity=1
        )
    newcomer.meter_usage(ProductCode=GATEWAY, Timestamp=live.now, UsageDimension="calls", UsageQuantity=1)

    [gw_1] = [s["id"] for s in live.api("GET", "/subscriptions", "buyer-token").json() if s["product"] == GATEWAY]
    live.clock.advance(timedelta(seconds=-30))
    assert live.api("POST", f"/subscriptions/{gw_1}/cancel", "buyer-token").status_code == 200
    live.clock.set(live.now)
    m = live.metering()
    m.meter_usage(
        ProductCode=GATEWAY, Timestamp=live.now - timedelta(seconds=31), UsageDimension="calls", UsageQuantity=2
    )
    with pytest.raises(m.exceptions.CustomerNotEntitledException):
        m.meter_usage(
            ProductCode=GATEWAY, Timestamp=live.now - timedelta(seconds=30), UsageDimension="calls", UsageQuantity=3
        )
    assert sorted(r[3] for r in live.stored()) == [1, 2]


@pytest.mark.rule("MTR-05")
def test_identical_records_sent_at_once_are_stored_once_MTR_05(live: Live) -> None:
    """MTR-05 under a race: eight clients resend the same record concurrently (as retrying software does)."""
    clients = [live.metering() for _ in range(8)]
    sellers = [live.metering(SELLER_KEY) for _ in range(8)]

    def meter(m: Any) -> str:
        answer = m.meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls", UsageQuantity=5)
        record_id: str = answer["MeteringRecordId"]
        return record_id

    def batch(m: Any) -> str:
        [result] = m.batch_meter_usage(ProductCode=SAAS, UsageRecords=[record(live.hour, quantity=5)])["Results"]
        assert result["Status"] == "Success"
        record_id: str = result["MeteringRecordId"]
        return record_id

    with ThreadPoolExecutor(16) as pool:
        metered = list(pool.map(meter, clients))
        batched = list(pool.map(batch, sellers))
    assert len(set(metered)) == len(set(batched)) == 1
    assert sorted(r[0] for r in live.stored()) == sorted({*metered, *batched})


# --- hostile input (issue 15): always the AWS error shape, a 4xx for the caller's fault -------------------------


def signed_post(live: Live, target: str, body: bytes, key: Key = SELLER_KEY) -> httpx.Response:
    """A raw request signed as botocore signs one, for bodies boto3 cannot produce."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    request = AWSRequest(method="POST", url=f"{live.url}/", data=body, headers=headers)
    SigV4Auth(Credentials(*key), "aws-marketplace", REGION).add_auth(request)
    return httpx.post(f"{live.url}/", content=body, headers=dict(request.headers.items()), timeout=30)


def test_json_nested_too_deep_is_a_serialization_error(live: Live) -> None:
    body = b'{"ProductCode": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = signed_post(live, "AWSMPMeteringService.BatchMeterUsage", body)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "SerializationException"


@pytest.mark.parametrize("token", ["o²", "o" + "9" * 5000, "o-1", "x1"])
def test_a_next_token_agora_did_not_issue_is_an_invalid_parameter(live: Live, token: str) -> None:
    error = refused(
        lambda: live.entitlement().get_entitlements(ProductCode=CONTRACT, NextToken=token), "InvalidParameterException"
    )
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_lone_surrogate_in_any_member_is_refused_naming_it(live: Live) -> None:
    bad = "\ud800"  # botocore sends it as the JSON escape "\ud800"
    calls: list[tuple[Callable[[], Any], str, str]] = [
        (lambda: live.metering().meter_usage(ProductCode=bad, Timestamp=live.hour, UsageDimension="calls"),
         "ValidationException", "ProductCode"),
        (lambda: live.metering().meter_usage(ProductCode=GATEWAY, Timestamp=live.hour, UsageDimension="calls",
                                             ClientToken=bad), "ValidationException", "ClientToken"),
        (lambda: live.metering(SELLER_KEY).batch_meter_usage(ProductCode=SAAS, UsageRecords=[
            {"Timestamp": live.hour, "CustomerIdentifier": "a\ud800", "Dimension": "users", "Quantity": 1}]),
         "ValidationException", "UsageRecords[0].CustomerIdentifier"),
        (lambda: live.metering(SELLER_KEY).resolve_customer(RegistrationToken=bad), "ValidationException",
         "RegistrationToken"),
        (lambda: live.entitlement().get_entitlements(ProductCode=bad), "InvalidParameterException", "ProductCode"),
        (lambda: live.entitlement().get_entitlements(ProductCode=CONTRACT, Filter={"DIMENSION": ["x\x00"]}),
         "InvalidParameterException", "Filter.DIMENSION[0]"),
    ]  # fmt: skip
    for call, code, field in calls:
        error = refused(call, code)
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error.response["Error"]["Message"].startswith(f"{field} ")
    assert live.stored() == []


def test_a_lone_surrogate_sent_as_raw_bytes_is_refused_too(live: Live) -> None:
    """Without a JSON escape: Python's decoder reads bytes with `surrogatepass`, so the walk must not be skipped."""
    body = (
        b'{"ProductCode":"'
        + SAAS.encode()
        + b'","UsageRecords":[{"Timestamp":'
        + str(int(live.hour.timestamp())).encode()
        + b',"CustomerIdentifier":"a\xed\xa0\x80","Dimension":"users","Quantity":1}]}'
    )
    response = signed_post(live, "AWSMPMeteringService.BatchMeterUsage", body)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "ValidationException"
    assert response.json()["message"].startswith("UsageRecords[0].CustomerIdentifier ")
    assert live.stored() == []


def test_an_internal_fault_is_answered_in_the_aws_shape(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from agora.compat.aws import protocol

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(protocol.OPERATIONS, "AWSMPEntitlementService.GetEntitlements", broken)
    error = refused(lambda: live.entitlement().get_entitlements(ProductCode=CONTRACT), "InternalServiceErrorException")
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_the_front_door_answers_in_the_aws_shape_should_the_adapter_itself_fail(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agora.compat.aws import protocol

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(protocol, "handle", broken)
    error = refused(lambda: live.entitlement().get_entitlements(ProductCode=CONTRACT), "InternalServiceErrorException")
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
