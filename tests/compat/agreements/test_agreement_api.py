"""The Agreement API as boto3 sees it: an unmodified `marketplace-agreement` client against a live server, for
SearchAgreements, DescribeAgreement and GetAgreementTerms and their refusals (api-surface.md §4), over a market
whose agreements have known ids (tests/compat/agreements/market.py).

boto3 signs with the wall clock, so the server's clock is frozen at the real current second and the market's
subscriptions start a day before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import select

from agora import clock
from agora.auth import Principal
from agora.compat.aws.agreements import seller_account
from agora.db import Database
from agora.models import Buyer, Offer, Role, Subscription, UsageRecord
from agora.offers import service as offers
from agora.subscriptions import service as subscriptions
from tests.compat.agreements.market import (
    ACCEPTED_OFFER,
    ANNUAL_AGREEMENT,
    CONTRACT_AGREEMENT,
    EXTENDED_OFFER,
    OFFER_AGREEMENT,
    OPERATOR_KEY,
    PRIVATE,
    PRIVATE_ENTITY,
    SAAS_AGREEMENT,
    SAAS_ENTITY,
    SAAS_OTHER_AGREEMENT,
    SAAS_PUBLIC_OFFER,
    agreement_market,
    subscribe_byol,
)
from tests.factories.metering import (
    BUYER,
    BUYER_KEY,
    CONTRACT,
    GATEWAY,
    OTHER,
    OTHER_BUYER,
    OTHER_BUYER_KEY,
    OTHER_SELLER_KEY,
    SAAS,
    SELLER_KEY,
)
from tests.live import live_server

REGION = "us-east-1"
ONE_ATTEMPT = Config(retries={"max_attempts": 1})
PURCHASE = {"name": "AgreementType", "values": ["PurchaseAgreement"]}
PROPOSER = {"name": "PartyType", "values": ["Proposer"]}
ACCEPTOR = {"name": "PartyType", "values": ["Acceptor"]}
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

    def client(self, key: Key = SELLER_KEY) -> Any:
        return boto3.client(
            "marketplace-agreement",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=ONE_ATTEMPT,
        )

    def search(self, *filters: dict[str, Any], key: Key = SELLER_KEY, **options: Any) -> dict[str, Any]:
        party = ACCEPTOR if key in (BUYER_KEY, OTHER_BUYER_KEY) else PROPOSER
        answer: dict[str, Any] = self.client(key).search_agreements(
            catalog="AWSMarketplace", filters=[party, PURCHASE, *filters], **options
        )
        return answer

    def ids(self, *filters: dict[str, Any], key: Key = SELLER_KEY, **options: Any) -> list[str]:
        return [s["agreementId"] for s in self.search(*filters, key=key, **options)["agreementViewSummaries"]]

    def agreement_of(self, buyer: str, product_code: str) -> str:
        with self.db.reader() as session:
            agreement_id = session.scalar(
                select(Subscription.agreement_id)
                .join(Buyer, Buyer.id == Subscription.buyer_id)
                .where(Buyer.account == buyer, Subscription.customer_identifier.is_not(None))
                .where(Subscription.product_id == _product_id(session, product_code))
                .order_by(Subscription.id.desc())
            )
        assert agreement_id is not None
        return agreement_id


def _product_id(session: Any, code: str) -> int:
    from agora.models import Product

    found = session.scalar(select(Product.id).where(Product.code == code))
    assert found is not None
    return int(found)


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.use_clock(clock.ManualClock(now)) as frozen:
        assert isinstance(frozen, clock.ManualClock)
        agreement_market(db, now - timedelta(days=1))
        with live_server(db) as url:
            yield Live(db, url, frozen, now)


def refused(call: Callable[[], Any], code: str, status: int) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    response: dict[str, Any] = caught.value.response
    assert response["Error"]["Code"] == code, response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    uuid.UUID(response["ResponseMetadata"]["RequestId"])
    return response


# --- agreement ids --------------------------------------------------------------------------------------------


def test_every_subscription_gets_an_aws_style_agreement_id_and_a_manifest_may_fix_it(live: Live) -> None:
    with live.db.reader() as session:
        ids = list(session.scalars(select(Subscription.agreement_id)))
    assert all(i is not None and i.startswith("agmt-") and i[5:].isalnum() and i[5:].islower() for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert {SAAS_AGREEMENT, SAAS_OTHER_AGREEMENT, CONTRACT_AGREEMENT, ANNUAL_AGREEMENT, OFFER_AGREEMENT} <= set(ids)
    generated = live.agreement_of(BUYER, GATEWAY)
    assert len(generated) == len("agmt-") + 25


# --- DescribeAgreement ---------------------------------------------------------------------------------------


def test_describe_agreement_of_a_pay_as_you_go_subscription(live: Live) -> None:
    answer = live.client().describe_agreement(agreementId=SAAS_AGREEMENT)
    assert answer["agreementId"] == SAAS_AGREEMENT
    assert answer["agreementType"] == "PurchaseAgreement"
    assert answer["acceptor"] == {"accountId": BUYER}
    assert answer["proposer"] == {"accountId": seller_account("acme")}
    assert answer["proposer"]["accountId"].isdigit() and len(answer["proposer"]["accountId"]) == 12
    assert answer["status"] == "ACTIVE"
    assert answer["startTime"] == answer["acceptanceTime"] == live.started
    assert "endTime" not in answer  # pay-as-you-go agreements have no end
    assert answer["proposalSummary"] == {
        "resources": [{"id": SAAS_ENTITY, "type": "SaaSProduct"}],
        "offerId": SAAS_PUBLIC_OFFER,
    }
    assert answer["estimatedCharges"] == {"currencyCode": "USD", "agreementValue": "0.00"}


def test_describe_agreement_of_a_contract_shows_its_term_and_value(live: Live) -> None:
    answer = live.client().describe_agreement(agreementId=CONTRACT_AGREEMENT)
    assert answer["endTime"] == live.started.replace(year=live.started.year + 1)
    assert answer["status"] == "ACTIVE"
    # 10 seats at 100 and 2 admins at 50 for 12 months (PRC-10)
    assert answer["estimatedCharges"] == {"currencyCode": "USD", "agreementValue": "1100.00"}


def test_describe_agreement_of_an_accepted_private_offer_names_the_offer_entity(live: Live) -> None:
    answer = live.client(BUYER_KEY).describe_agreement(agreementId=OFFER_AGREEMENT)
    accepted = live.started + timedelta(hours=1)
    assert answer["acceptanceTime"] == answer["startTime"] == accepted
    assert answer["endTime"] == accepted + timedelta(days=365)
    assert answer["proposalSummary"]["offerId"] == ACCEPTED_OFFER
    assert answer["proposalSummary"]["resources"] == [{"id": PRIVATE_ENTITY, "type": "SaaSProduct"}]
    assert answer["estimatedCharges"]["agreementValue"] == "1200.00"


def test_describe_agreement_uses_the_product_entity_id_when_it_has_one(live: Live) -> None:
    from agora.models import Product

    with live.db.unit_of_work() as session:
        product = session.scalars(select(Product).where(Product.code == SAAS)).one()
        product.entity_id = "prod-abcdefghijk12"
        product.public_offer_entity_id = "offer-abcdefghijk12"
    summary = live.client().describe_agreement(agreementId=SAAS_AGREEMENT)["proposalSummary"]
    assert summary == {
        "resources": [{"id": "prod-abcdefghijk12", "type": "SaaSProduct"}],
        "offerId": "offer-abcdefghijk12",
    }
    found = live.ids({"name": "ResourceIdentifier", "values": ["prod-abcdefghijk12"]})
    assert sorted(found) == sorted([SAAS_AGREEMENT, SAAS_OTHER_AGREEMENT])


def test_a_seller_sees_only_agreements_on_its_own_products(live: Live) -> None:
    other_sellers = live.agreement_of(BUYER, OTHER)
    client = live.client()
    error = refused(lambda: client.describe_agreement(agreementId=other_sellers), "ResourceNotFoundException", 404)
    assert error["resourceId"] == other_sellers and error["resourceType"] == "Agreement"
    assert other_sellers not in live.ids()
    assert live.ids(key=OTHER_SELLER_KEY) == [other_sellers]


def test_a_buyer_sees_only_its_own_agreements(live: Live) -> None:
    client = live.client(OTHER_BUYER_KEY)
    refused(lambda: client.describe_agreement(agreementId=SAAS_AGREEMENT), "ResourceNotFoundException", 404)
    mine = set(live.ids(key=OTHER_BUYER_KEY))
    assert SAAS_OTHER_AGREEMENT in mine and SAAS_AGREEMENT not in mine
    assert client.describe_agreement(agreementId=SAAS_OTHER_AGREEMENT)["acceptor"] == {"accountId": OTHER_BUYER}


def test_an_unknown_agreement_is_not_found(live: Live) -> None:
    client = live.client()
    refused(
        lambda: client.describe_agreement(agreementId="agmt-0000000000000000000000000"),
        "ResourceNotFoundException",
        404,
    )
    refused(
        lambda: client.get_agreement_terms(agreementId="agmt-0000000000000000000000000"),
        "ResourceNotFoundException",
        404,
    )


def test_a_malformed_agreement_id_is_a_validation_error(live: Live) -> None:
    client = live.client()
    error = refused(lambda: client.describe_agreement(agreementId="agmt 1!"), "ValidationException", 400)
    assert error["reason"] == "INVALID_AGREEMENT_ID"
    assert error["fields"][0]["name"] == "agreementId"


def test_a_wrong_secret_is_refused(live: Live) -> None:
    client = live.client((SELLER_KEY[0], "not-the-secret"))
    refused(lambda: client.describe_agreement(agreementId=SAAS_AGREEMENT), "InvalidSignatureException", 403)


def test_a_cancelled_subscription_is_a_cancelled_agreement_with_its_end(live: Live) -> None:
    with live.db.unit_of_work() as session:
        sub = session.scalars(select(Subscription).where(Subscription.agreement_id == SAAS_AGREEMENT)).one()
        buyer = session.get_one(Buyer, sub.buyer_id)
        subscriptions.cancel(session, Principal(Role.BUYER, buyer.id, buyer.account), sub.id)
    answer = live.client().describe_agreement(agreementId=SAAS_AGREEMENT)
    assert answer["status"] == "CANCELLED"
    assert answer["endTime"] == live.now
    assert live.ids({"name": "Status", "values": ["CANCELLED"]}) == [SAAS_AGREEMENT]


def test_accepting_a_private_offer_replaces_the_public_agreement_and_makes_a_new_one(live: Live) -> None:
    """OFR-03: the offer's acceptance ends the buyer's public subscription; its agreement is REPLACED and the
    offer's own agreement (a new id) is ACTIVE."""
    with live.db.unit_of_work() as session:
        buyer = session.scalars(select(Buyer).where(Buyer.account == OTHER_BUYER)).one()
        offer = session.scalars(select(Offer).where(Offer.entity_id == EXTENDED_OFFER)).one()
        offer.product_id = _product_id(session, SAAS)  # an offer on the product OTHER_BUYER subscribes to
        offers.accept(session, Principal(Role.BUYER, buyer.id, buyer.account), offer.public_id, accept_eula=True)
    client = live.client(OTHER_BUYER_KEY)
    assert client.describe_agreement(agreementId=SAAS_OTHER_AGREEMENT)["status"] == "REPLACED"
    [new] = live.ids({"name": "OfferId", "values": [EXTENDED_OFFER]}, key=OTHER_BUYER_KEY)
    assert new.startswith("agmt-") and new != SAAS_OTHER_AGREEMENT
    described = client.describe_agreement(agreementId=new)
    assert described["status"] == "ACTIVE" and described["estimatedCharges"]["agreementValue"] == "99.00"
    assert described["endTime"] == live.now + timedelta(days=30)


