"""The Alibaba Cloud front door as the SDKs see it: unmodified `market` 2015-11-01 and `computenestsupplier`
2021-05-21 clients (tea-openapi, V3 and v2 signatures) pushing metering to a live server, for success and every
refusal (api-surface.md §5-§7), with the database checked afterwards.

The SDK signs with the wall clock, so the server's clock is frozen at the real current second and the market's
subscriptions start a day before it; intervals are placed relative to that instant.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from alibabacloud_computenestsupplier20210521 import models as computenest_models
from alibabacloud_computenestsupplier20210521.client import Client as ComputeNestClient
from alibabacloud_market20151101 import models as market_models
from alibabacloud_market20151101.client import Client as MarketClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from sqlalchemy import select, update

from agora import clock
from agora.compat.alibaba import protocol
from agora.db import Database
from agora.models import Product, Subscription, UsageRecord
from tests.factories.metering import (
    BUYER,
    BUYER_KEY,
    MANAGED,
    MANAGED_2,
    OTHER_BUYER,
    OTHER_SELLER_KEY,
    SAAS,
    SELLER_KEY,
    metered_market,
)
from tests.live import live_server

INSTANCE = "si-1000001"  # BUYER's instance of MANAGED (acme-search: queries by the seller, storage by prometheus)
INSTANCE_2 = "si-1000002"  # OTHER_BUYER's instance of MANAGED
OTHER_PRODUCT_INSTANCE = "si-2000001"  # BUYER's instance of MANAGED_2 (acme-vector)
GLOBEX_INSTANCE = "gx-1"  # BUYER's subscription to globex's product
SAAS_INSTANCE = "cust-1"  # BUYER's subscription to acme's SaaS product
EU_INSTANCE = "eu-1"  # BUYER's subscription to a product offered only in eu-west-1
Key = tuple[str, str]
Row = tuple[str, int, int | None, str, int, str]


@dataclass(frozen=True)
class Live:
    db: Database
    url: str
    clock: clock.ManualClock
    now: datetime  # the server's frozen time, a whole second

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def start(self) -> int:
        """Two hours back: inside the 6-hour window (MTR-04) with room for several intervals after it."""
        return epoch(self.now - timedelta(hours=2))

    def config(self, key: Key = SELLER_KEY, scheme: str = "v3") -> Config:
        return Config(
            access_key_id=key[0],
            access_key_secret=key[1],
            endpoint=self.host,
            protocol="http",
            region_id="cn-hangzhou",
            signature_algorithm="v2" if scheme == "v2" else None,
        )

    def push(self, records: list[dict[str, Any]] | str, key: Key = SELLER_KEY, scheme: str = "v3") -> Any:
        """Marketplace PushMeteringData; `records` a list (sent as JSON) or the raw Metering text."""
        metering = records if isinstance(records, str) else json.dumps(records)
        request = market_models.PushMeteringDataRequest(metering=metering)
        return MarketClient(self.config(key, scheme)).push_metering_data(request)

    def push_service(
        self,
        instance: str | None,
        records: list[dict[str, Any]],
        key: Key = SELLER_KEY,
        scheme: str = "v3",
    ) -> Any:
        """Compute Nest PushMeteringData for the service instance `instance`."""
        request = computenest_models.PushMeteringDataRequest(service_instance_id=instance, metering=json.dumps(records))
        return ComputeNestClient(self.config(key, scheme)).push_metering_data(request)

    def stored(self) -> list[Row]:
        """(instance, period start, period end, dimension, quantity, source) of every stored record, oldest first."""
        c = UsageRecord
        with self.db.reader() as session:
            rows = session.execute(
                select(
                    Subscription.customer_identifier, c.period_start, c.period_end, c.dimension, c.quantity, c.source
                )
                .join(Subscription, Subscription.id == c.subscription_id)
                .order_by(c.id)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.use_clock(clock.ManualClock(now)) as frozen:
        assert isinstance(frozen, clock.ManualClock)
        metered_market(db, now - timedelta(days=1))
        with live_server(db) as url:
            yield Live(db, url, frozen, now)


def epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def record(
    instance: str | None, start: int | str, end: int | str | None = None, **entities: int | str
) -> dict[str, Any]:
    """One Metering record; `end` defaults to an hour after `start`, entities default to 10 queries."""
    if end is None:
        end = int(start) + 3600
    made: dict[str, Any] = {
        "StartTime": start,
        "EndTime": end,
        "Entities": [{"Key": k, "Value": v} for k, v in (entities or {"queries": 10}).items()],
    }
    if instance is not None:
        made["InstanceId"] = instance
    return made


def refused(call: Callable[[], Any], code: str, status: int = 400, live: Live | None = None) -> ClientException:
    """`call` fails with the Alibaba error `code` and HTTP `status`, the body carrying a request id (and the
    Host as HostId)."""
    with pytest.raises(ClientException) as caught:
        call()
    error = caught.value
    assert (error.code, error.status_code) == (code, status), error.data
    assert error.request_id and error.request_id == error.data["RequestId"]
    assert uuid.UUID(error.request_id).hex.upper() == error.request_id.replace("-", "")
    assert {"RequestId", "HostId", "Code", "Message"} <= set(error.data)  # the SDK adds statusCode
    if live is not None:
        assert error.data["HostId"] == live.host
    return error


def message(error: ClientException) -> str:
    text: str = error.data["Message"]
    return text


# --- success ---------------------------------------------------------------------------------------------


@pytest.mark.rule("MTR-01")
@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_market_push_stores_each_entity_for_its_interval_MTR_01(live: Live, scheme: str) -> None:
    """MTR-01: each entity becomes one record of the instance's product, customer and item, starting at StartTime;
    numbers and numeric strings are both accepted, and the record reads back through the native usage API."""
    start = live.start
    answer = live.push(
        [
            record(INSTANCE, str(start), str(start + 600), queries="96"),
            record(INSTANCE_2, start + 900, start + 1800, queries=7),
        ],
        scheme=scheme,
    )
    assert answer.status_code == 200
    assert answer.body.success is True
    uuid.UUID(answer.body.request_id)

    assert live.stored() == [
        (INSTANCE, start, start + 600, "queries", 96, "seller"),
        (INSTANCE_2, start + 900, start + 1800, "queries", 7, "seller"),
    ]
    rows = live.api("GET", "/usage", "acme-token", params={"product": MANAGED}).json()["records"]
    assert [(r["customer_identifier"], r["customer_account"], r["dimension"], r["quantity"]) for r in rows] == [
        (INSTANCE, BUYER, "queries", 96),
        (INSTANCE_2, OTHER_BUYER, "queries", 7),
    ]
    assert rows[0]["period_start"] == iso(start) and rows[0]["period_end"] == iso(start + 600)
    assert live.api("GET", "/usage", "globex-token").json()["records"] == []


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_compute_nest_push_stores_usage_of_the_service_instance(live: Live, scheme: str) -> None:
    """Records may omit InstanceId (the service instance is ServiceInstanceId) or repeat it."""
    start = live.start
    answer = live.push_service(
        INSTANCE,
        [record(None, start, start + 301, queries=3), record(INSTANCE, start + 3600, queries=4)],
        scheme=scheme,
    )
    assert answer.status_code == 200
    uuid.UUID(answer.body.request_id)
    assert live.stored() == [
        (INSTANCE, start, start + 301, "queries", 3, "seller"),
        (INSTANCE, start + 3600, start + 7200, "queries", 4, "seller"),
    ]


def test_a_push_of_100_records_is_accepted(live: Live) -> None:
    """Back-to-back intervals of just over 5 minutes, 50 for each of two instances (one instance's intervals
    must not overlap, MTR-05)."""
    start = epoch(live.now - timedelta(hours=5))
    live.push(
        [
            record(instance, start + 301 * n, start + 301 * (n + 1))
            for n in range(50)
            for instance in (INSTANCE, INSTANCE_2)
        ]
    )
    assert len(live.stored()) == 100


# --- signatures and callers --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_a_wrong_secret_does_not_match(live: Live, scheme: str) -> None:
    call = lambda: live.push([record(INSTANCE, live.start)], key=(SELLER_KEY[0], "not-the-secret"), scheme=scheme)  # noqa: E731
    refused(call, "SignatureDoesNotMatch", 400, live)
    assert live.stored() == []


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_an_unknown_access_key_is_not_found(live: Live, scheme: str) -> None:
    call = lambda: live.push([record(INSTANCE, live.start)], key=("LTAInobody", "secret"), scheme=scheme)  # noqa: E731
    refused(call, "InvalidAccessKeyId.NotFound", 404, live)


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_a_request_signed_16_minutes_away_from_the_server_clock_is_expired(live: Live, scheme: str) -> None:
    live.clock.advance(timedelta(minutes=16))
    error = refused(lambda: live.push([record(INSTANCE, live.start)], scheme=scheme), "InvalidTimeStamp.Expired")
    assert "15 minutes" in message(error)
    assert live.stored() == []


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_a_buyer_key_cannot_push_metering(live: Live, scheme: str) -> None:
    error = refused(
        lambda: live.push([record(INSTANCE, live.start)], key=BUYER_KEY, scheme=scheme), "Forbidden.AccessDenied", 403
    )
    assert "seller's access key" in message(error) and BUYER in message(error)
    refused(
        lambda: live.push_service(INSTANCE, [record(None, live.start)], key=BUYER_KEY), "Forbidden.AccessDenied", 403
    )
    assert live.stored() == []


def test_another_action_is_not_found(live: Live) -> None:
    """Actions Agora does not serve (here the buyer's DescribeOrder; the seller's DescribeOrderForIsv is served)
    answer InvalidAction.NotFound."""
    client = MarketClient(live.config())
    error = refused(
        lambda: client.describe_order(market_models.DescribeOrderRequest(order_id="1")),
        "InvalidAction.NotFound",
        404,
        live,
    )
    assert "DescribeOrder" in message(error)


# --- instances ---------------------------------------------------------------------------------------------


@pytest.mark.rule("MTR-04")
def test_an_unknown_instance_is_not_found_MTR_04(live: Live) -> None:
    error = refused(lambda: live.push([record("si-9999999", live.start)]), "InvalidInstance.NotFound", 404, live)
    assert "si-9999999" in message(error) and "Metering[0]" in message(error)
    refused(lambda: live.push_service("si-9999999", [record(None, live.start)]), "InvalidInstance.NotFound", 404)
    assert live.stored() == []


@pytest.mark.rule("MTR-04")
def test_another_sellers_instance_is_not_found_MTR_04(live: Live) -> None:
    """An instance of globex's product, pushed by acme, and acme's instance pushed by globex: neither exists for
    the caller."""
    refused(lambda: live.push([record(GLOBEX_INSTANCE, live.start, users=1)]), "InvalidInstance.NotFound", 404)
    refused(lambda: live.push([record(INSTANCE, live.start)], key=OTHER_SELLER_KEY), "InvalidInstance.NotFound", 404)
    refused(
        lambda: live.push_service(INSTANCE, [record(None, live.start)], key=OTHER_SELLER_KEY),
        "InvalidInstance.NotFound",
        404,
    )
    assert live.stored() == []


def test_compute_nest_pushes_for_managed_service_instances_only(live: Live) -> None:
    """A SaaS subscription is a Marketplace instance, not a Compute Nest service instance."""
    error = refused(
        lambda: live.push_service(SAAS_INSTANCE, [record(None, live.start, users=1)]), "InvalidInstance.NotFound", 404
    )
    assert "managed services" in message(error)
    live.push([record(SAAS_INSTANCE, live.start, users=1)])  # through the Marketplace API it is accepted
    with live.db.reader() as session:
        [product] = session.scalars(select(Product.code).join(UsageRecord, UsageRecord.product_id == Product.id))
    assert product == SAAS


def test_compute_nest_records_name_their_service_instance_or_none(live: Live) -> None:
    error = refused(
        lambda: live.push_service(INSTANCE, [record(INSTANCE_2, live.start)]), "InvalidParameter.InstanceId"
    )
    assert INSTANCE in message(error) and INSTANCE_2 in message(error)
    refused(lambda: live.push_service(None, [record(None, live.start)]), "MissingParameter.ServiceInstanceId")
    assert live.stored() == []


def test_all_instances_of_a_push_belong_to_one_product(live: Live) -> None:
    error = refused(
        lambda: live.push([record(INSTANCE, live.start), record(OTHER_PRODUCT_INSTANCE, live.start, vectors=5)]),
        "InvalidParameter.InstanceId",
        400,
        live,
    )
    assert MANAGED in message(error) and MANAGED_2 in message(error)
    assert live.stored() == []
    live.push([record(OTHER_PRODUCT_INSTANCE, live.start, vectors=5)])  # on its own it is accepted
    assert [row[3] for row in live.stored()] == ["vectors"]


@pytest.mark.rule("MTR-04")
def test_usage_of_an_instance_whose_subscription_ended_is_refused_MTR_04(live: Live) -> None:
    with live.db.unit_of_work() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_identifier == INSTANCE)
            .values(ended_at=live.now - timedelta(hours=3))
        )
    error = refused(lambda: live.push([record(INSTANCE, live.start)]), "InvalidInstance.NotActive")
    assert "MTR-04" in message(error)
    assert live.stored() == []


@pytest.mark.rule("MTR-03")
def test_an_instance_of_a_product_not_offered_in_this_region_is_refused_MTR_03(live: Live) -> None:
    error = refused(lambda: live.push([record(EU_INSTANCE, live.start, users=1)]), "InvalidParameter.Region")
    assert "us-east-1" in message(error) and "MTR-03" in message(error)
    assert live.stored() == []


# --- keys and values ---------------------------------------------------------------------------------------


@pytest.mark.rule("MTR-04")
def test_an_unknown_key_is_refused_MTR_04(live: Live) -> None:
    error = refused(lambda: live.push([record(INSTANCE, live.start, Frequency=1)]), "InvalidParameter.Key")
    assert "Frequency" in message(error) and "queries" in message(error) and "MTR-04" in message(error)
    assert live.stored() == []


@pytest.mark.rule("PRC-14")
def test_an_item_the_platform_reports_cannot_be_pushed_PRC_14(live: Live) -> None:
    """PRC-14: `storage` is scraped from the deployment's Prometheus metric; the seller cannot also report it."""
    error = refused(lambda: live.push([record(INSTANCE, live.start, storage=1024)]), "InvalidParameter.Key")
    assert "prometheus" in message(error) and "PRC-14" in message(error)
    refused(lambda: live.push_service(INSTANCE, [record(None, live.start, storage=1024)]), "InvalidParameter.Key")
    assert live.stored() == []


