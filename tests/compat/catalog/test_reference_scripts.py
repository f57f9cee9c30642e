"""AWS's reference scripts for the Catalog API (aws-samples/aws-marketplace-reference-code, vendored unmodified
under reference/), each run against a live server with only AWS_ENDPOINT_URL and the seller's keys in its
environment. The scripts log and swallow errors, so each is judged by what the server holds afterwards: what a
script may do is done, and where it asks for what RULES.md refuses, nothing changed and the refusal it logged is
AWS's ValidationException naming the rule.

`variant` picks the market: which product the scripts' hard-coded prod-1111111111111 is (saas, ami, container, or
a limited saas), or "private", where offer-1111111111111 is a draft private offer rather than a public offer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from agora.db import Database
from agora.models import CatalogEntity, ChangeRequest, ChangeSet, PriceVersion, Product
from tests.compat.catalog.market import BUYER, PUBLIC_SAAS, PUBLIC_SAAS_OFFER, Live, serving
from tests.compat.catalog.scripts import SRC, run_script

Check = Callable[[Database, str], None]


@dataclass(frozen=True)
class Script:
    path: str
    variant: str = "saas"
    args: tuple[str, ...] = ()
    check: Check | None = None  # what the server holds after a script Agora runs
    refused: str | None = None  # the rule (or reason) a script Agora refuses is refused with
    setup: Callable[[Live], None] | None = None


def _product(db: Database, entity_id: str = PUBLIC_SAAS) -> Product:
    with db.reader() as session:
        product = session.scalars(select(Product).where(Product.entity_id == entity_id)).one()
        session.expunge(product)
        return product


def _extra(db: Database, entity_id: str) -> dict[str, Any]:
    with db.reader() as session:
        return dict(session.get_one(CatalogEntity, entity_id).details)


def _created(kind: str, public_offer: bool = True) -> Check:
    def check(db: Database, output: str) -> None:
        with db.reader() as session:
            made = session.scalars(select(Product).where(Product.kind == kind, Product.code.like("prod-%"))).all()
            assert len(made) == 1 and made[0].state == "draft"
            if public_offer:
                offer = session.get_one(CatalogEntity, made[0].public_offer_entity_id)
                assert offer.product_id == made[0].id

    return check


def _printed(*fragments: str) -> Check:
    def check(db: Database, output: str) -> None:
        for fragment in fragments:
            assert fragment in output, output[-2000:]

    return check


def _draft_offer_named(db: Database, output: str) -> None:
    with db.reader() as session:
        drafts = session.scalars(select(CatalogEntity).where(CatalogEntity.offer_id.is_(None))).all()
        named = [d for d in drafts if d.details.get("Name") == "Test Private Offer"]
        assert len(named) == 1 and named[0].details["ProductId"] == PUBLIC_SAAS


def _offer_renamed(db: Database, output: str) -> None:
    details = _extra(db, PUBLIC_SAAS_OFFER)
    assert (details["Name"], details["Description"]) == ("New offer name", "New offer description")


def _custom_eula(db: Database, output: str) -> None:
    [legal] = [t for t in _extra(db, PUBLIC_SAAS_OFFER)["Terms"] if t["Type"] == "LegalTerm"]
    assert legal["Documents"][0]["Type"] == "CustomEula"


def _refund_policy_requested(db: Database, output: str) -> None:
    """A public product's listing changes through a change request the operator decides on (LST-05)."""
    with db.reader() as session:
        [request] = session.scalars(select(ChangeRequest)).all()
        assert request.changes == {"refund_policy": "Updated refund policy description"}
        assert request.state == "pending"


def _regions_requested(regions: list[str]) -> Check:
    def check(db: Database, output: str) -> None:
        with db.reader() as session:
            [request] = session.scalars(select(ChangeRequest)).all()
            assert request.changes == {"regions": regions}

    return check


def _restricted(db: Database, output: str) -> None:
    assert _product(db).state == "restricted"


def _signed_off(db: Database, output: str) -> None:
    assert _product(db).state == "public"


def _future_regions(db: Database, output: str) -> None:
    assert _extra(db, PUBLIC_SAAS)["FutureRegionSupport"] == {"SupportedRegions": ["All"]}


def _instance_type_priced(db: Database, output: str) -> None:
    """CHG-01/02: the public offer's new prices are the product's next price version, noticed to subscribers."""
    product = _product(db)
    assert product.pricing is not None
    assert product.pricing["hourly"]["m7g.8xlarge"] == "0.55"
    with db.reader() as session:
        versions = select(func.count()).select_from(PriceVersion).where(PriceVersion.product_id == product.id)
        assert session.scalar(versions) == 2
    assert "m7g.8xlarge" in [d["Key"] for d in _extra(db, PUBLIC_SAAS)["Dimensions"]]