# --- SearchAgreements -----------------------------------------------------------------------------------------


def test_search_agreements_lists_the_sellers_agreements_by_end_time_descending(live: Live) -> None:
    summaries = live.search()["agreementViewSummaries"]
    assert "nextToken" not in live.search()
    ends = [s.get("endTime") for s in summaries]
    undated = [e for e in ends if e is None]
    dated = [e for e in ends if e is not None]
    assert ends == undated + dated  # pay-as-you-go agreements never end: first when descending
    assert dated == sorted(dated, reverse=True)
    assert {s["proposer"]["accountId"] for s in summaries} == {seller_account("acme")}
    ascending = live.ids(sort={"sortBy": "EndTime", "sortOrder": "ASCENDING"})
    assert ascending == [s["agreementId"] for s in reversed(summaries)]


def test_search_agreements_pages_and_omits_the_token_at_the_end(live: Live) -> None:
    everything = live.ids()
    seen: list[str] = []
    token: str | None = None
    while True:
        options: dict[str, Any] = {"maxResults": 4}
        if token:
            options["nextToken"] = token
        page = live.search(**options)
        seen += [s["agreementId"] for s in page["agreementViewSummaries"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert seen == everything and len(everything) > 4
    paginated = (
        live.client()
        .get_paginator("search_agreements")
        .paginate(catalog="AWSMarketplace", filters=[PROPOSER, PURCHASE], PaginationConfig={"PageSize": 3})
    )
    assert [s["agreementId"] for page in paginated for s in page["agreementViewSummaries"]] == everything


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ResourceIdentifier", CONTRACT, {CONTRACT_AGREEMENT, "ct-2"}),
        ("OfferId", ACCEPTED_OFFER, {OFFER_AGREEMENT}),
        ("OfferId", SAAS_PUBLIC_OFFER, {SAAS_AGREEMENT, SAAS_OTHER_AGREEMENT}),
        ("OfferSetId", "offerset-1234567890", set()),
        ("Status", "EXPIRED", set()),
    ],
)
def test_search_agreements_filters(live: Live, name: str, value: str, expected: set[str]) -> None:
    """Expected agreements by id, or by customer identifier for those whose id is generated."""
    with live.db.reader() as session:
        ids = dict(session.execute(select(Subscription.customer_identifier, Subscription.agreement_id)).all())
    assert set(live.ids({"name": name, "values": [value]})) == {ids.get(e, e) for e in expected}


