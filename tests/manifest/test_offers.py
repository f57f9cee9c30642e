"""The manifest's `offers:` section (private offers as they stand: draft, extended or accepted) and the
subscriptions' `agreement_id`: fixtures with known ids for the Catalog and Agreement APIs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from agora import clock
from agora.db import Database
from agora.manifest.loader import load_data
from agora.manifest.parse import ManifestError
from agora.models import Job, Offer, Subscription
from tests.compat.agreements.market import (
    ACCEPTED_OFFER,
    DRAFT_OFFER,
    EXTENDED_OFFER,
    OFFER_AGREEMENT,
    PRIVATE,
    SAAS_AGREEMENT,
    agreement_manifest,
)
from tests.factories.metering import BUYER

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
AT = NOW - timedelta(days=1)


@pytest.fixture
def frozen() -> Iterator[clock.ManualClock]:
    with clock.use_clock(clock.ManualClock(NOW)) as moved:
        assert isinstance(moved, clock.ManualClock)
        yield moved


def load(db: Database, data: dict[str, Any], **options: Any) -> Any:
    with db.unit_of_work() as session:
        return load_data(copy.deepcopy(data), session, **options)


def problems(db: Database, data: dict[str, Any], **options: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(db, data, **options)
    return [str(p) for p in caught.value.problems]


@pytest.mark.rule("OFR-01")
def test_offers_load_in_their_states_with_their_ids_OFR_01(db: Database, frozen: clock.ManualClock) -> None:
    load(db, agreement_manifest(AT))
    with db.reader() as session:
        offers = {o.entity_id: o for o in session.scalars(select(Offer))}
        assert {e: o.state for e, o in offers.items()} == {
            ACCEPTED_OFFER: "accepted",
            EXTENDED_OFFER: "extended",
            DRAFT_OFFER: "draft",
        }
        accepted = offers[ACCEPTED_OFFER]
        assert accepted.accepted_at == AT + timedelta(hours=1)
        assert accepted.extended_at == AT and offers[DRAFT_OFFER].extended_at is None
        assert accepted.total_cents == 120000  # the schedule's sum
        sub = session.scalars(select(Subscription).where(Subscription.offer_id == accepted.id)).one()
        assert (sub.agreement_id, sub.started_at) == (OFFER_AGREEMENT, AT + timedelta(hours=1))
        # BIL-02: the instalments are invoiced on their dates, the one already due at once
        runs = sorted(j.run_at for j in session.scalars(select(Job).where(Job.name == "billing.offer_instalment")))
        assert runs == [NOW, AT + timedelta(days=180)]
        assert session.scalar(select(Subscription.id).where(Subscription.agreement_id == SAAS_AGREEMENT))
    report = load(db, agreement_manifest(AT))  # a reload changes nothing
    assert report.counts["offers"]["unchanged"] == 3


def test_an_accepted_offer_names_when_it_was_accepted(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    del data["offers"][0]["accepted_at"]
    data["offers"][1]["agreement_id"] = "agmt-extended0000000000000001"
    found = problems(db, data)
    assert any(p.startswith("offers[0]") and "accepted_at" in p for p in found), found
    assert any(p.startswith("offers[1]") and "agreement_id" in p for p in found), found


@pytest.mark.rule("OFR-03")
def test_an_offer_is_accepted_before_its_deadline_OFR_03(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["offers"][0]["accepted_at"] = (AT + timedelta(days=31)).isoformat()
    found = problems(db, data)
    assert any(p.startswith("offers[0].accepted_at") and "[OFR-03]" in p for p in found), found


def test_agreement_and_entity_ids_are_unique(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["subscriptions"][1]["agreement_id"] = OFFER_AGREEMENT
    data["offers"][2]["entity_id"] = EXTENDED_OFFER
    found = problems(db, data)
    assert any("duplicate agreement id" in p for p in found), found
    assert any(p.startswith("offers[2].entity_id") and "duplicate" in p for p in found), found


def test_an_agreement_id_in_the_database_stays_its_subscriptions(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    load(db, data)
    again = copy.deepcopy(data)
    again["subscriptions"][1]["agreement_id"] = SAAS_AGREEMENT  # SAAS_AGREEMENT is subscriptions[0]'s
    again["subscriptions"][0].pop("agreement_id")
    found = problems(db, again)
    assert any(p.startswith("subscriptions[1].agreement_id") and "another subscription" in p for p in found), found


def test_a_malformed_agreement_id_is_refused(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["subscriptions"][0]["agreement_id"] = "AGMT-Upper"
    assert any(p.startswith("subscriptions[0].agreement_id") for p in problems(db, data))


def test_an_accepted_offer_and_a_subscription_of_the_same_buyer_and_product_conflict(
    db: Database, frozen: clock.ManualClock
) -> None:
    data = agreement_manifest(AT)
    data["subscriptions"].append({"buyer": BUYER, "product": PRIVATE, "at": AT.isoformat()})
    found = problems(db, data)
    assert any(p.startswith("offers[0].state") and "one active subscription" in p for p in found), found


@pytest.mark.rule("SEL-03")
def test_offers_need_the_sellers_data_sharing_SEL_03(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["sellers"][0]["data_sharing"] = False
    found = problems(db, data)
    assert any(p.startswith("offers[0]") and "[SEL-03]" in p for p in found), found


@pytest.mark.rule("PRC-07")
def test_an_offers_pricing_follows_the_pricing_rules_PRC_07(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["offers"][1]["pricing"] = copy.deepcopy(data["offers"][1]["pricing"])
    del data["offers"][1]["pricing"]["usage"]["dimensions"][0]["unit"]
    found = problems(db, data)
    assert any(p.startswith("offers[1].pricing.usage") and "[PRC-07]" in p for p in found), found
    with db.reader() as session:
        assert session.scalars(select(Offer)).all() == []  # nothing was written


def test_unknown_products_and_buyers_are_located(db: Database, frozen: clock.ManualClock) -> None:
    data = agreement_manifest(AT)
    data["offers"][1]["product"] = "no-such-product"
    data["offers"][2]["buyer"] = "000000000000"
    found = problems(db, data)
    assert any(p.startswith("offers[1].product") for p in found), found
    assert any(p.startswith("offers[2].buyer") for p in found), found


def test_simulate_plays_offers_as_events_not_as_a_section(db: Database, frozen: clock.ManualClock) -> None:
    found = problems(db, agreement_manifest(AT), subscriptions=False)
    assert any(p.startswith("offers:") and "offer_create" in p for p in found), found
