"""Alibaba Cloud Marketplace seller checks through the unmodified `alibabacloud_market20151101` client (V3 and
legacy v2 signatures) against a live server: DescribeLicense, ActivateLicense, DescribeInstanceForIsv and
DescribeOrderForIsv, with their refusals (api-surface.md §6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alibabacloud_market20151101 import models
from alibabacloud_market20151101.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from sqlalchemy import select, update

from agora import clock
from agora.auth import Principal
from agora.db import Database
from agora.models import Buyer, Contract, LicenseActivation, Role, Subscription
from agora.subscriptions import service as subscriptions
from tests.compat.agreements.market import CONTRACT_AGREEMENT, agreement_market, subscribe_byol
from tests.factories.metering import BUYER, BUYER_KEY, CONTRACT, OTHER_BUYER, OTHER_SELLER_KEY, SELLER_KEY
from tests.live import live_server

Key = tuple[str, str]


@dataclass(frozen=True)
class Live:
    db: Database
    url: str
    clock: clock.ManualClock
    now: datetime

    @property
    def started(self) -> datetime:
        return self.now - timedelta(days=1)

    def client(self, key: Key = SELLER_KEY, scheme: str = "v3") -> Client:
        return Client(
            Config(
                access_key_id=key[0],
                access_key_secret=key[1],
                endpoint=self.url.removeprefix("http://"),
                protocol="http",
                region_id="cn-hangzhou",
                signature_algorithm="v2" if scheme == "v2" else None,
            )
        )

    def contract_license(self) -> str:
        with self.db.reader() as session:
            key = session.scalar(
                select(Contract.license_key)
                .join(Subscription, Subscription.id == Contract.subscription_id)
                .where(Subscription.agreement_id == CONTRACT_AGREEMENT)
            )
        assert key is not None
        return key

    def subscription(self, agreement_id: str) -> Subscription:
        with self.db.reader() as session:
            return session.scalars(select(Subscription).where(Subscription.agreement_id == agreement_id)).one()


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.use_clock(clock.ManualClock(now)) as frozen:
        assert isinstance(frozen, clock.ManualClock)
        agreement_market(db, now - timedelta(days=1))
        with live_server(db) as url:
            yield Live(db, url, frozen, now)


def refused(call: Callable[[], Any], code: str, status: int = 400) -> ClientException:
    with pytest.raises(ClientException) as caught:
        call()
    assert (caught.value.code, caught.value.status_code) == (code, status), caught.value.message
    return caught.value


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


# --- DescribeLicense ------------------------------------------------------------------------------------------


@pytest.mark.rule("SUB-07")
@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_describe_license_of_a_contract_names_its_entitlements_SUB_07(live: Live, scheme: str) -> None:
    """SUB-07: the contract's license, as the software checks it: instance, buyer, expiry, what it entitles."""
    code = live.contract_license()
    body = live.client(scheme=scheme).describe_license(models.DescribeLicenseRequest(license_code=code)).body
    assert body.request_id
    found = body.license
    assert (found.license_code, found.license_status) == (code, "INACTIVATED")
    assert (found.instance_id, found.product_code, found.supplier_name) == ("ct-1", CONTRACT, "Acme")
    assert found.create_time == live.started.strftime("%Y-%m-%d %H:%M:%S")
    assert found.expired_time == live.started.replace(year=live.started.year + 1).strftime("%Y-%m-%d %H:%M:%S")
    assert found.activate_time is None
    assert found.extend_info.ali_uid == int(BUYER) or str(found.extend_info.ali_uid) == BUYER
    assert [(a.code, a.value) for a in found.extend_array.license_attribute] == [("admins", "2"), ("seats", "10")]


@pytest.mark.rule("PRC-11")
def test_describe_license_of_a_byol_subscription_PRC_11(live: Live) -> None:
    """PRC-11: the license a BYOL buyer brought is the one its software confirms."""
    subscribe_byol(live.db, "LIC-ACME-0001")
    found = live.client().describe_license(models.DescribeLicenseRequest(license_code="LIC-ACME-0001")).body.license
    assert (found.instance_id, found.product_code, found.license_status) == ("byol-1", "acme-byol", "INACTIVATED")
    assert found.expired_time is None
    assert found.extend_array.license_attribute == []