@pytest.mark.rule("MTR-04")
@pytest.mark.parametrize("value", [-1, "-5"])
def test_a_negative_value_is_refused_MTR_04(live: Live, value: int | str) -> None:
    error = refused(lambda: live.push([record(INSTANCE, live.start, queries=value)]), "InvalidParameter.Value")
    assert "negative" in message(error) and "MTR-04" in message(error)
    assert live.stored() == []


@pytest.mark.parametrize("value", ["1.5", 2.5, "ten", True, [1]])
def test_a_value_that_is_not_a_whole_number_is_refused(live: Live, value: Any) -> None:
    error = refused(lambda: live.push([record(INSTANCE, live.start, queries=value)]), "InvalidParameter.Value")
    assert "Metering[0].Entities[0].Value" in message(error)
    assert live.stored() == []


# --- times -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [300, 299, 0, -600])
def test_an_interval_of_5_minutes_or_less_is_refused(live: Live, length: int) -> None:
    """EndTime - StartTime must exceed 300 seconds (Agora has no real-time billed products)."""
    call = lambda: live.push([record(INSTANCE, live.start, live.start + length)])  # noqa: E731
    error = refused(call, "InvalidParameter.Time", 400, live)
    assert "Metering[0]" in message(error) and ("300 seconds" in message(error) or "later than" in message(error))
    assert live.stored() == []
    live.push([record(INSTANCE, live.start, live.start + 301)])
    assert len(live.stored()) == 1


