"""Every change type beyond the vertical slice, through boto3's unmodified client against a live server, each
checked in the database: AMI regions and instance types, container repositories, dimensions, delivery options,
the offer terms; and a change set that fails while applying, with its ErrorDetailList."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agora.db import Database
from agora.models import CatalogEntity, ChangeRequest, Offer, Product
from tests.compat.catalog.market import BUYER, LIMITED_SAAS, PUBLIC_AMI, PUBLIC_CONTAINER, PUBLIC_SAAS, Live, serving
from tests.compat.catalog.test_catalog_api import CATALOG, OFFER, SAAS, change, private_offer, refused, run

AMI = "AmiProduct@1.0"
CONTAINER = "ContainerProduct@1.0"


@pytest.fixture
def live(db: Database) -> Iterator[Live]:
    with serving(db) as running:
        yield running


def details(db: Database, entity_id: str) -> dict[str, Any]:
    with db.reader() as session:
        return dict(session.get_one(CatalogEntity, entity_id).details)


def product(db: Database, entity_id: str) -> Product:
    with db.reader() as session:
        found = session.scalars(select(Product).where(Product.entity_id == entity_id)).one()
        session.expunge(found)
        return found


def test_ami_regions_instance_types_and_future_regions(live: Live, db: Database) -> None:
    described = run(
        live,
        [
            change("AddInstanceTypes", AMI, {"InstanceTypes": ["m5.large", "c5.xlarge", "t3.micro"]}, PUBLIC_AMI),
            change("RestrictInstanceTypes", AMI, {"InstanceTypes": ["t3.micro"]}, PUBLIC_AMI),
            change(
                "UpdateFutureRegionSupport", AMI, {"FutureRegionSupport": {"SupportedRegions": ["All"]}}, PUBLIC_AMI
            ),
            change("AddRegions", AMI, {"Regions": ["eu-west-1"]}, PUBLIC_AMI),
        ],
    )
    assert described["Status"] == "SUCCEEDED", described
    stored = details(db, PUBLIC_AMI)
    assert stored["InstanceTypes"] == ["m5.large", "c5.xlarge"]
    assert stored["FutureRegionSupport"] == {"SupportedRegions": ["All"]}
    with db.reader() as session:  # a published listing's regions change through the operator's review (LST-05)
        [request] = session.scalars(select(ChangeRequest)).all()
        assert request.changes == {"regions": ["us-east-1", "eu-west-1"]}
    document = live.client().describe_entity(Catalog=CATALOG, EntityId=PUBLIC_AMI)["DetailsDocument"]
    assert document["InstanceTypes"] == ["m5.large", "c5.xlarge"]
    assert document["RegionAvailability"]["FutureRegionSupport"] == {"SupportedRegions": ["All"]}
    refused(
        lambda: live.client().start_change_set(
            Catalog=CATALOG, ChangeSet=[change("AddRepositories", AMI, {"Repositories": []}, PUBLIC_AMI)]
        ),
        "ValidationException",
        422,
        "not a change type of AmiProduct@1.0",
    )


def test_container_repositories_and_a_draft_products_regions(live: Live, db: Database) -> None:
    described = run(
        live,
        [
            change(
                "AddRepositories",
                CONTAINER,
                {"Repositories": [{"RepositoryName": "engine", "RepositoryType": "ECR"}]},
                PUBLIC_CONTAINER,
            ),
            change("CreateProduct", CONTAINER, {}, name="New"),
            change("AddRegions", CONTAINER, {"Regions": ["eu-west-1", "ap-south-1"]}, "$New.Entity.Identifier"),
            change("RestrictRegions", CONTAINER, {"Regions": ["us-east-1"]}, "$New.Entity.Identifier"),
        ],
    )
    assert described["Status"] == "SUCCEEDED", described
    assert details(db, PUBLIC_CONTAINER)["Repositories"][0]["RepositoryName"] == "engine"
    new = described["ChangeSet"][1]["Entity"]["Identifier"].split("@")[0]
    assert product(db, new).listing["regions"] == ["eu-west-1", "ap-south-1"]  # a draft changes in place
    document = live.client().describe_entity(Catalog=CATALOG, EntityId=PUBLIC_CONTAINER)["DetailsDocument"]
    assert document["Repositories"][0]["RepositoryName"] == "engine"


def test_dimensions_delivery_options_and_targeting_of_a_draft(live: Live, db: Database) -> None:
    ref = "$P.Entity.Identifier"
    described = run(
        live,
        [
            change("CreateProduct", SAAS, {"ProductTitle": "Dims"}, name="P"),
            change(
                "AddDimensions",
                SAAS,
                [
                    {
                        "Key": "Users",
                        "Name": "Users",
                        "Description": "Active users",
                        "Unit": "Users",
                        "Types": ["ExternallyMetered"],
                    },
                    {
                        "Key": "Calls",
                        "Name": "Calls",
                        "Description": "API calls",
                        "Unit": "Requests",
                        "Types": ["ExternallyMetered"],
                    },
                ],
                ref,
            ),
            change("UpdateDimensions", SAAS, [{"Key": "Users", "Description": "Monthly active users"}], ref),
            change("RestrictDimensions", SAAS, [{"Key": "Calls"}], ref),
            change(
                "AddDeliveryOptions",
                SAAS,
                {
                    "DeliveryOptions": [
                        {
                            "Details": {
                                "SaaSUrlDeliveryOptionDetails": {"FulfillmentUrl": "https://dims.example/register"}
                            }
                        }
                    ]
                },
                ref,
            ),
            change("UpdateTargeting", SAAS, {"PositiveTargeting": {"BuyerAccounts": [BUYER]}}, ref),
        ],
    )
    assert described["Status"] == "SUCCEEDED", described
    new = described["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
    stored = details(db, new)
    assert [(d["Key"], d["Description"]) for d in stored["Dimensions"]] == [("Users", "Monthly active users")]
    assert stored["Targeting"] == {"PositiveTargeting": {"BuyerAccounts": [BUYER]}}
    assert product(db, new).listing["fulfillment_url"] == "https://dims.example/register"


@pytest.mark.rule("PRC-08")
def test_published_dimensions_are_fixed(live: Live) -> None:
    client = live.client()
    for change_type, body in (
        ("AddDimensions", [{"Key": "More", "Description": "More", "Types": ["ExternallyMetered"]}]),
        ("UpdateDimensions", [{"Key": "WorkloadSmall", "Description": "Renamed"}]),
        ("RestrictDimensions", [{"Key": "WorkloadSmall"}]),
    ):
        refused(
            lambda ct=change_type, b=body: client.start_change_set(
                Catalog=CATALOG, ChangeSet=[change(ct, SAAS, b, PUBLIC_SAAS)]
            ),
            "ValidationException",
            422,
            "PRC-08",
        )
    refused(
        lambda: client.start_change_set(
            Catalog=CATALOG,
            ChangeSet=[
                change("CreateProduct", SAAS, {}, name="P"),
                change("AddDimensions", SAAS, [{"Key": "bad-key!", "Description": "x"}], "$P.Entity.Identifier"),
            ],
        ),
        "ValidationException",
        422,
        "PRC-08",
        "1–15 characters",
    )


def test_offer_terms_payment_schedule_renewal_and_support(live: Live, db: Database) -> None:
    """OFR-01: a payment schedule sums to the offer's total; BIL-02 bills each instalment on its date."""
    changes = private_offer()
    ref = "$PrivateOffer.Entity.Identifier"
    changes[3] = change(
        "UpdatePricingTerms",
        OFFER,
        {
            "PricingModel": "Contract",
            "Terms": [
                {
                    "Type": "FixedUpfrontPricingTerm",
                    "CurrencyCode": "USD",
                    "Price": "300.00",
                    "Duration": "P12M",
                    "Grants": [{"DimensionKey": "WorkloadSmall", "MaxQuantity": 1}],
                }
            ],
        },
        ref,
    )
    changes[-1:-1] = [
        change(
            "UpdatePaymentScheduleTerms",
            OFFER,
            {
                "Terms": [
                    {
                        "Type": "PaymentScheduleTerm",
                        "CurrencyCode": "USD",
                        "Schedule": [
                            {"ChargeDate": "2099-01-01", "ChargeAmount": "100.00"},
                            {"ChargeDate": "2099-06-01", "ChargeAmount": "200.00"},
                        ],
                    }
                ]
            },
            ref,
        ),
        change("UpdateRenewalTerms", OFFER, {"Terms": [{"Type": "RenewalTerm"}]}, ref),
        change("UpdateSupportTerms", OFFER, {"Terms": [{"Type": "SupportTerm", "RefundPolicy": "No refunds"}]}, ref),
    ]
    described = run(live, changes)
    assert described["Status"] == "SUCCEEDED", described
    offer_id = described["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
    with db.reader() as session:
        offer = session.scalars(select(Offer).where(Offer.entity_id == offer_id)).one()
        assert offer.total_cents == 30000 and [i["amount"] for i in offer.schedule] == ["100.00", "200.00"]
        assert offer.pricing["contract"]["dimensions"][0]["prices"] == {"12": "300.00"}
    terms = {
        t["Type"] for t in live.client().describe_entity(Catalog=CATALOG, EntityId=offer_id)["DetailsDocument"]["Terms"]
    }
    assert {"PaymentScheduleTerm", "RenewalTerm", "SupportTerm", "ConfigurableUpfrontPricingTerm"} <= terms
    short = [c for c in changes]
    short[-4] = change(
        "UpdatePaymentScheduleTerms",
        OFFER,
        {
            "Terms": [
                {"Type": "PaymentScheduleTerm", "Schedule": [{"ChargeDate": "2099-01-01", "ChargeAmount": "100.00"}]}
            ]
        },
        ref,
    )
    refused(
        lambda: live.client().start_change_set(Catalog=CATALOG, ChangeSet=short),
        "ValidationException",
        422,
        "OFR-01",
        "not the total",
    )


@pytest.mark.rule("LST-05")
def test_a_change_set_that_fails_while_applying_reports_the_change(live: Live, db: Database) -> None:
    """Checked when started, the set is applied later: if the product moved on meanwhile (its seller signed it
    off through the native API), the set FAILS as a whole, with the change's ErrorDetailList."""
    client = live.client()
    started = client.start_change_set(
        Catalog=CATALOG,
        ChangeSet=[
            change("UpdateInformation", SAAS, {"LongDescription": "Before sign-off"}, LIMITED_SAAS),
            change("UpdateVisibility", SAAS, {"TargetVisibility": "Public"}, LIMITED_SAAS),
        ],
    )
    with db.reader() as session:
        code = session.scalars(select(Product.code).where(Product.entity_id == LIMITED_SAAS)).one()
    assert live.api("POST", f"/products/{code}/sign-off", "acme-catalog-token").status_code == 200
    live.run_jobs()
    described = client.describe_change_set(Catalog=CATALOG, ChangeSetId=started["ChangeSetId"])
    assert described["Status"] == "FAILED" and described["FailureCode"] == "CLIENT_ERROR"
    assert described["ChangeSet"][0]["ErrorDetailList"] == []
    [error] = described["ChangeSet"][1]["ErrorDetailList"]
    assert error["ErrorCode"] == "INVALID_INPUT" and "LST-05" in error["ErrorMessage"]
    with db.reader() as session:  # all or nothing: the first change was rolled back with the second
        assert session.scalars(select(ChangeRequest)).all() == []
        listing = session.scalars(select(Product.listing).where(Product.entity_id == LIMITED_SAAS)).one()
        assert "long_description" not in listing
    listed = client.list_change_sets(Catalog=CATALOG, FilterList=[{"Name": "Status", "ValueList": ["FAILED"]}])
    assert [c["FailureCode"] for c in listed["ChangeSetSummaryList"]] == ["CLIENT_ERROR"]


def test_change_set_and_entity_tags(live: Live) -> None:
    client = live.client()
    started = client.start_change_set(
        Catalog=CATALOG,
        ChangeSet=[{**change("CreateProduct", SAAS, {}, name="P"), "EntityTags": [{"Key": "team", "Value": "a"}]}],
        ChangeSetTags=[{"Key": "ticket", "Value": "T-1"}],
    )
    live.run_jobs()
    assert client.list_tags_for_resource(ResourceArn=started["ChangeSetArn"])["Tags"] == [
        {"Key": "ticket", "Value": "T-1"}
    ]
    new = client.describe_change_set(Catalog=CATALOG, ChangeSetId=started["ChangeSetId"])["ChangeSet"][0]["Entity"][
        "Identifier"
    ]
    arn = client.describe_entity(Catalog=CATALOG, EntityId=new.split("@")[0])["EntityArn"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "a"}]
