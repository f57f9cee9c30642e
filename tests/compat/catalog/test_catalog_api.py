"""The Catalog API as boto3's unmodified `marketplace-catalog` client sees it, against a live server: change
sets through their states, entities described and listed, and every refusal in AWS's shape — with the
database checked afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from agora.db import Database
from agora.jobs import Worker
from agora.models import Offer, Product
from tests.catalog import files
from tests.compat.catalog.market import (
    BUYER,
    BUYER_KEY,
    LIMITED_SAAS,
    OTHER_BUYER,
    OTHER_SELLER_KEY,
    OTHERS,
    PUBLIC_SAAS,
    PUBLIC_SAAS_OFFER,
    Live,
    serving,
)

CATALOG = "AWSMarketplace"


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    with serving(db) as running:
        yield running


def change(
    change_type: str,
    entity_type: str,
    details: Any,
    identifier: str | None = None,
    name: str | None = None,
    as_string: bool = False,
) -> dict[str, Any]:
    item: dict[str, Any] = {"ChangeType": change_type, "Entity": {"Type": entity_type}}
    if identifier:
        item["Entity"]["Identifier"] = identifier
    if name:
        item["ChangeName"] = name
    if as_string:
        item["Details"] = json.dumps(details)
    else:
        item["DetailsDocument"] = details
    return item


def run(live: Live, changes: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    client = live.client()
    started = client.start_change_set(Catalog=CATALOG, ChangeSet=changes, **kwargs)
    assert client.describe_change_set(Catalog=CATALOG, ChangeSetId=started["ChangeSetId"])["Status"] == "PREPARING"
    live.run_jobs()
    described: dict[str, Any] = client.describe_change_set(Catalog=CATALOG, ChangeSetId=started["ChangeSetId"])
    return described


def refused(call: Any, code: str, status: int, *fragments: str) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert error["Error"]["Code"] == code, error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    message: str = error["Error"]["Message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


SAAS = "SaaSProduct@1.0"
OFFER = "Offer@1.0"
SMALL = {
    "Key": "WorkloadSmall",
    "Name": "Small",
    "Description": "Small workloads",
    "Unit": "Units",
    "Types": ["ExternallyMetered"],
}


def product_changes() -> list[dict[str, Any]]:
    return [
        change("CreateProduct", SAAS, {"ProductTitle": "Widget"}, name="CreateProductChange"),
        change(
            "UpdateInformation",
            SAAS,
            {
                "ProductTitle": "Widget Cloud",
                "ShortDescription": "Widgets as a service",
                "LongDescription": "Every widget you need",
                "Highlights": ["Fast"],
                "SearchKeywords": ["widgets"],
                "Categories": ["infrastructure"],
                "LogoUrl": "https://example.com/logo.png",
            },
            "$CreateProductChange.Entity.Identifier",
            as_string=True,
        ),
        change("AddDimensions", SAAS, [SMALL], "$CreateProductChange.Entity.Identifier"),
        change("CreateOffer", OFFER, {"ProductId": "$CreateProductChange.Entity.Identifier"}, name="PublicOffer"),
        change(
            "UpdatePricingTerms",
            OFFER,
            {
                "PricingModel": "Usage",
                "Terms": [
                    {
                        "Type": "UsageBasedPricingTerm",
                        "CurrencyCode": "USD",
                        "RateCards": [{"RateCard": [{"DimensionKey": "WorkloadSmall", "Price": "0.15"}]}],
                    }
                ],
            },
            "$PublicOffer.Entity.Identifier",
        ),
        change(
            "UpdateSupportTerms",
            OFFER,
            {"Terms": [{"Type": "SupportTerm", "RefundPolicy": "Refunds within 30 days: billing@widget.example"}]},
            "$PublicOffer.Entity.Identifier",
        ),
    ]


def test_a_saas_product_and_its_public_offer_by_change_set(live: Live, db: Database) -> None:
    described = run(live, product_changes(), ChangeSetName="Widget")
    assert described["Status"] == "SUCCEEDED", described
    assert described["ChangeSetName"] == "Widget" and described["Intent"] == "APPLY"
    product_id = described["ChangeSet"][0]["Entity"]["Identifier"]
    assert product_id.startswith("prod-") and product_id.endswith("@1")
    assert described["ChangeSet"][0]["ErrorDetailList"] == []
    offer_id = described["ChangeSet"][3]["Entity"]["Identifier"].split("@")[0]
    plain = product_id.split("@")[0]
    with db.reader() as session:
        product = session.scalars(select(Product).where(Product.entity_id == plain)).one()
        assert product.title == "Widget Cloud" and product.state == "draft" and product.kind == "saas"
        assert product.listing["short_description"] == "Widgets as a service"
        assert product.public_offer_entity_id == offer_id
        assert product.pricing == {
            "usage": {
                "category": "units",
                "dimensions": [
                    {"name": "WorkloadSmall", "description": "Small workloads", "unit": "Units", "rate": "0.15"}
                ],
            }
        }
        assert product.listing["refund_policy"].startswith("Refunds within 30 days")
    client = live.client()
    entity = client.describe_entity(Catalog=CATALOG, EntityId=plain)
    assert entity["EntityType"] == SAAS and entity["EntityIdentifier"] == f"{plain}@1"
    assert entity["EntityArn"].endswith(f":AWSMarketplace/SaaSProduct/{plain}")
    assert entity["EntityArn"].startswith("arn:aws:aws-marketplace:us-east-1:")
    assert json.loads(entity["Details"]) == entity["DetailsDocument"]
    document = entity["DetailsDocument"]
    assert document["Description"]["ProductTitle"] == "Widget Cloud"
    assert document["Description"]["Visibility"] == "Draft"
    assert document["PromotionalResources"]["LogoUrl"] == "https://example.com/logo.png"
    assert [d["Key"] for d in document["Dimensions"]] == ["WorkloadSmall"]
    offer = client.describe_entity(Catalog=CATALOG, EntityId=offer_id)["DetailsDocument"]
    assert offer["ProductId"] == plain and offer["State"] == "Draft"
    assert offer["Terms"][0]["RateCards"][0]["RateCard"] == [{"DimensionKey": "WorkloadSmall", "Price": "0.15"}]


def test_update_visibility_goes_through_review_and_sign_off(live: Live, db: Database) -> None:
    """LST-05: Limited submits for category review; the operator approves; publishing makes it limited; Public is
    the seller's sign-off. Nothing skips the review."""
    described = run(live, product_changes())
    plain = described["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
    message = refused(
        lambda: live.client().start_change_set(Catalog=CATALOG, ChangeSet=[change("ReleaseProduct", SAAS, {}, plain)]),
        "ValidationException",
        422,
        "LST-05",
        "category review",
    )
    assert "ChangeSet[0] (ReleaseProduct)" in message
    # Submitting needs the files the review reads (LST-03): the native API refuses, so the change set does too.
    refused(
        lambda: live.client().start_change_set(
            Catalog=CATALOG, ChangeSet=[change("UpdateVisibility", SAAS, {"TargetVisibility": "Limited"}, plain)]
        ),
        "ValidationException",
        422,
        "LST-03",
        "assets.logo",
    )
    with db.reader() as session:
        code = session.scalars(select(Product.code).where(Product.entity_id == plain)).one()
    for kind, body in (("logo", files.png()), ("user_guide", files.pdf())):
        reply = live.api(
            "POST",
            f"/products/{code}/assets",
            "acme-catalog-token",
            data={"kind": kind},
            files={"file": (f"{kind}.bin", body)},
        )
        assert reply.status_code == 201, reply.text
    assert (
        run(live, [change("UpdateVisibility", SAAS, {"TargetVisibility": "Limited"}, plain)])["Status"] == "SUCCEEDED"
    )
    client = live.client()
    assert (
        client.describe_entity(Catalog=CATALOG, EntityId=plain)["DetailsDocument"]["Description"]["Visibility"]
        == "Draft"
    )
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG, ChangeSet=[change("UpdateVisibility", SAAS, {"TargetVisibility": "Public"}, plain)]
        ),
        "ValidationException",
        422,
        "LST-05",
        "submitted",
    )
    assert live.api("POST", f"/reviews/{code}/approve", "catalog-ops-token", json={"reason": "ok"}).status_code == 200
    live.run_jobs()
    assert (
        client.describe_entity(Catalog=CATALOG, EntityId=plain)["DetailsDocument"]["Description"]["Visibility"]
        == "Limited"
    )
    assert run(live, [change("ReleaseProduct", SAAS, {}, plain)])["Status"] == "SUCCEEDED"  # already released
    assert run(live, [change("UpdateVisibility", SAAS, {"TargetVisibility": "Public"}, plain)])["Status"] == "SUCCEEDED"
    with db.reader() as session:
        assert session.scalars(select(Product.state).where(Product.entity_id == plain)).one() == "public"