@pytest.mark.rule("MTR-04")
@pytest.mark.parametrize(
    "offset",
    [timedelta(hours=-7), timedelta(hours=-6), timedelta(seconds=60)],
    ids=["7h-ago", "6h-ago", "1min-ahead"],
)
def test_a_start_time_outside_the_6_hour_window_is_refused_MTR_04(live: Live, offset: timedelta) -> None:
    """MTR-04: StartTime must fall in the 6 hours before receipt, and not after it (the future interval here
    ends within the clock skew tolerated for EndTime, so it is StartTime that is refused)."""
    start = epoch(live.now + offset)
    error = refused(lambda: live.push([record(INSTANCE, start, start + 301)]), "InvalidParameter.Time")
    assert "MTR-04" in message(error)
    assert live.stored() == []


def test_an_interval_that_has_not_ended_is_refused(live: Live) -> None:
    start = epoch(live.now - timedelta(hours=1))
    error = refused(lambda: live.push([record(INSTANCE, start, start + 7200)]), "InvalidParameter.Time")
    assert "EndTime" in message(error) and "future" in message(error)
    assert live.stored() == []


@pytest.mark.parametrize("start", ["soon", "1.7e9", -1, None])
def test_a_start_time_that_is_not_unix_seconds_is_refused(live: Live, start: Any) -> None:
    metering = [{"InstanceId": INSTANCE, "StartTime": start, "EndTime": live.start, "Entities": [{"Key": "q"}]}]
    code = "InvalidParameter.Metering" if start is None else "InvalidParameter.Time"
    refused(lambda: live.push(metering), code)