def test_an_unknown_or_another_sellers_license_is_not_found(live: Live) -> None:
    code = live.contract_license()
    refused(
        lambda: live.client().describe_license(models.DescribeLicenseRequest(license_code="nope")),
        "InvalidLicenseCode.NotFound",
        404,
    )
    refused(
        lambda: live.client(OTHER_SELLER_KEY).describe_license(models.DescribeLicenseRequest(license_code=code)),
        "InvalidLicenseCode.NotFound",
        404,
    )


def test_license_checks_are_the_sellers(live: Live) -> None:
    code = live.contract_license()
    refused(
        lambda: live.client(BUYER_KEY).describe_license(models.DescribeLicenseRequest(license_code=code)),
        "Forbidden.AccessDenied",
        403,
    )
    refused(
        lambda: live.client(BUYER_KEY).activate_license(models.ActivateLicenseRequest(license_code=code)),
        "Forbidden.AccessDenied",
        403,
    )


def test_a_license_code_is_required(live: Live) -> None:
    refused(lambda: live.client().describe_license(models.DescribeLicenseRequest()), "MissingParameter.LicenseCode")
    refused(lambda: live.client().activate_license(models.ActivateLicenseRequest()), "MissingParameter.LicenseCode")


def test_a_wrong_secret_is_refused(live: Live) -> None:
    client = live.client((SELLER_KEY[0], "not-the-secret"))
    refused(
        lambda: client.describe_license(models.DescribeLicenseRequest(license_code="x")),
        "SignatureDoesNotMatch",
    )


# --- ActivateLicense ------------------------------------------------------------------------------------------


@pytest.mark.rule("SUB-07")
def test_activate_license_once_for_its_buyer_SUB_07(live: Live) -> None:
    code = live.contract_license()
    client = live.client()
    answer = client.activate_license(models.ActivateLicenseRequest(license_code=code, identification=BUYER)).body
    assert answer.success is True and answer.request_id
    again = client.activate_license(models.ActivateLicenseRequest(license_code=code, identification=BUYER)).body
    assert again.success is True  # the same software confirming again changes nothing
    with live.db.reader() as session:
        [row] = session.scalars(select(LicenseActivation)).all()
    assert (row.license_code, row.identification, row.activated_at) == (code, BUYER, live.now)
    found = client.describe_license(models.DescribeLicenseRequest(license_code=code)).body.license
    assert (found.license_status, found.activate_time) == ("ACTIVATED", live.now.strftime("%Y-%m-%d %H:%M:%S"))
    refused(
        lambda: client.activate_license(models.ActivateLicenseRequest(license_code=code)),
        "InvalidLicense.Activated",
    )


@pytest.mark.rule("SUB-07")
def test_a_license_is_not_activated_for_another_user_SUB_07(live: Live) -> None:
    code = live.contract_license()
    request = models.ActivateLicenseRequest(license_code=code, identification=OTHER_BUYER)
    refused(lambda: live.client(scheme="v2").activate_license(request), "InvalidParameter.Identification")
    with live.db.reader() as session:
        assert session.scalars(select(LicenseActivation)).all() == []


@pytest.mark.rule("SUB-07")
def test_an_expired_license_is_not_activated_SUB_07(live: Live) -> None:
    """SUB-07: entitlements (and so the license) run until the contract's expiry."""
    code = live.contract_license()
    with live.db.unit_of_work() as session:  # the contract's 12 months have passed
        session.execute(update(Contract).where(Contract.license_key == code).values(ends_at=live.now))
    refused(
        lambda: live.client().activate_license(models.ActivateLicenseRequest(license_code=code)),
        "InvalidLicense.Expired",
    )
    with live.db.reader() as session:
        assert session.scalars(select(LicenseActivation)).all() == []