def _eleven_private_offers(live: Live) -> None:
    """list_product_offers.py returns its list only from inside its paging loop (`return` is indented under
    `while "NextToken" in response`), so it prints offers only when there are more than its page of 10."""
    client = live.client()
    for n in range(10):
        ref = "$Offer.Entity.Identifier"
        client.start_change_set(
            Catalog="AWSMarketplace",
            ChangeSet=[
                {
                    "ChangeType": "CreateOffer",
                    "Entity": {"Type": "Offer@1.0"},
                    "ChangeName": "Offer",
                    "DetailsDocument": {"ProductId": PUBLIC_SAAS, "Name": f"Offer {n}"},
                },
                {
                    "ChangeType": "UpdateTargeting",
                    "Entity": {"Type": "Offer@1.0", "Identifier": ref},
                    "DetailsDocument": {"PositiveTargeting": {"BuyerAccounts": [BUYER]}},
                },
            ],
        )
    live.run_jobs()


OFFERS = "offers/"
PRODUCTS = "products/"
SCRIPTS = [
    Script("entities/batch_describe_entities.py", check=_printed(f'"{PUBLIC_SAAS}"', f'"{PUBLIC_SAAS_OFFER}"')),
    Script(
        "entities/list_product_offers.py",
        "private",
        ("--entity-id", PUBLIC_SAAS),
        check=_printed(PUBLIC_SAAS_OFFER, "Offer 9"),
        setup=_eleven_private_offers,
    ),
    Script(OFFERS + "create_draft_private_offer/start_changeset.py", check=_draft_offer_named),
    Script(
        OFFERS + "create_private_offer_with_contract_pricing_for_ami_product/start_changeset.py",
        "ami",
        refused="OFR-01",
    ),
    Script(
        OFFERS + "create_private_offer_with_contract_pricing_for_container_product/start_changeset.py",
        "container",
        refused="OFR-03",
    ),
    Script(
        OFFERS + "create_private_offer_with_contract_pricing_with_flexible_payment_schedule_for_saas_product/"
        "start_changeset.py",
        refused="BIL-02",
    ),
    Script(
        OFFERS + "create_private_offer_with_contract_with_pay_as_you_go_pricing_for_saas_product/start_changeset.py",
        refused="OFR-01",
    ),
    Script(
        OFFERS + "create_private_offer_with_hourly_annual_pricing_and_flexible_payment_schedule_for_ami_product/"
        "start_changeset.py",
        "ami",
        refused="OFR-01",
    ),
    Script(
        OFFERS + "create_private_offer_with_hourly_annual_pricing_for_ami_product/start_changeset.py",
        "ami",
        refused="OFR-01",
    ),
    Script(
        OFFERS + "create_private_offer_with_hourly_pricing_for_ami_product/start_changeset.py", "ami", refused="OFR-01"
    ),
    Script(
        OFFERS + "create_private_offer_with_subscription_pricing_for_saas_product/start_changeset.py", refused="OFR-01"
    ),
    Script(
        OFFERS + "create_private_offer_with_tiered_contract_pricing_for_saas_product/start_changeset.py",
        refused="OFR-01",
    ),
    Script(
        OFFERS + "create_public_free_trial_offer_with_subscription_pricing_for_saas_product/start_changeset.py",
        refused="PRC-06",
    ),
    Script(
        OFFERS + "create_replacement_private_offer_with_contract_pricing/start_changeset.py",
        refused="AgreementId agmt-1111111111111111111111111 is not an agreement on your products",
    ),
    Script(OFFERS + "create_saas_product_custom_dimension_and_private_offer/start_changeset.py", refused="PRC-08"),
    Script(OFFERS + "describe_offer/describe_offer.py", check=_printed(f'"Id": "{PUBLIC_SAAS_OFFER}"')),
    Script(OFFERS + "expire_private_offer/start_changeset.py", "private", refused="OFR-03"),
    Script(OFFERS + "list_private_offer/list_private_offers.py", "private", check=_printed(PUBLIC_SAAS_OFFER)),
    Script(OFFERS + "update_eula/start_changeset.py", "private", check=_custom_eula),
    Script(
        OFFERS + "update_free_trial_duration_of_public_free_trial_offer_for_saas_product/start_changeset.py",
        refused="PRC-06",
    ),
    Script(OFFERS + "update_offer_expiration_date_of_private_offer/start_changeset.py", "private", refused="OFR-03"),
    Script(OFFERS + "update_offer_name_and_description/start_changeset.py", "private", check=_offer_renamed),
    Script(OFFERS + "update_offer_targeting/start_changeset.py", "private", refused="OFR-01"),
    Script(OFFERS + "update_offer_with_contract_and_pay_as_you_go_pricing/start_changeset.py", refused="PRC-02"),
    Script(OFFERS + "update_offer_with_hourly_annual_pricing/start_changeset.py", "ami", refused="PRC-16"),
    Script(OFFERS + "update_refund_policy/start_changeset.py", check=_refund_policy_requested),
    Script(
        PRODUCTS + "ami/add_dimension_to_ami_product_and_set_price_in_public_offer/start_changeset.py",
        "ami",
        check=_instance_type_priced,
    ),
    Script(
        PRODUCTS + "ami/add_region_existing_ami_product/start_changeset.py",
        "ami",
        check=_regions_requested(["us-east-1", "us-east-2", "us-west-2"]),
    ),
    Script(PRODUCTS + "ami/create_draft_ami_product_with_draft_public_offer/start_changeset.py", check=_created("ami")),
    Script(
        PRODUCTS + "ami/create_limited_ami_product_and_public_offer_with_hourly_annual_pricing/start_changeset.py",
        refused="LST-05",
    ),
    Script(
        PRODUCTS + "ami/create_limited_ami_product_and_public_offer_with_hourly_monthly_pricing/start_changeset.py",
        refused="LST-05",
    ),
    Script(
        PRODUCTS + "ami/create_limited_ami_product_and_public_offer_with_hourly_pricing/start_changeset.py",
        refused="LST-05",
    ),
    Script(PRODUCTS + "ami/restrict_existing_ami/start_changeset.py", "ami", check=_restricted),
    Script(
        PRODUCTS + "ami/restrict_region_existing_ami_product/start_changeset.py",
        "ami",
        check=_regions_requested(["us-east-1"]),
    ),
    Script(PRODUCTS + "ami/update_future_region_support/start_changeset.py", "ami", check=_future_regions),
    Script(
        PRODUCTS + "container/create_draft_container_product_with_draft_public_offer/start_changeset.py",
        check=_created("container"),
    ),
    Script(PRODUCTS + "container/create_limited_container_product_public_offer/start_changeset.py", refused="LST-05"),
    Script(PRODUCTS + "describe_product/describe_product.py", check=_printed('"ProductTitle": "Acme Saas"')),
    Script(PRODUCTS + "list_products/list_products.py", "ami", check=_printed(PUBLIC_SAAS, PUBLIC_SAAS_OFFER)),
    Script(
        PRODUCTS + "saas/create_draft_saas_product_with_draft_public_offer/start_changeset.py", check=_created("saas")
    ),
    Script(
        PRODUCTS + "saas/create_limited_saas_product_and_public_offer_with_contract_pricing/start_changeset.py",
        refused="LST-05",
    ),
    Script(
        PRODUCTS + "saas/create_limited_saas_product_and_public_offer_with_contract_with_pay_as_you_go_pricing/"
        "start_changeset.py",
        refused="LST-05",
    ),
    Script(
        PRODUCTS + "saas/create_limited_saas_product_and_public_offer_with_subscription_pricing/start_changeset.py",
        refused="LST-05",
    ),
    Script(PRODUCTS + "saas/publish_saas_product_public_offer/start_changeset1.py", refused="LST-05"),
    Script(PRODUCTS + "saas/publish_saas_product_public_offer/start_changeset2.py", "limited", check=_signed_off),
    Script(
        PRODUCTS + "saas/update_name_dimension_saas_product/start_changeset.py", refused="prod-111111111111 not found"
    ),
]


