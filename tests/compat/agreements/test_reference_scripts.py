"""AWS's reference Agreement API scripts for sellers (aws-samples/aws-marketplace-reference-code, vendored
unmodified under reference/) run against `agora serve` with `AWS_ENDPOINT_URL` and the seller's access keys.

The scripts hard-code their ids (`agmt-1111111111111111111111111`, `prod-1111111111111`, `offer-1111111111111`
…), so the market gives those ids to its agreements, product and offers. They log and swallow errors and exit
0, so each run is judged by what it printed: the values the server holds.

All 23 scripts run here, 22 of them printing what Agora holds (`get_all_agreements` searches as the
acceptor, so it runs with a buyer's keys as well as the seller's; `get_agreement_product_offer_detail` and
`get_agreement_pricing_type` also read the offer through the Catalog API's DescribeEntity).
`search_agreements_by_account_id` runs but filters on `AcceptorId`, which is not one of the documented filter
names (AcceptorAccountId is): Agora refuses it with ValidationException INVALID_FILTER_NAME, and the script
prints that error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from agora.db import Database
from agora.models import Offer, Product, Subscription
from tests.compat.agreements.market import (
    ACCEPTED_OFFER,
    ANNUAL_AGREEMENT,
    CONTRACT,
    CONTRACT_AGREEMENT,
    CONTRACT_ENTITY,
    OFFER_AGREEMENT,
    PRIVATE_ENTITY,
    SAAS_AGREEMENT,
    agreement_market,
)
from tests.factories.metering import BUYER, BUYER_KEY, OTHER_BUYER, SAAS, SELLER_KEY
from tests.live import free_port

pytestmark = pytest.mark.slow  # `agora serve` and each script are processes of their own

SELLER_SCRIPTS = Path(__file__).parent / "reference" / "python" / "src" / "agreements_api" / "seller"
REFERENCE_AGREEMENT = "agmt-1111111111111111111111111"  # most scripts
RENEWAL_AGREEMENT = "agmt-11111111111111111111"  # get_agreement_terms_auto_renewal
REFERENCE_PRODUCT = "prod-1111111111111"
REFERENCE_OFFER = "offer-1111111111111"  # get_agreement_pricing_type
SEARCHED_OFFER = "1111111111111111111111111"  # search_agreements_by_offer_id


@pytest.fixture
def served(db: Database, db_url: str, tmp_path: Path) -> Iterator[str]:
    """The agreement market with the scripts' ids, served by `agora serve` on the wall clock."""
    agreement_market(db, datetime.now(UTC).replace(microsecond=0) - timedelta(days=1))
    with db.unit_of_work() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.agreement_id == CONTRACT_AGREEMENT)
            .values(agreement_id=REFERENCE_AGREEMENT)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.agreement_id == ANNUAL_AGREEMENT)
            .values(agreement_id=RENEWAL_AGREEMENT)
        )
        session.execute(update(Product).where(Product.code == SAAS).values(entity_id=REFERENCE_PRODUCT))
        session.execute(update(Product).where(Product.code == CONTRACT).values(public_offer_entity_id=SEARCHED_OFFER))
        session.execute(update(Offer).where(Offer.entity_id == ACCEPTED_OFFER).values(entity_id=REFERENCE_OFFER))
    port = free_port()
    env = {**os.environ, "AGORA_DATABASE_URL": db_url, "AGORA_VAR_DIR": str(tmp_path / "var")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agora", "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(base: str, script: str, *args: str, key: tuple[str, str] = SELLER_KEY) -> str:
    """Run one vendored script as published, with `key`'s credentials; its stdout and stderr together."""
    path = SELLER_SCRIPTS / script / f"{script}.py"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": base,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
        "AWS_MAX_ATTEMPTS": "1",
    }
    done = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