def private_offer(
    product: str = PUBLIC_SAAS, buyers: tuple[str, ...] = (BUYER,), price: str = "0.08", until_days: int = 30
) -> list[dict[str, Any]]:
    ref = "$PrivateOffer.Entity.Identifier"
    return [
        change("CreateOffer", OFFER, {"ProductId": product}, name="PrivateOffer"),
        change("UpdateInformation", OFFER, {"Name": "Acme for Buyer", "Description": "Our best price"}, ref),
        change("UpdateTargeting", OFFER, {"PositiveTargeting": {"BuyerAccounts": list(buyers)}}, ref),
        change(
            "UpdatePricingTerms",
            OFFER,
            {
                "PricingModel": "Usage",
                "Terms": [
                    {
                        "Type": "UsageBasedPricingTerm",
                        "CurrencyCode": "USD",
                        "RateCards": [
                            {
                                "RateCard": [
                                    {"DimensionKey": "WorkloadSmall", "Price": price},
                                    {"DimensionKey": "WorkloadMedium", "Price": price},
                                ]
                            }
                        ],
                    }
                ],
            },
            ref,
        ),
        change("UpdateValidityTerms", OFFER, {"Terms": [{"Type": "ValidityTerm", "AgreementDuration": "P365D"}]}, ref),
        change(
            "UpdateLegalTerms",
            OFFER,
            {"Terms": [{"Type": "LegalTerm", "Documents": [{"Type": "StandardEula", "Version": "2022-07-14"}]}]},
            ref,
        ),
        change(
            "UpdateAvailability",
            OFFER,
            {"AvailabilityEndDate": "2099-12-31"} if until_days > 0 else {"AvailabilityEndDate": "2020-01-01"},
            ref,
        ),
        change("ReleaseOffer", OFFER, {}, ref),
    ]