@pytest.fixture
def market(db: Database, request: pytest.FixtureRequest) -> Iterator[Live]:
    with serving(db, request.param) as live:
        yield live


def test_every_script_is_listed() -> None:
    """Every vendored script but the two-step bulk workflow (its own README: templates, shared_env.json) and
    its helpers has its row here, so the README's count is this table's."""
    scripts = {
        str(p.relative_to(SRC / "catalog_api"))
        for p in (SRC / "catalog_api").rglob("*.py")
        if "bulk_create_private_offer_usage_based" not in p.parts
    }
    assert scripts == {s.path for s in SCRIPTS}
    assert len(SCRIPTS) == 46
    assert sum(1 for s in SCRIPTS if s.check) == 19


@pytest.mark.slow
@pytest.mark.parametrize(
    ("market", "script"), [(s.variant, s) for s in SCRIPTS], indirect=["market"], ids=[s.path for s in SCRIPTS]
)
def test_reference_script(market: Live, db: Database, script: Script) -> None:
    if script.setup is not None:
        script.setup(market)
    with db.reader() as session:
        before = session.scalar(select(func.count()).select_from(ChangeSet))
    result = run_script(market, script.path, *script.args)
    market.run_jobs()
    output = result.stdout + result.stderr
    with db.reader() as session:
        sets = session.scalars(select(ChangeSet).where(ChangeSet.id > (before or 0))).all()
    if script.refused is not None:
        assert sets == [], "a refused change set leaves nothing behind"
        assert "ValidationException" in output or "ResourceNotFoundException" in output, output[-2000:]
        assert script.refused in output, output[-2000:]
        return
    assert script.check is not None
    if "start_changeset" in script.path:
        assert [s.status for s in sets] == ["SUCCEEDED"], [(s.status, s.failure_description) for s in sets]
    else:
        assert result.returncode == 0, output[-2000:]
    script.check(db, output)