# --- the Metering document ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metering", "code", "says"),
    [
        ("[{", "InvalidParameter.Metering", "not valid JSON"),
        ('{"InstanceId": "si-1000001"}', "InvalidParameter.Metering", "JSON array"),
        ("[]", "InvalidParameter.Metering", "no records"),
        ('["si-1000001"]', "InvalidParameter.Metering", "Metering[0] must be an object"),
        ("", "MissingParameter.Metering", "Metering"),
    ],
    ids=["bad-json", "object", "empty-array", "not-records", "empty"],
)
def test_a_malformed_metering_document_is_refused(live: Live, metering: str, code: str, says: str) -> None:
    error = refused(lambda: live.push(metering), code, 400, live)
    assert says in message(error)
    assert live.stored() == []


def test_a_deeply_nested_metering_document_is_refused_not_crashed() -> None:
    """Too long for a URL the server accepts, so the parser is called directly."""
    with pytest.raises(protocol.AlibabaError) as caught:
        protocol.parse_metering("[" * 100_000)
    assert caught.value.code == "InvalidParameter.Metering"


@pytest.mark.parametrize("field", ["InstanceId", "StartTime", "EndTime", "Entities"])
def test_every_record_field_is_required(live: Live, field: str) -> None:
    made = record(INSTANCE, live.start)
    del made[field]
    error = refused(lambda: live.push([record(INSTANCE, live.start), made]), "InvalidParameter.Metering")
    assert f"Metering[1] lacks {field}" in message(error) and "all fields are required" in message(error)
    assert live.stored() == []


