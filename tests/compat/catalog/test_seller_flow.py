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
from tests.compat.catalog.test_catalog_api import CATALOG, SAAS, change, private_offer, product_changes, run


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