def test_the_reference_seller_agreement_scripts_read_agoras_agreements(served: str) -> None:
    expected: dict[tuple[str, ...], list[str]] = {
        ("describe_agreement", "--agreement-id", SAAS_AGREEMENT): [SAAS_AGREEMENT, f'"accountId": "{BUYER}"'],
        ("get_agreement_customer", "--agreement-id", SAAS_AGREEMENT): [f"Customer account: {BUYER}"],
        ("get_agreement_financial_details", "--agreement-id", REFERENCE_AGREEMENT): ["Agreement Value: USD 1100.00"],
        ("get_agreement_free_trial_details", "--agreement-id", RENEWAL_AGREEMENT): ['"duration": "P7D"'],
        ("get_agreement_status", "--agreement-id", SAAS_AGREEMENT): ["Agreement status: ACTIVE"],
        ("get_agreement_support_terms", "--agreement-id", SAAS_AGREEMENT): [
            '"refundPolicy": "Full refund within 30 days: billing@example.com"'
        ],
        ("get_agreement_product_type",): [f"Product ID: {CONTRACT_ENTITY}  |  Product Type: SaaSProduct"],
        # These two also read the offer through the Catalog API's DescribeEntity.
        ("get_agreement_pricing_type",): [f"agreementId={OFFER_AGREEMENT};productType=SaaSProduct", "pricing type="],
        ("get_agreement_product_offer_detail", "--agreement_id", OFFER_AGREEMENT): [
            '"EntityType": "Offer@1.0"',
            f'"EntityIdentifier": "{REFERENCE_OFFER}@1"',
            f'"ProductId": "{PRIVATE_ENTITY}"',
        ],
        ("get_agreement_terms_auto_renewal",): ["Auto Renewal is True"],
        ("get_agreement_terms_dimension_instances",): ['"selectorValue": "P12M"', '"dimensionValue": 10'],
        ("get_agreement_terms_dimension_purchased",): ["Dimension Key: admins", "Dimension Key: seats"],
        ("get_agreement_terms_eula",): ['"type": "StandardEula"'],
        ("get_agreement_terms_pricing_each_dimension",): ['"dimensionKey": "seats"', '"price": "100"'],
        ("get_all_agreement_ids",): [REFERENCE_AGREEMENT, SAAS_AGREEMENT, RENEWAL_AGREEMENT],
        ("search_agreements_by_endDate",): [REFERENCE_AGREEMENT, RENEWAL_AGREEMENT, OFFER_AGREEMENT],
        ("search_agreements_by_id",): [SAAS_AGREEMENT, REFERENCE_AGREEMENT, '"type": "SaaSProduct"'],
        ("search_agreements_by_offer_id",): [REFERENCE_AGREEMENT, f'"offerId": "{SEARCHED_OFFER}"'],
        ("search_agreements_by_product_id",): [SAAS_AGREEMENT, f'"id": "{REFERENCE_PRODUCT}"'],
        ("search_agreements_by_status",): [SAAS_AGREEMENT, REFERENCE_AGREEMENT, OFFER_AGREEMENT],
        ("search_agreements_by_account_id", "--account_id", BUYER): [
            "ValidationException",
            "AcceptorId",
        ],
    }
    outputs = {args: run(served, *args) for args in expected}
    missing = {args[0]: [text for text in wanted if text not in outputs[args]] for args, wanted in expected.items()}
    assert not any(missing.values()), "\n\n".join(
        f"{name}: missing {texts}\n{outputs[next(a for a in expected if a[0] == name)]}"
        for name, texts in missing.items()
        if texts
    )
    # get_all_agreements searches as the acceptor: a seller accepts nothing; the buyer's keys list its own.
    assert run(served, "get_all_agreements").strip() == "[]"
    bought = run(served, "get_all_agreements", key=BUYER_KEY)
    assert all(text in bought for text in (REFERENCE_AGREEMENT, OFFER_AGREEMENT, '"status": "ACTIVE"')), bought
    assert f'"accountId": "{OTHER_BUYER}"' not in bought
    # Filters are honoured, not ignored: the end-date search lists no pay-as-you-go agreement, the product search
    # only the product's agreements.
    assert SAAS_AGREEMENT not in outputs[("search_agreements_by_endDate",)]
    assert REFERENCE_AGREEMENT not in outputs[("search_agreements_by_product_id",)]


def test_the_payment_schedule_script_reads_a_private_offers_schedule(served: str, db: Database) -> None:
    """get_agreement_terms_payment_schedule reads REFERENCE_AGREEMENT too: here it is the accepted offer's."""
    with db.unit_of_work() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.agreement_id == REFERENCE_AGREEMENT)
            .values(agreement_id=CONTRACT_AGREEMENT)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.agreement_id == OFFER_AGREEMENT)
            .values(agreement_id=REFERENCE_AGREEMENT)
        )
    output = run(served, "get_agreement_terms_payment_schedule")
    assert output.count('"chargeAmount": "600.00"') == 2, output
    assert '"currencyCode": "USD"' in output, output