@pytest.mark.parametrize("entity", [{"Key": "queries"}, {"Value": 1}, {"Key": "", "Value": 1}])
def test_every_entity_names_its_key_and_value(live: Live, entity: dict[str, Any]) -> None:
    made = record(INSTANCE, live.start)
    made["Entities"] = [entity]
    error = refused(lambda: live.push([made]), "InvalidParameter.Metering")
    assert "Metering[0].Entities[0] lacks" in message(error)


def test_more_than_100_records_are_refused(live: Live) -> None:
    start = epoch(live.now - timedelta(hours=5))
    records = [record(INSTANCE, start + 60 * n, start + 60 * n + 301) for n in range(101)]
    error = refused(lambda: live.push(records), "InvalidParameter.Metering", 400, live)
    assert "100" in message(error) and "101" in message(error)
    assert live.stored() == []


# --- idempotency and all-or-nothing ------------------------------------------------------------------------


@pytest.mark.rule("MTR-05")
def test_an_identical_push_again_succeeds_and_is_stored_once_MTR_05(live: Live) -> None:
    records = [record(INSTANCE, live.start, queries=12)]
    first = live.push(records)
    again = live.push(records)
    assert again.body.success is True and again.body.request_id != first.body.request_id
    live.push_service(INSTANCE, [record(None, live.start, queries=12)])  # the same record through Compute Nest
    live.push([record(INSTANCE, live.start, queries=12), record(INSTANCE, live.start, queries=12)])  # twice in one
    assert live.stored() == [(INSTANCE, live.start, live.start + 3600, "queries", 12, "seller")]