def test_search_agreements_by_acceptor(live: Live) -> None:
    found = live.search({"name": "AcceptorAccountId", "values": [OTHER_BUYER]})["agreementViewSummaries"]
    assert {s["acceptor"]["accountId"] for s in found} == {OTHER_BUYER}
    assert SAAS_OTHER_AGREEMENT in {s["agreementId"] for s in found}
    assert len(found) == 3  # SaaS, managed service, contract


def test_search_agreements_by_resource_type(live: Live) -> None:
    amis = live.search({"name": "ResourceType", "values": ["AmiProduct"]})["agreementViewSummaries"]
    assert amis and {s["proposalSummary"]["resources"][0]["type"] for s in amis} == {"AmiProduct"}
    assert ANNUAL_AGREEMENT in {s["agreementId"] for s in amis}


def test_search_agreements_by_end_time(live: Live) -> None:
    """The contract and the annual purchase end a year after they started; the offer a year after its
    acceptance; pay-as-you-go agreements never end (after every instant, before none)."""
    in_two_years = (live.now + timedelta(days=730)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tomorrow = (live.now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = set(live.ids({"name": "BeforeEndTime", "values": [in_two_years]}))
    assert {CONTRACT_AGREEMENT, ANNUAL_AGREEMENT, OFFER_AGREEMENT} <= before
    assert SAAS_AGREEMENT not in before
    assert SAAS_AGREEMENT in live.ids({"name": "AfterEndTime", "values": [tomorrow]})
    assert live.ids({"name": "AfterEndTime", "values": [in_two_years]}) == [i for i in live.ids() if i not in before]


def test_a_buyer_searches_as_acceptor(live: Live) -> None:
    mine = live.search(key=BUYER_KEY)["agreementViewSummaries"]
    assert mine and {s["acceptor"]["accountId"] for s in mine} == {BUYER}
    assert OFFER_AGREEMENT in {s["agreementId"] for s in mine}
    # A buyer proposes nothing, and a seller accepts nothing.
    client = live.client(BUYER_KEY)
    assert client.search_agreements(filters=[PROPOSER, PURCHASE])["agreementViewSummaries"] == []
    assert live.client().search_agreements(filters=[ACCEPTOR, PURCHASE])["agreementViewSummaries"] == []


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ([PURCHASE], "MISSING_PARTY_TYPE"),
        ([PROPOSER], "INVALID_FILTERS"),
        ([PROPOSER, PURCHASE, {"name": "Colour", "values": ["red"]}], "INVALID_FILTER_NAME"),
        ([PROPOSER, PURCHASE, {"name": "Status"}], "MISSING_FILTER_VALUES"),
        ([PROPOSER, PURCHASE, {"name": "Status", "values": ["ACTIVE", "EXPIRED"]}], "INVALID_FILTER_VALUES"),
        ([PROPOSER, PURCHASE, {"name": "Status", "values": ["OPEN"]}], "INVALID_FILTER_VALUES"),
        ([PROPOSER, {"name": "AgreementType", "values": ["VendorInsightsAgreement"]}], "INVALID_FILTER_VALUES"),
        ([{"name": "PartyType", "values": ["Reseller"]}, PURCHASE], "INVALID_PARTY_TYPE"),
        ([ACCEPTOR, PURCHASE, {"name": "AcceptorAccountId", "values": [BUYER]}], "UNSUPPORTED_FILTERS"),
        ([PROPOSER, PURCHASE, {"name": "AcceptorAccountId", "values": ["12345"]}], "INVALID_FILTER_VALUES"),
        ([PROPOSER, PURCHASE, {"name": "BeforeEndTime", "values": ["next week"]}], "INVALID_FILTER_VALUES"),
        ([PROPOSER, PURCHASE, PURCHASE], "INVALID_FILTERS"),
    ],
)
def test_search_agreements_refuses_bad_filters(live: Live, filters: list[dict[str, Any]], reason: str) -> None:
    client = live.client()
    error = refused(lambda: client.search_agreements(filters=filters), "ValidationException", 400)
    assert error["reason"] == reason
    assert error["fields"] and error["Error"]["Message"]