def test_a_private_offer_is_extended_to_its_one_buyer(live: Live, db: Database) -> None:
    """OFR-01…03: the released offer is an Agora offer, extended to the buyer, who accepts it."""
    described = run(live, private_offer())
    assert described["Status"] == "SUCCEEDED", described
    offer_id = described["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
    with db.reader() as session:
        offer = session.scalars(select(Offer).where(Offer.entity_id == offer_id)).one()
        assert offer.state == "extended" and offer.duration_days == 365
        assert offer.pricing["usage"]["dimensions"][0]["rate"] == "0.08"
        public_id = offer.public_id
    document = live.client().describe_entity(Catalog=CATALOG, EntityId=offer_id)["DetailsDocument"]
    assert document["State"] == "Released" and document["Name"] == "Acme for Buyer"
    assert document["Targeting"] == {"PositiveTargeting": {"BuyerAccounts": [BUYER]}}
    assert {t["Type"] for t in document["Terms"]} >= {"UsageBasedPricingTerm", "ValidityTerm", "LegalTerm"}
    accepted = live.api("POST", f"/offers/{public_id}/accept", "catalog-buyer-token", json={"accept_eula": True})
    assert accepted.status_code == 200, accepted.text
    # OFR-02: released, it cannot change.
    refused(
        lambda: live.client().start_change_set(
            Catalog=CATALOG, ChangeSet=[change("UpdateInformation", OFFER, {"Name": "New"}, offer_id)]
        ),
        "ValidationException",
        422,
        "OFR-02",
    )


def test_what_the_rules_refuse_a_change_set_refuses(live: Live) -> None:
    client = live.client()
    # SEL-03: a seller outside the enhanced data sharing program makes no private offers, whichever door.
    others = private_offer(product=OTHERS)
    refused(
        lambda: live.client(OTHER_SELLER_KEY).start_change_set(Catalog=CATALOG, ChangeSet=others),
        "ValidationException",
        422,
        "SEL-03",
    )

    def start(changes: list[dict[str, Any]]) -> Any:
        return lambda: client.start_change_set(Catalog=CATALOG, ChangeSet=changes)

    refused(start(private_offer(buyers=(BUYER, OTHER_BUYER))), "ValidationException", 422, "OFR-01", "exactly one")
    refused(start(private_offer(until_days=-1)), "ValidationException", 422, "OFR-03", "already past")
    refused(start(private_offer(product=LIMITED_SAAS)), "ValidationException", 422, "public products")
    contract_and_usage = private_offer()
    contract_and_usage[3]["DetailsDocument"]["Terms"].append(
        {
            "Type": "ConfigurableUpfrontPricingTerm",
            "CurrencyCode": "USD",
            "RateCards": [
                {
                    "Selector": {"Type": "Duration", "Value": "P12M"},
                    "RateCard": [{"DimensionKey": "Seats", "Price": "100"}],
                }
            ],
        }
    )
    refused(start(contract_and_usage), "ValidationException", 422, "PRC-02")
    trial = private_offer()
    trial[3]["DetailsDocument"]["Terms"].append({"Type": "FreeTrialPricingTerm", "Duration": "P14D"})
    refused(start(trial), "ValidationException", 422, "free trial", "PRC-06")


def test_list_entities_summaries_filters_sort_and_paging(live: Live) -> None:
    client = live.client()
    listed = client.list_entities(Catalog=CATALOG, EntityType="SaaSProduct")
    ids = [e["EntityId"] for e in listed["EntitySummaryList"]]
    assert PUBLIC_SAAS in ids and LIMITED_SAAS in ids and OTHERS not in ids
    assert "NextToken" not in listed
    first = next(e for e in listed["EntitySummaryList"] if e["EntityId"] == PUBLIC_SAAS)
    assert first["Visibility"] == "Public" and first["SaaSProductSummary"]["Visibility"] == "Public"
    limited = client.list_entities(
        Catalog=CATALOG,
        EntityType="SaaSProduct",
        EntityTypeFilters={"SaaSProductFilters": {"Visibility": {"ValueList": ["Limited"]}}},
    )["EntitySummaryList"]
    assert [e["EntityId"] for e in limited] == [LIMITED_SAAS]
    page = client.list_entities(
        Catalog=CATALOG,
        EntityType="SaaSProduct",
        MaxResults=1,
        EntityTypeSort={"SaaSProductSort": {"SortBy": "EntityId", "SortOrder": "DESCENDING"}},
    )
    assert [e["EntityId"] for e in page["EntitySummaryList"]] == [LIMITED_SAAS] and page["NextToken"]
    rest = client.list_entities(
        Catalog=CATALOG,
        EntityType="SaaSProduct",
        MaxResults=1,
        NextToken=page["NextToken"],
        EntityTypeSort={"SaaSProductSort": {"SortBy": "EntityId", "SortOrder": "DESCENDING"}},
    )
    assert [e["EntityId"] for e in rest["EntitySummaryList"]] == [PUBLIC_SAAS] and "NextToken" not in rest
    offers = client.list_entities(Catalog=CATALOG, EntityType="Offer")["EntitySummaryList"]
    public = next(e for e in offers if e["EntityId"] == PUBLIC_SAAS_OFFER)
    assert public["OfferSummary"]["ProductId"] == PUBLIC_SAAS and public["Visibility"] == "Public"
    assert (
        client.list_entities(Catalog=CATALOG, EntityType="SaaSProduct", OwnershipType="SHARED")["EntitySummaryList"]
        == []
    )


def test_errors_in_aws_shape(live: Live) -> None:
    client = live.client()
    refused(lambda: client.describe_entity(Catalog=CATALOG, EntityId=OTHERS), "ResourceNotFoundException", 404)
    refused(lambda: client.describe_entity(Catalog="Elsewhere", EntityId=PUBLIC_SAAS), "ValidationException", 422)
    refused(
        lambda: live.client(BUYER_KEY).list_entities(Catalog=CATALOG, EntityType="SaaSProduct"),
        "AccessDeniedException",
        403,
    )
    refused(
        lambda: live.client(OTHER_SELLER_KEY).describe_entity(Catalog=CATALOG, EntityId=PUBLIC_SAAS),
        "ResourceNotFoundException",
        404,
    )
    too_many = [change("UpdateInformation", SAAS, {"LongDescription": "x"}, PUBLIC_SAAS)] * 21
    refused(lambda: client.start_change_set(Catalog=CATALOG, ChangeSet=too_many), "ValidationException", 422, "1 to 20")
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG, ChangeSet=[change("UpdateInformation", SAAS, {}, "$Nope.Entity.Identifier")]
        ),
        "ValidationException",
        422,
        "earlier change",
    )
    refused(
        lambda: client.start_change_set(Catalog=CATALOG, ChangeSet=[change("UpdateInformation", SAAS, {}, OTHERS)]),
        "ResourceNotFoundException",
        404,
    )
    refused(lambda: client.describe_change_set(Catalog=CATALOG, ChangeSetId="nope"), "ResourceNotFoundException", 404)
    lone = [
        {
            "ChangeType": "UpdateInformation",
            "Entity": {"Type": SAAS, "Identifier": PUBLIC_SAAS},
            "Details": '{"LongDescription": "\\ud800"}',
        }
    ]
    refused(lambda: client.start_change_set(Catalog=CATALOG, ChangeSet=lone), "ValidationException", 422, "Details")
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG,
            ChangeSet=[
                {
                    "ChangeType": "UpdateInformation",
                    "Entity": {"Type": SAAS, "Identifier": PUBLIC_SAAS},
                    "Details": "{nope",
                }
            ],
        ),
        "ValidationException",
        422,
        "not valid JSON",
    )
    refused(lambda: client.list_entities(Catalog=CATALOG, EntityType="DataProduct"), "ValidationException", 422)
    refused(
        lambda: client.list_entities(Catalog=CATALOG, EntityType="SaaSProduct", NextToken="bogus"),
        "ValidationException",
        422,
        "NextToken",
    )