@pytest.mark.rule("MTR-05")
def test_the_same_instance_key_and_start_with_another_value_is_refused_MTR_05(live: Live) -> None:
    live.push([record(INSTANCE, live.start, queries=12)])
    error = refused(lambda: live.push([record(INSTANCE, live.start, queries=13)]), "Duplicate.Metering", 400, live)
    assert "MTR-05" in message(error) and "12" in message(error) and "13" in message(error)
    # Inside one push as well.
    later = live.start + 3600
    refused(
        lambda: live.push([record(INSTANCE, later, queries=1), record(INSTANCE, later, queries=2)]),
        "Duplicate.Metering",
    )
    assert live.stored() == [(INSTANCE, live.start, live.start + 3600, "queries", 12, "seller")]


@pytest.mark.rule("MTR-05")
def test_an_interval_is_its_start_and_end_and_is_reported_once_MTR_05(live: Live) -> None:
    """An interval is (instance, Key, StartTime, EndTime): the identical interval and value again is a success
    stored once; the same start with another EndTime is a conflict (Duplicate.Metering), as another Value is;
    an interval overlapping a stored one of the same instance and Key, by any amount, is Overlap.Metering.
    Adjacent intervals and other instances' intervals do not clash."""
    s = epoch(live.now - timedelta(hours=4))
    live.push([record(INSTANCE, s, s + 3600, queries=12)])
    live.push([record(INSTANCE, s, s + 3600, queries=12)])  # the same interval again: success, stored once

    error = refused(lambda: live.push([record(INSTANCE, s, s + 1800, queries=12)]), "Duplicate.Metering", 400, live)
    assert "MTR-05" in message(error) and iso(s + 3600) in message(error) and iso(s + 1800) in message(error)
    refused(lambda: live.push_service(INSTANCE, [record(None, s, s + 5400, queries=12)]), "Duplicate.Metering")
    for overlapping in [(s + 1800, s + 5400), (s - 1800, s + 600), (s - 3600, s + 7200), (s + 1, s + 3599)]:
        push = partial(live.push, [record(INSTANCE, *overlapping, queries=3)])
        error = refused(push, "Overlap.Metering", 400, live)
        assert f"overlaps {iso(s)}–{iso(s + 3600)}, already received" in message(error)
        assert "MTR-05" in message(error) and "Nothing of this push was stored" in message(error)
    refused(lambda: live.push_service(INSTANCE, [record(None, s + 600, s + 1200)]), "Overlap.Metering")
    assert live.stored() == [(INSTANCE, s, s + 3600, "queries", 12, "seller")]

    live.push([record(INSTANCE, s + 3600, s + 7200, queries=5), record(INSTANCE_2, s + 600, s + 1200, queries=7)])
    error = refused(
        lambda: live.push([record(INSTANCE, s + 7200, s + 9000), record(INSTANCE, s + 8000, s + 10800)]),
        "Overlap.Metering",
    )
    assert "Metering[1]" in message(error) and "earlier in this batch" in message(error)
    assert live.stored() == [
        (INSTANCE, s, s + 3600, "queries", 12, "seller"),
        (INSTANCE, s + 3600, s + 7200, "queries", 5, "seller"),
        (INSTANCE_2, s + 600, s + 1200, "queries", 7, "seller"),
    ]