def test_search_agreements_refuses_a_bad_sort_token_catalog_and_page_size(live: Live) -> None:
    client = live.client()
    filters = [PROPOSER, PURCHASE]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sort": {"sortBy": "StartTime"}}, "INVALID_SORT_BY"),
        ({"nextToken": "not-ours"}, "INVALID_NEXT_TOKEN"),
        ({"catalog": "AWSOtherPlace"}, "INVALID_CATALOG"),
    ]
    for options, reason in cases:
        error = refused(lambda o=options: client.search_agreements(filters=filters, **o), "ValidationException", 400)
        assert error["reason"] == reason


# --- GetAgreementTerms ---------------------------------------------------------------------------------------


def _terms(live: Live, agreement_id: str, key: Key = SELLER_KEY) -> dict[str, dict[str, Any]]:
    """The agreement's terms by their union key (each key appears once in these agreements except the
    configurable upfront term, returned as a list under its key when repeated)."""
    answer = live.client(key).get_agreement_terms(agreementId=agreement_id)
    assert "nextToken" not in answer
    found: dict[str, Any] = {}
    for term in answer["acceptedTerms"]:
        [(key_name, body)] = term.items()
        assert body["id"].startswith("term-") and body["type"] == key_name[0].upper() + key_name[1:]
        found[key_name] = body
    return found