def test_a_running_change_set_locks_its_entities_and_can_be_cancelled(live: Live) -> None:
    client = live.client()
    first = client.start_change_set(
        Catalog=CATALOG, ChangeSet=[change("UpdateInformation", SAAS, {"ShortDescription": "New words"}, PUBLIC_SAAS)]
    )
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG,
            ChangeSet=[change("UpdateInformation", SAAS, {"LongDescription": "Other words"}, PUBLIC_SAAS)],
        ),
        "ResourceInUseException",
        423,
        first["ChangeSetId"],
    )
    client.cancel_change_set(Catalog=CATALOG, ChangeSetId=first["ChangeSetId"])
    applying = client.start_change_set(
        Catalog=CATALOG,
        ChangeSet=[change("UpdateInformation", SAAS, {"ShortDescription": "Newer words"}, LIMITED_SAAS)],
    )
    Worker(live.db, only=frozenset({"catalog.prepare_change_set"})).run_until_idle()
    assert client.describe_change_set(Catalog=CATALOG, ChangeSetId=applying["ChangeSetId"])["Status"] == "APPLYING"
    refused(
        lambda: client.cancel_change_set(Catalog=CATALOG, ChangeSetId=applying["ChangeSetId"]),
        "ResourceInUseException",
        423,
        "APPLYING",
    )
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG,
            ChangeSet=[
                change("UpdateTargeting", SAAS, {"PositiveTargeting": {"BuyerAccounts": [BUYER]}}, LIMITED_SAAS)
            ],
        ),
        "ResourceInUseException",
        423,
        applying["ChangeSetId"],
    )
    live.run_jobs()
    assert client.describe_change_set(Catalog=CATALOG, ChangeSetId=applying["ChangeSetId"])["Status"] == "SUCCEEDED"
    assert client.describe_change_set(Catalog=CATALOG, ChangeSetId=first["ChangeSetId"])["Status"] == "CANCELLED"
    refused(
        lambda: client.cancel_change_set(Catalog=CATALOG, ChangeSetId=first["ChangeSetId"]),
        "ResourceInUseException",
        423,
    )
    second = client.start_change_set(
        Catalog=CATALOG, ChangeSet=[change("UpdateInformation", SAAS, {"LongDescription": "Other words"}, PUBLIC_SAAS)]
    )
    live.run_jobs()
    assert client.describe_change_set(Catalog=CATALOG, ChangeSetId=second["ChangeSetId"])["Status"] == "SUCCEEDED"


