"""A seller's whole flow through unmodified boto3 clients: a SaaS product by change set, its dimensions and
prices, Agora's review (LST-05), a private offer released to one buyer (OFR-01…03), the buyer's acceptance, and
finding the agreement it made with SearchAgreements, and metering against it with BatchMeterUsage (issue 20's
"Done when")."""

from __future__ import annotations

from datetime import timedelta

import boto3
from sqlalchemy import select

from agora.db import Database
from agora.models import Offer, Product, Subscription, UsageRecord
from tests.catalog import files
from tests.compat.catalog.market import BUYER, ONE_ATTEMPT, SELLER_KEY, serving
from tests.compat.catalog.test_catalog_api import (
    CATALOG,
    OFFER,
    SAAS,
    change,
    private_offer,
    product_changes,
    refused,
    run,
)


def test_a_sellers_whole_flow(db: Database) -> None:
    with serving(db) as live:
        client = live.client()
        described = run(live, product_changes())
        assert described["Status"] == "SUCCEEDED", described
        product_id = described["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
        with db.reader() as session:
            code = session.scalars(select(Product.code).where(Product.entity_id == product_id)).one()
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
            run(live, [change("UpdateVisibility", SAAS, {"TargetVisibility": "Limited"}, product_id)])["Status"]
            == "SUCCEEDED"
        )
        assert (
            live.api("POST", f"/reviews/{code}/approve", "catalog-ops-token", json={"reason": "ok"}).status_code == 200
        )
        live.run_jobs()
        assert (
            run(live, [change("UpdateVisibility", SAAS, {"TargetVisibility": "Public"}, product_id)])["Status"]
            == "SUCCEEDED"
        )

        offer_changes = private_offer(product=product_id)
        offer_changes[3]["DetailsDocument"]["Terms"][0]["RateCards"][0]["RateCard"] = [
            {"DimensionKey": "WorkloadSmall", "Price": "0.09"}
        ]
        released = run(live, offer_changes)
        assert released["Status"] == "SUCCEEDED", released
        offer_id = released["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
        with db.reader() as session:
            public_id = session.scalars(select(Offer.public_id).where(Offer.entity_id == offer_id)).one()
        # The buyer accepted two hours ago (the server's clock; boto3 signs with the wall clock, so it comes back).
        now = live.clock.now()
        live.clock.set(now - timedelta(hours=2))
        accepted = live.api("POST", f"/offers/{public_id}/accept", "catalog-buyer-token", json={"accept_eula": True})
        assert accepted.status_code == 200, accepted.text
        live.clock.set(now)
        assert (
            client.describe_entity(Catalog=CATALOG, EntityId=offer_id)["DetailsDocument"]["AgoraOfferState"]
            == "accepted"
        )

        agreements = boto3.client(
            "marketplace-agreement",
            endpoint_url=live.url,
            region_name="us-east-1",
            aws_access_key_id=SELLER_KEY[0],
            aws_secret_access_key=SELLER_KEY[1],
            config=ONE_ATTEMPT,
        )
        found = agreements.search_agreements(
            catalog="AWSMarketplace",
            filters=[
                {"name": "PartyType", "values": ["Proposer"]},
                {"name": "AgreementType", "values": ["PurchaseAgreement"]},
                {"name": "OfferId", "values": [offer_id]},
            ],
        )["agreementViewSummaries"]
        assert [(a["acceptor"]["accountId"], a["status"]) for a in found] == [(BUYER, "ACTIVE")], found
        agreement_id = found[0]["agreementId"]
        described_agreement = agreements.describe_agreement(agreementId=agreement_id)
        assert described_agreement["proposalSummary"]["offerId"] == offer_id
        assert described_agreement["proposalSummary"]["resources"] == [{"id": product_id, "type": "SaaSProduct"}]
        with db.reader() as session:  # the software learns its customer by ResolveCustomer; the test reads it
            customer = session.scalars(
                select(Subscription.customer_identifier).where(Subscription.agreement_id == agreement_id)
            ).one()
        metering = boto3.client(
            "meteringmarketplace",
            endpoint_url=live.url,
            region_name="us-east-1",
            aws_access_key_id=SELLER_KEY[0],
            aws_secret_access_key=SELLER_KEY[1],
            config=ONE_ATTEMPT,
        )
        hour = (live.clock.now() - timedelta(hours=1)).replace(minute=0, second=0)
        result = metering.batch_meter_usage(
            ProductCode=code,
            UsageRecords=[
                {"Timestamp": hour, "CustomerIdentifier": customer, "Dimension": "WorkloadSmall", "Quantity": 7}
            ],
        )
        assert [r["Status"] for r in result["Results"]] == ["Success"], result
        with db.reader() as session:
            assert session.scalars(
                select(UsageRecord.quantity).where(UsageRecord.dimension == "WorkloadSmall")
            ).all() == [7]
        assert (
            BUYER
            in client.describe_entity(Catalog=CATALOG, EntityId=offer_id)["DetailsDocument"]["Targeting"][
                "PositiveTargeting"
            ]["BuyerAccounts"]
        )

        # The seller replaces the agreement with a new private offer at a lower price (CreateReplacementOffer):
        # accepted, it ends the subscription, whose agreement is then REPLACED, and starts a new agreement.
        replacement = private_offer(product=product_id, price="0.06")
        replacement[0] = change("CreateReplacementOffer", OFFER, {"AgreementId": agreement_id}, name="PrivateOffer")
        replacement = [c for c in replacement if c["ChangeType"] != "UpdateTargeting"]  # the agreement's buyer
        released_again = run(live, replacement)
        assert released_again["Status"] == "SUCCEEDED", released_again
        new_offer = released_again["ChangeSet"][0]["Entity"]["Identifier"].split("@")[0]
        targeting = client.describe_entity(Catalog=CATALOG, EntityId=new_offer)["DetailsDocument"]["Targeting"]
        assert targeting == {"PositiveTargeting": {"BuyerAccounts": [BUYER]}}
        with db.reader() as session:
            new_public_id = session.scalars(select(Offer.public_id).where(Offer.entity_id == new_offer)).one()
        accepted = live.api(
            "POST", f"/offers/{new_public_id}/accept", "catalog-buyer-token", json={"accept_eula": True}
        )
        assert accepted.status_code == 200, accepted.text
        assert agreements.describe_agreement(agreementId=agreement_id)["status"] == "REPLACED"
        [new_agreement] = agreements.search_agreements(
            catalog="AWSMarketplace",
            filters=[
                {"name": "PartyType", "values": ["Proposer"]},
                {"name": "AgreementType", "values": ["PurchaseAgreement"]},
                {"name": "OfferId", "values": [new_offer]},
            ],
        )["agreementViewSummaries"]
        assert new_agreement["status"] == "ACTIVE" and new_agreement["agreementId"] != agreement_id

        # An agreement that has ended, or that is not one of the seller's, cannot be replaced.
        for agreement, code, status in (
            (agreement_id, "ValidationException", 422),
            ("agmt-nosuchagreement", "ValidationException", 422),  # a change set's refusals are all validation
        ):
            refused(
                lambda agreement=agreement: client.start_change_set(
                    Catalog=CATALOG,
                    ChangeSet=[change("CreateReplacementOffer", OFFER, {"AgreementId": agreement}, name="Replace")],
                ),
                code,
                status,
                agreement,
            )