def test_terms_of_a_usage_agreement(live: Live) -> None:
    terms = _terms(live, SAAS_AGREEMENT)
    assert set(terms) == {"legalTerm", "supportTerm", "usageBasedPricingTerm"}
    assert terms["legalTerm"]["documents"] == [
        {"type": "StandardEula", "url": f"/products/{SAAS}#eula", "version": "standard:v1"}
    ]
    assert terms["supportTerm"]["refundPolicy"] == "Full refund within 30 days: billing@example.com"
    assert terms["usageBasedPricingTerm"] == {
        "type": "UsageBasedPricingTerm",
        "id": terms["usageBasedPricingTerm"]["id"],
        "currencyCode": "USD",
        "rateCards": [
            {"rateCard": [{"dimensionKey": "users", "price": "0.01"}, {"dimensionKey": "requests", "price": "0.01"}]}
        ],
    }
    again = _terms(live, SAAS_AGREEMENT)
    assert again["legalTerm"]["id"] == terms["legalTerm"]["id"]  # term ids are stable


def test_terms_of_a_contract_carry_the_buyers_configuration(live: Live) -> None:
    terms = _terms(live, CONTRACT_AGREEMENT)
    upfront = terms["configurableUpfrontPricingTerm"]
    assert upfront["configuration"] == {
        "selectorValue": "P12M",
        "dimensions": [
            {"dimensionKey": "admins", "dimensionValue": 2},
            {"dimensionKey": "seats", "dimensionValue": 10},
        ],
    }
    cards = {c["selector"]["value"]: c["rateCard"] for c in upfront["rateCards"]}
    assert cards == {
        "P1M": [{"dimensionKey": "seats", "price": "10"}],
        "P12M": [{"dimensionKey": "seats", "price": "100"}, {"dimensionKey": "admins", "price": "50"}],
    }
    validity = terms["validityTerm"]
    assert validity["agreementDuration"] == "P12M"
    assert validity["agreementStartDate"] == live.started
    assert terms["renewalTerm"]["configuration"] == {"enableAutoRenew": False}