def test_client_request_token_and_validate_intent(live: Live, db: Database) -> None:
    client = live.client()
    changes = private_offer()
    first = client.start_change_set(Catalog=CATALOG, ChangeSet=changes, ClientRequestToken="tok-1", Intent="VALIDATE")
    again = client.start_change_set(Catalog=CATALOG, ChangeSet=changes, ClientRequestToken="tok-1", Intent="VALIDATE")
    assert again["ChangeSetId"] == first["ChangeSetId"]
    refused(
        lambda: client.start_change_set(Catalog=CATALOG, ChangeSet=changes[:1], ClientRequestToken="tok-1"),
        "ValidationException",
        422,
        "tok-1",
    )
    live.run_jobs()
    described = client.describe_change_set(Catalog=CATALOG, ChangeSetId=first["ChangeSetId"])
    assert described["Status"] == "SUCCEEDED" and described["Intent"] == "VALIDATE"
    with db.reader() as session:
        assert session.scalars(select(Offer)).all() == []  # validated, not applied


def test_list_change_sets_filters_sort_and_paging(live: Live) -> None:
    client = live.client()
    ids = []
    for n in range(3):
        ids.append(
            client.start_change_set(
                Catalog=CATALOG,
                ChangeSetName=f"set-{n}",
                ChangeSet=[change("UpdateInformation", SAAS, {"LongDescription": f"Words {n}"}, PUBLIC_SAAS)],
            )["ChangeSetId"]
        )
        live.run_jobs()
        live.clock.advance(timedelta(seconds=1))
    listed = client.list_change_sets(
        Catalog=CATALOG, Sort={"SortBy": "StartTime", "SortOrder": "DESCENDING"}, MaxResults=2
    )
    assert [c["ChangeSetId"] for c in listed["ChangeSetSummaryList"]] == ids[::-1][:2]
    rest = client.list_change_sets(
        Catalog=CATALOG,
        Sort={"SortBy": "StartTime", "SortOrder": "DESCENDING"},
        MaxResults=2,
        NextToken=listed["NextToken"],
    )
    assert [c["ChangeSetId"] for c in rest["ChangeSetSummaryList"]] == [ids[0]] and "NextToken" not in rest
    named = client.list_change_sets(Catalog=CATALOG, FilterList=[{"Name": "ChangeSetName", "ValueList": ["set-1"]}])
    assert [c["ChangeSetId"] for c in named["ChangeSetSummaryList"]] == [ids[1]]
    by_entity = client.list_change_sets(Catalog=CATALOG, FilterList=[{"Name": "EntityId", "ValueList": [PUBLIC_SAAS]}])
    assert len(by_entity["ChangeSetSummaryList"]) == 3
    assert all(c["Status"] == "SUCCEEDED" for c in by_entity["ChangeSetSummaryList"])


def test_batch_describe_and_tags(live: Live) -> None:
    client = live.client()
    batch = client.batch_describe_entities(
        EntityRequestList=[{"Catalog": CATALOG, "EntityId": PUBLIC_SAAS}, {"Catalog": CATALOG, "EntityId": OTHERS}]
    )
    assert batch["EntityDetails"][PUBLIC_SAAS]["DetailsDocument"]["Description"]["ProductTitle"] == "Acme Saas"
    assert batch["Errors"][OTHERS]["ErrorCode"] == "ResourceNotFoundException"
    arn = client.describe_entity(Catalog=CATALOG, EntityId=PUBLIC_SAAS)["EntityArn"]
    client.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "widgets"}, {"Key": "tier", "Value": "1"}])
    client.untag_resource(ResourceArn=arn, TagKeys=["tier"])
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "widgets"}]
    refused(
        lambda: live.client(OTHER_SELLER_KEY).list_tags_for_resource(ResourceArn=arn), "ResourceNotFoundException", 404
    )