@pytest.mark.rule("MTR-05")
def test_a_refused_push_stores_nothing_of_it(live: Live) -> None:
    """One refused entity refuses the push: whether it fails a check before anything is written (an unknown Key)
    or clashes with a stored record once the others are written (a changed value, MTR-05)."""
    start = live.start
    live.push([record(INSTANCE, start, queries=12)])
    fresh = [record(INSTANCE, start + 3600, queries=1), record(INSTANCE_2, start, queries=2)]
    refused(lambda: live.push([*fresh, record(INSTANCE, start + 1800, bogus=1)]), "InvalidParameter.Key")
    refused(lambda: live.push([*fresh, record(INSTANCE, start, queries=99)]), "Duplicate.Metering")
    refused(
        lambda: live.push_service(INSTANCE, [record(None, start + 3600), record(None, start, queries=99)]),
        "Duplicate.Metering",
    )
    assert live.stored() == [(INSTANCE, start, start + 3600, "queries", 12, "seller")]
    live.push(fresh)  # nothing of the refused pushes was kept: the fresh records are accepted as new
    assert [row[4] for row in live.stored()] == [12, 1, 2]


# --- hostile input (issue 15): always Alibaba's error shape, a 4xx for the caller's fault ----------------------


def test_a_lone_surrogate_in_metering_is_refused_naming_where(live: Live) -> None:
    error = refused(lambda: live.push([record("\ud800", live.start)]), "InvalidParameter.Metering", live=live)
    assert message(error).startswith("Metering[0].InstanceId is not valid Unicode")
    error = refused(lambda: live.push([record(INSTANCE, live.start, **{"que\udc00ries": 1})]),
                    "InvalidParameter.Metering")  # fmt: skip
    assert message(error).startswith("Metering[0].Entities[0].Key is not valid Unicode")
    error = refused(lambda: live.push_service("si-1\x00", [record(None, live.start)]), "InvalidParameter")
    assert message(error) == "ServiceInstanceId must not contain NUL characters."
    assert live.stored() == []


def test_an_error_quoting_unwritable_text_is_still_answered() -> None:
    reply = protocol._error(400, "InvalidParameter.InstanceId", "instance '\ud800' differs", "RID", "host")
    assert reply.status == 400
    assert json.loads(reply.body.decode("utf-8"))["Message"] == "instance '\ufffd' differs"


def test_an_internal_fault_is_answered_in_alibabas_shape(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(protocol.OPERATIONS, ("PushMeteringData", "2015-11-01"), broken)
    with pytest.raises(Exception) as caught:  # tea-openapi raises ServerException for a 5xx
        live.push([record(INSTANCE, live.start)])
    assert getattr(caught.value, "code", None) == "InternalError"
    assert getattr(caught.value, "status_code", None) == 500