def test_terms_of_an_annual_purchase_with_a_free_trial(live: Live) -> None:
    """SUB-03 annual purchase (renewing) and SUB-01 free trial: configurable upfront with the bought quantity,
    free trial with its length, renewal on."""
    terms = _terms(live, ANNUAL_AGREEMENT)
    assert terms["usageBasedPricingTerm"]["rateCards"] == [
        {"rateCard": [{"dimensionKey": "m5.large", "price": "0.10"}]}
    ]
    upfront = terms["configurableUpfrontPricingTerm"]
    assert upfront["configuration"] == {
        "selectorValue": "P365D",
        "dimensions": [{"dimensionKey": "m5.large", "dimensionValue": 2}],
    }
    assert upfront["rateCards"][0]["rateCard"] == [{"dimensionKey": "m5.large", "price": "700"}]
    assert terms["freeTrialPricingTerm"]["duration"] == "P7D"
    assert terms["freeTrialPricingTerm"]["grants"] == [{"dimensionKey": "m5.large", "maxQuantity": 1}]
    assert terms["renewalTerm"]["configuration"] == {"enableAutoRenew": True}
    assert terms["validityTerm"]["agreementDuration"] == "P365D"


def test_terms_of_an_accepted_private_offer(live: Live) -> None:
    """OFR-01: the offer's own prices and payment schedule are the agreement's terms."""
    terms = _terms(live, OFFER_AGREEMENT, BUYER_KEY)
    assert terms["usageBasedPricingTerm"]["rateCards"] == [{"rateCard": [{"dimensionKey": "users", "price": "0.005"}]}]
    accepted = live.started + timedelta(hours=1)
    assert terms["paymentScheduleTerm"]["schedule"] == [
        {"chargeDate": accepted, "chargeAmount": "600.00"},
        {"chargeDate": live.started + timedelta(days=180), "chargeAmount": "600.00"},
    ]
    assert terms["validityTerm"] == {
        "type": "ValidityTerm",
        "id": terms["validityTerm"]["id"],
        "agreementDuration": "P365D",
        "agreementStartDate": accepted,
        "agreementEndDate": accepted + timedelta(days=365),
    }


def test_terms_of_a_byol_subscription(live: Live) -> None:
    """PRC-11: a BYOL subscription's agreement carries a byol pricing term."""
    agreement_id = subscribe_byol(live.db)
    terms = _terms(live, agreement_id)
    assert "byolPricingTerm" in terms


def test_terms_page(live: Live) -> None:
    client = live.client()
    first = client.get_agreement_terms(agreementId=CONTRACT_AGREEMENT, maxResults=2)
    assert len(first["acceptedTerms"]) == 2 and first["nextToken"]
    rest = client.get_agreement_terms(agreementId=CONTRACT_AGREEMENT, nextToken=first["nextToken"])
    assert "nextToken" not in rest
    whole = client.get_agreement_terms(agreementId=CONTRACT_AGREEMENT)["acceptedTerms"]
    assert first["acceptedTerms"] + rest["acceptedTerms"] == whole
    error = refused(
        lambda: client.get_agreement_terms(agreementId=CONTRACT_AGREEMENT, nextToken="xyz"), "ValidationException", 400
    )
    assert error["reason"] == "INVALID_NEXT_TOKEN"