@pytest.mark.rule("PRC-11")
def test_a_byol_license_is_refused_once_its_subscription_ended_PRC_11(live: Live) -> None:
    agreement_id = subscribe_byol(live.db, "LIC-ACME-0002")
    sub = live.subscription(agreement_id)
    with live.db.unit_of_work() as session:
        buyer = session.scalars(select(Buyer).where(Buyer.account == BUYER)).one()
        subscriptions.cancel(session, Principal(Role.BUYER, buyer.id, buyer.account), sub.id)
    live.clock.advance(timedelta(seconds=1))
    refused(
        lambda: live.client().activate_license(models.ActivateLicenseRequest(license_code="LIC-ACME-0002")),
        "InvalidLicense.Expired",
    )


# --- DescribeInstanceForIsv / DescribeOrderForIsv -------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["v3", "v2"])
def test_describe_instance_for_isv(live: Live, scheme: str) -> None:
    body = (
        live.client(scheme=scheme)
        .describe_instance_for_isv(models.DescribeInstanceForIsvRequest(instance_id="ct-1"))
        .body
    )
    sub = live.subscription(CONTRACT_AGREEMENT)
    assert (body.instance_id, body.order_id, body.product_code, body.product_type) == ("ct-1", sub.id, CONTRACT, "APP")
    assert (body.status, body.relational_data.service_status) == ("NORMAL", "STARTED")
    assert body.created_on == body.began_on == ms(live.started)
    assert body.end_on == ms(live.started.replace(year=live.started.year + 1))
    assert body.license_code == live.contract_license()
    assert body.is_trial is False and body.supplier_name == "Acme" and body.request_id


def test_describe_instance_of_a_trial_and_of_a_cancelled_subscription(live: Live) -> None:
    client = live.client()
    trial = client.describe_instance_for_isv(models.DescribeInstanceForIsvRequest(instance_id="acme-annual-" + BUYER))
    assert trial.body.is_trial is True and trial.body.product_type == "MIRROR"
    sub = live.subscription(CONTRACT_AGREEMENT)
    with live.db.unit_of_work() as session:
        buyer = session.scalars(select(Buyer).where(Buyer.account == BUYER)).one()
        subscriptions.cancel(session, Principal(Role.BUYER, buyer.id, buyer.account), sub.id)
    closed = client.describe_instance_for_isv(models.DescribeInstanceForIsvRequest(instance_id="ct-1")).body
    assert (closed.status, closed.relational_data.service_status, closed.end_on) == ("CLOSED", "CLOSED", ms(live.now))


def test_another_sellers_or_an_unknown_instance_is_not_found(live: Live) -> None:
    for key, instance in ((OTHER_SELLER_KEY, "ct-1"), (SELLER_KEY, "nobody")):
        refused(
            lambda k=key, i=instance: live.client(k).describe_instance_for_isv(
                models.DescribeInstanceForIsvRequest(instance_id=i)
            ),
            "InvalidInstance.NotFound",
            404,
        )
    refused(
        lambda: live.client().describe_instance_for_isv(models.DescribeInstanceForIsvRequest()),
        "MissingParameter.InstanceId",
    )


def test_describe_order_for_isv(live: Live) -> None:
    sub = live.subscription(CONTRACT_AGREEMENT)
    body = live.client().describe_order_for_isv(models.DescribeOrderForIsvRequest(order_id=sub.id)).body
    assert (body.order_id, body.ali_uid, body.product_code) == (sub.id, int(BUYER), CONTRACT)
    assert (body.order_status, body.order_type, body.pay_status, body.period_type) == ("NORMAL", "NEW", "PAID", "YEAR")
    assert (body.total_price, body.payment_price, body.coupon_price) == (1100.0, 1100.0, 0.0)
    assert body.instance_ids == ["ct-1"]
    assert body.created_on == ms(live.started)


def test_another_sellers_or_a_malformed_order_is_refused(live: Live) -> None:
    sub = live.subscription(CONTRACT_AGREEMENT)
    refused(
        lambda: live.client(OTHER_SELLER_KEY).describe_order_for_isv(
            models.DescribeOrderForIsvRequest(order_id=sub.id)
        ),
        "InvalidOrder.NotFound",
        404,
    )
    refused(
        lambda: live.client().describe_order_for_isv(models.DescribeOrderForIsvRequest(order_id=999999)),
        "InvalidOrder.NotFound",
        404,
    )
    refused(
        lambda: live.client().describe_order_for_isv(models.DescribeOrderForIsvRequest()), "MissingParameter.OrderId"
    )