# --- the seller's flow ------------------------------------------------------------------------------------


@pytest.mark.rule("OFR-03")
def test_a_seller_offers_the_buyer_accepts_and_the_seller_finds_and_meters_the_agreement(live: Live) -> None:
    """The private-offer half of issue 20's seller flow (the product's creation by change set and its review
    belong to the Catalog API): the seller makes and extends an offer with the native API, the buyer accepts it
    (OFR-03), the seller finds the agreement with SearchAgreements and meters against it with BatchMeterUsage."""

    def api(method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{live.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs
        )

    users = {"name": "users", "description": "Users", "unit": "Users", "rate": "0.02"}
    made = api(
        "POST",
        "/offers",
        "acme-token",
        json={
            "product": PRIVATE,
            "buyer": OTHER_BUYER,
            "pricing": {"usage": {"category": "units", "dimensions": [users]}},
            "duration_days": 90,
            "accept_by": (live.now + timedelta(days=7)).isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    offer_id = made.json()["id"]
    assert api("POST", f"/offers/{offer_id}/extend", "acme-token").status_code == 200
    accepted = api("POST", f"/offers/{offer_id}/accept", "other-buyer-token", json={"accept_eula": True})
    assert accepted.status_code == 200, accepted.text

    [found] = live.search({"name": "OfferId", "values": [offer_id]})["agreementViewSummaries"]
    assert found["acceptor"] == {"accountId": OTHER_BUYER} and found["status"] == "ACTIVE"
    assert found["proposalSummary"]["resources"] == [{"id": PRIVATE_ENTITY, "type": "SaaSProduct"}]
    assert found["endTime"] == live.now + timedelta(days=90)
    terms = _terms(live, found["agreementId"])
    assert terms["usageBasedPricingTerm"]["rateCards"] == [{"rateCard": [{"dimensionKey": "users", "price": "0.02"}]}]

    metering = boto3.client(
        "meteringmarketplace",
        endpoint_url=live.url,
        region_name=REGION,
        aws_access_key_id=SELLER_KEY[0],
        aws_secret_access_key=SELLER_KEY[1],
        config=ONE_ATTEMPT,
    )
    answer = metering.batch_meter_usage(
        ProductCode=PRIVATE,
        UsageRecords=[
            {
                "Timestamp": live.now,  # the agreement starts now
                "CustomerAWSAccountId": found["acceptor"]["accountId"],
                "Dimension": "users",
                "Quantity": 3,
            }
        ],
    )
    [result] = answer["Results"]
    assert result["Status"] == "Success", answer
    with live.db.reader() as session:
        [(agreement_id, quantity)] = session.execute(
            select(Subscription.agreement_id, UsageRecord.quantity).join(
                Subscription, Subscription.id == UsageRecord.subscription_id
            )
        ).all()
    assert (agreement_id, quantity) == (found["agreementId"], 3)


def test_a_page_size_over_50_is_refused(live: Live) -> None:
    client = live.client()
    for call in (
        lambda: client.search_agreements(filters=[PROPOSER, PURCHASE], maxResults=51),
        lambda: client.get_agreement_terms(agreementId=SAAS_AGREEMENT, maxResults=51),
    ):
        assert refused(call, "ValidationException", 400)["reason"] == "INVALID_MAX_RESULTS"


def test_the_agreement_services_other_operations_are_unknown(live: Live) -> None:
    """The model has 24 operations; Agora serves the three that read agreements."""
    client = live.client()
    refused(lambda: client.list_agreement_payment_requests(partyType="Proposer"), "UnknownOperationException", 400)


def test_agreements_are_read_by_their_parties_only(live: Live) -> None:
    """An operator's access key is neither proposer nor acceptor."""
    client = live.client(OPERATOR_KEY)
    error = refused(lambda: client.describe_agreement(agreementId=SAAS_AGREEMENT), "AccessDeniedException", 403)
    assert error["reason"] == "INVALID_ACCESS"
