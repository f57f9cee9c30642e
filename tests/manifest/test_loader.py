"""`agora load` against a real database: what the demo writes, idempotence, and bad input changing nothing.

Bad inputs are checked many to a test, on one database holding the demo: every case must leave it exactly as it
was, and a per-case database would cost a full reset each (slow on PostgreSQL).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agora import auth, config
from agora.db import Database
from agora.manifest.loader import LoadReport, load_data, parse_manifest
from agora.manifest.parse import ManifestError, parse_text
from agora.models import AccessKey, ApiToken, AuditEvent, Base, Buyer, Operator, Product, Role, Seller, Subscription
from agora.pricing.schema import PricingDocument

DEMO_PATH = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
DEMO_TEXT = DEMO_PATH.read_text()
_DEMO = parse_text(DEMO_TEXT, DEMO_PATH.name)
NEXT_PRODUCT = len(_DEMO["products"])

FREE = {"free": True}

Mutation = Callable[[dict[str, Any]], None]


def demo() -> dict[str, Any]:
    return copy.deepcopy(_DEMO)


def changed(*mutations: Mutation) -> dict[str, Any]:
    data = demo()
    for mutate in mutations:
        mutate(data)
    return data


def from_text(old: str, new: str) -> Any:
    """The demo with one piece of its YAML text rewritten, as a user editing the file would."""
    assert DEMO_TEXT.count(old) == 1, old
    return parse_text(DEMO_TEXT.replace(old, new), DEMO_PATH.name)


def load(db: Database, data: Any) -> LoadReport:
    with db.unit_of_work() as session:
        return load_data(data, session)


def outcome(db: Database, data: Any) -> list[str]:
    """The problem lines a manifest gets, or a marker when it loaded."""
    try:
        load(db, data)
    except ManifestError as exc:
        return [str(p) for p in exc.problems]
    return ["(loaded without a problem)"]


def shape_problems(data: Any) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    return [str(p) for p in info.value.problems]


def snapshot(db: Database) -> dict[str, list[Any]]:
    """Every row of every table, in primary-key order."""
    with db.reader() as session:
        return {
            table.name: [tuple(row) for row in session.execute(select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }


def count(db: Database, model: Any) -> int:
    with db.reader() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def as_stored(value: Any) -> Any:
    """A document as the database keeps it: JSON, with nulls left out (`PricingDocument.stored`)."""
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    return json.loads(json.dumps(value, default=str))


@pytest.fixture
def loaded(db: Database) -> Database:
    load(db, demo())
    return db


# --- mutations of the demo ------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Mutation:
    """Set a value by a dotted path of keys and list indexes, e.g. `products.2.pricing.monthly`."""

    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = d
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(last) if isinstance(target, list) else last] = value

    return mutate


def _typo(d: dict[str, Any]) -> None:
    d["products"][0]["short_descripton"] = d["products"][0].pop("short_description")


def _new_product(**fields: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        d["products"].append({**copy.deepcopy(_DEMO["products"][0]), "code": "brand-new", **fields})

    return mutate


def _price(product: int, component: str, key: str, value: Any) -> Mutation:
    return lambda d: d["products"][product]["pricing"][component].update({key: value})


def _contract(months: int, quantities: dict[str, int]) -> Mutation:
    return _set("subscriptions.1.contract", {"duration_months": months, "quantities": quantities})


# --- (a) the demo marketplace ---------------------------------------------------------------------------


def test_the_demo_loads_every_entity_it_lists(db: Database) -> None:
    report = load(db, demo())

    assert report.changed
    expected = {
        Seller: len(_DEMO["sellers"]),
        Buyer: len(_DEMO["buyers"]),
        Operator: len(_DEMO["operators"]),
        Product: len(_DEMO["products"]),
        Subscription: len(_DEMO["subscriptions"]),
    }
    assert {model: count(db, model) for model in expected} == expected
    assert report.counts["products"] == {"created": len(_DEMO["products"])}
    assert report.counts["subscriptions"] == {"created": len(_DEMO["subscriptions"])}
    with db.reader() as session:
        sellers = {s.handle: (s.name, s.tax_form, s.data_sharing) for s in session.scalars(select(Seller))}
        buyers = {b.account: (b.email, b.enterprise) for b in session.scalars(select(Buyer))}
        rows = session.execute(
            select(Product.code, Buyer.account, Subscription.customer_identifier, Subscription)
            .join(Product, Subscription.product_id == Product.id)
            .join(Buyer, Subscription.buyer_id == Buyer.id)
        ).all()
    assert sellers["northwind"] == ("Northwind Systems GmbH", "W-8", False)
    assert buyers["444455556666"] == ("it-procurement@globex.example", True)
    subs = {(code, account): (identifier, sub) for code, account, identifier, sub in rows}
    identifier, crm = subs[("acme-crm", "444455556666")]
    assert identifier == "cust-globex"
    assert crm.started_at == datetime.fromisoformat("2026-10-15T00:00:00+00:00")
    assert crm.purchases["contract"] == {"duration_months": 12, "quantities": {"seats": 50}}
    assert subs[("northwind-db", "444455556666")][1].purchases["annual"] == {"r6g.large": 2}
    assert subs[("acme-analytics", "111122223333")][0] == "cust-bluebird"


def test_products_keep_their_pricing_document_as_given(db: Database) -> None:
    """Unquoted YAML decimals included: `0.10` is stored as "0.10", never through a float."""
    text = DEMO_TEXT.replace('rate: "0.125"', "rate: 0.125").replace(
        'hourly: {m5.large: "0.10", m5.xlarge: "0.20"}', "hourly: {m5.large: 0.10, m5.xlarge: 0.2}"
    )
    data = parse_text(text, DEMO_PATH.name)
    load(db, data)
    with db.reader() as session:
        products = {p.code: p for p in session.scalars(select(Product))}
        owners = {p.code: session.get_one(Seller, p.seller_id).handle for p in products.values()}
    for given in data["products"]:
        stored = products[given["code"]]
        assert stored.pricing == as_stored(given["pricing"]), given["code"]
        assert (owners[given["code"]], stored.kind, stored.title, stored.state) == (
            given["seller"],
            given["kind"],
            given["title"],
            given["state"],
        )
    assert products["acme-analytics"].pricing == {
        "usage": {
            "category": "users",
            "dimensions": [
                {"name": "users", "description": "Active users per hour", "unit": "UserHrs", "rate": "0.125"}
            ],
        }
    }
    assert products["acme-vault"].pricing == {
        "hourly": {"m5.large": "0.10", "m5.xlarge": "0.2"},
        "annual": {"m5.large": "700", "m5.xlarge": "1400"},
        "free_trial_days": 14,
    }
    assert products["acme-analytics"].listing["short_description"] == _DEMO["products"][0]["short_description"]
    assert products["acme-analytics"].published_at is not None
    assert products["openfield-notes"].state == "draft" and products["openfield-notes"].published_at is None


def test_a_stored_pricing_document_validates_again() -> None:
    """`stored()` leaves out nulls, e.g. the open-ended tier's `up_to: null`; the result must still validate."""
    for product in _DEMO["products"]:
        document = PricingDocument.model_validate(product["pricing"]).stored()
        assert PricingDocument.model_validate(document).stored() == document, product["code"]


def test_credentials_are_stored_as_token_hashes_and_encrypted_secrets(db: Database) -> None:
    load(db, demo())
    owners = [owner for section in ("sellers", "buyers", "operators") for owner in _DEMO[section]]
    tokens = {token for owner in owners for token in owner.get("api_tokens", [])}
    keys = {
        key["id"]: (owner.get("id") or owner["account"], key["secret"])
        for owner in owners
        for key in owner.get("access_keys", [])
    }
    everything = repr(snapshot(db))
    assert [t for t in tokens if t in everything] == []
    assert [secret for _, secret in keys.values() if secret in everything] == []
    with db.reader() as session:
        assert set(session.scalars(select(ApiToken.token_hash))) == {auth.hash_token(t) for t in tokens}
        principal = auth.principal_from_token(session, "demo-acme-token")
        assert set(session.scalars(select(AccessKey.access_key_id))) == set(keys)
        recovered = {}
        for key_id in keys:
            found = auth.access_key_secret(session, key_id)
            assert found is not None
            recovered[key_id] = (found[0].handle, found[1])
    assert principal is not None and (principal.role, principal.handle) == (Role.SELLER, "acme")
    assert recovered == keys


# --- (b) idempotence ------------------------------------------------------------------------------------


def test_loading_the_same_manifest_twice_changes_nothing(loaded: Database) -> None:
    before = snapshot(loaded)

    report = load(loaded, demo())
    # The same instant written with another UTC offset is the same manifest.
    same_instant = load(loaded, changed(_set("subscriptions.0.at", "2026-11-01T01:00:00+01:00")))

    assert not report.changed and not same_instant.changed
    assert all(set(c) == {"unchanged"} for c in report.counts.values()), report.counts
    after = snapshot(loaded)
    assert len(after["audit_events"]) == len(before["audit_events"])
    assert after == before


def test_changing_one_field_updates_exactly_that_and_audits_it(loaded: Database) -> None:
    before = snapshot(loaded)
    last_event = max(row[0] for row in before["audit_events"])

    report = load(loaded, changed(_set("sellers.0.name", "Acme Corporation")))

    assert report.changed
    assert report.counts["sellers"] == {"updated": 1, "unchanged": 2}
    assert all(set(c) == {"unchanged"} for name, c in report.counts.items() if name != "sellers")
    after = snapshot(loaded)
    assert {t for t in after if after[t] != before[t]} == {"sellers", "audit_events"}
    with loaded.reader() as session:
        assert session.scalars(select(Seller.name).where(Seller.handle == "acme")).one() == "Acme Corporation"
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.id > last_event)))
    assert [(e.action, e.target_type, e.target_id, e.actor) for e in events] == [
        ("seller.update", "seller", "acme", "operator:manifest")
    ]
    assert events[0].before is not None and events[0].after is not None
    assert (events[0].before["name"], events[0].after["name"]) == ("Acme Corp", "Acme Corporation")

    report = load(loaded, changed(_price(2, "hourly", "m5.large", "0.11")))

    assert report.counts["products"] == {"updated": 1, "unchanged": len(_DEMO["products"]) - 1}
    with loaded.reader() as session:
        vault = session.scalars(select(Product).where(Product.code == "acme-vault")).one()
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == "acme-vault")))
    assert vault.pricing is not None and vault.pricing["hourly"]["m5.large"] == "0.11"
    assert actions[0] == "product.create" and "product.update" in actions[1:]


def test_a_changed_access_key_secret_is_reported_as_a_change(loaded: Database) -> None:
    report = load(loaded, changed(_set("sellers.0.access_keys.0.secret", "rotated-secret")))
    with loaded.reader() as session:
        found = auth.access_key_secret(session, "AKIDACME00000001")
    assert found is not None and found[1] == "rotated-secret"
    assert report.changed
    assert report.counts["access keys"] == {"updated": 1, "unchanged": 2}


# --- (c) bad input: located problems, nothing written -------------------------------------------------


BAD_INPUTS: dict[str, tuple[Any, list[str]]] = {
    "typo": (
        changed(_typo),
        ["products[0].short_descripton: unknown field (did you mean 'short_description'?)"],
    ),
    "typo in pricing": (
        changed(lambda d: d["products"][3]["pricing"].update(montly=d["products"][3]["pricing"].pop("monthly"))),
        ["products[3].pricing.montly: unknown field (did you mean 'monthly'?)"],
    ),
    "negative price": (
        changed(_price(2, "hourly", "m5.large", "-0.10")),
        ["products[2].pricing.hourly.m5.large: must not be negative"],
    ),
    "malformed decimal": (
        changed(_price(2, "hourly", "m5.large", "1.2.3")),
        ["products[2].pricing.hourly.m5.large: '1.2.3' is not a decimal number [PRC-01]"],
    ),
    "13-digit account": (
        changed(_set("buyers.0.account", "1111222233334")),
        ["buyers[0].account: must be exactly 12 digits, got '1111222233334'"],
    ),
    "unquoted 12-digit account": (
        from_text('account: "111122223333"', "account: 111122223333"),
        ["buyers[0].account: must be a quoted string of 12 digits (unquoted, YAML reads it as a number)"],
    ),
    "unquoted account in a subscription": (
        from_text('{buyer: "111122223333"', "{buyer: 111122223333"),
        ["subscriptions[0].buyer: must be a quoted string of 12 digits (unquoted, YAML reads it as a number)"],
    ),
    "price with an absurd exponent": (
        # Stored as `format(price, "f")`, 1e400000000 would be a 400 MB string.
        changed(_set("products.3.pricing.monthly", "1e400000000")),
        ["products[3].pricing.monthly: is too large (at most 12 digits before the decimal point)"],
    ),
    "naive timestamp": (
        from_text("at: 2026-11-01T00:00:00Z", "at: 2026-11-01T00:00:00"),
        ["subscriptions[0].at: needs a time zone, e.g. 2026-03-01T00:00:00Z"],
    ),
    "SEL-01 unknown seller": (
        changed(_new_product(seller="x", pricing=FREE)),
        [f"products[{NEXT_PRODUCT}].seller: unknown seller 'x' [SEL-01]"],
    ),
    "duplicate product code": (
        changed(lambda d: d["products"].append(copy.deepcopy(d["products"][0]))),
        [f"products[{NEXT_PRODUCT}].code: duplicate product code 'acme-analytics' (first at products[0].code)"],
    ),
    "duplicate seller id": (
        changed(lambda d: d["sellers"].append({"id": "acme", "name": "Another Acme", "tax_form": "W-9"})),
        ["sellers[3].id: duplicate seller id 'acme' (first at sellers[0].id)"],
    ),
    "duplicate customer identifier": (
        changed(lambda d: d["subscriptions"][3].update(product="acme-analytics", customer_identifier="cust-bluebird")),
        [
            "subscriptions[3].customer_identifier: duplicate customer identifier for product"
            " 'acme-analytics/cust-bluebird' (first at subscriptions[0].customer_identifier)",
            "subscriptions[3].customer_identifier: 'cust-bluebird' already identifies buyer 111122223333"
            " on 'acme-analytics'",
        ],
    ),
    "subscription to an unknown product": (
        changed(_set("subscriptions.0.product", "nope")),
        ["subscriptions[0].product: unknown product 'nope'"],
    ),
    "subscription by an unknown buyer": (
        changed(_set("subscriptions.1.buyer", "999999999999")),
        ["subscriptions[1].buyer: unknown buyer account '999999999999'"],
    ),
    "subscription to a draft": (
        changed(_set("subscriptions.0.product", "openfield-notes")),
        ["subscriptions[0].product: 'openfield-notes' is draft; only public products can be bought"],
    ),
    "LST-09 enterprise-only product, individual buyer": (
        changed(_set("products.0.enterprise_only", True)),
        ["subscriptions[0].buyer: 'acme-analytics' is sold to enterprise buyers only [LST-09]"],
    ),
    "PRC-10 contract duration the product does not price": (
        changed(_contract(24, {"sandboxes": 1})),
        ["subscriptions[1].contract.duration_months: sandboxes has no 24-month price [PRC-10]"],
    ),
    "PRC-10 contract on a product without contract pricing": (
        changed(_set("subscriptions.0.contract", {"duration_months": 12, "quantities": {"users": 5}})),
        ["subscriptions[0].contract: 'acme-analytics' has no contract pricing [PRC-10]"],
    ),
    "PRC-10 contract duration no product may price": (
        changed(_contract(6, {"seats": 1})),
        ["subscriptions[1].contract.duration_months: must be one of 1, 12, 24 or 36, got 6 [PRC-10]"],
    ),
    "SUB-03 annual purchase without an annual price": (
        changed(_set("subscriptions.2.annual", {"r6g.2xlarge": 1})),
        ["subscriptions[2].annual.r6g.2xlarge: 'northwind-db' has no annual price for it [SUB-03]"],
    ),
    "LST-03 short description over 300 characters": (
        changed(_set("products.0.short_description", "x" * 301)),
        ["products[0].short_description: may have at most 300 characters, got 301 [LST-03]"],
    ),
    "LST-03 highlights over 1,000 characters": (
        changed(_set("products.0.highlights", ["a" * 500, "b" * 501])),
        ["products[0].highlights: highlights may have at most 1,000 characters in all, got 1001 [LST-03]"],
    ),
    "product code owned by another seller": (
        changed(_set("products.0.seller", "northwind")),
        ["products[0].code: 'acme-analytics' belongs to seller 'acme'"],
    ),
    "token of another account": (
        {"buyers": [{"account": "999988887777", "email": "new@buyer.example", "api_tokens": ["demo-acme-token"]}]},
        ["buyers[0].api_tokens[0]: this token already belongs to another account"],
    ),
    "access key of another account": (
        {
            "sellers": [
                {"id": "initech", "name": "Initech", "access_keys": [{"id": "AKIDACME00000001", "secret": "x" * 8}]}
            ]
        },
        ["sellers[0].access_keys[0].id: access key AKIDACME00000001 belongs to another account"],
    ),
    "one token for two accounts": (
        changed(_set("buyers.1.api_tokens", ["shared-token"]), _set("buyers.2.api_tokens", ["shared-token"])),
        ["buyers[2].api_tokens[0]: duplicate API token (first at buyers[1].api_tokens[0])"],
    ),
    "PRC-01 another currency": (
        changed(_set("products.3.pricing.currency", "EUR")),
        ["products[3].pricing.currency: prices are in USD only; got 'EUR' [PRC-01]"],
    ),
    "PRC-02 free combined with a charge": (
        changed(_set("products.9.pricing.free", True)),
        ["products[9].pricing.free: free cannot be combined with other pricing (hourly) [PRC-02]"],
    ),
    "PRC-06 free trial too long": (
        changed(_set("products.2.pricing.free_trial_days", 40)),
        ["products[2].pricing.free_trial_days: must be 5 to 31 days [PRC-06]"],
    ),
    "SEL-02 paid pricing without a tax form": (
        changed(
            _set("products.13.pricing", {"hourly": {"m5.large": "0.01"}}), _set("products.13.refund_policy", "Ask")
        ),
        ["products[13].pricing.hourly: a paid pricing model needs a W-9 or W-8 tax form on file [SEL-02]"],
    ),
    "LST-07 paid public product without a refund policy": (
        changed(lambda d: d["products"][3].pop("refund_policy")),
        ["products[3].refund_policy: a paid listing must state its refund policy and a contact [LST-07]"],
    ),
    "public product without pricing": (
        changed(lambda d: d["products"][3].pop("pricing")),
        ["products[3].pricing: a public product needs pricing"],
    ),
    "region": (
        changed(_set("region", "eu-west-1")),
        ["region: the manifest is for eu-west-1 but this marketplace runs in us-east-1"],
    ),
}


def test_each_bad_input_is_located_and_changes_nothing(loaded: Database) -> None:
    """Refusals of SEL-01, SEL-02, LST-03, LST-07, LST-09, PRC-01, PRC-02, PRC-06, PRC-10 and SUB-03 among them."""
    before = snapshot(loaded)

    found = {name: outcome(loaded, data) for name, (data, _) in BAD_INPUTS.items()}

    assert found == {name: expected for name, (_, expected) in BAD_INPUTS.items()}
    assert snapshot(loaded) == before


@pytest.mark.rule("SEL-01")
@pytest.mark.rule("LST-03")
@pytest.mark.rule("LST-09")
@pytest.mark.rule("PRC-10")
def test_the_rules_admit_what_they_allow_SEL_01_LST_03_LST_09_PRC_10(loaded: Database) -> None:
    """A product of a seller already in the database (SEL-01); limits are inclusive (LST-03); an enterprise
    buyer may buy an enterprise-only product (LST-09); every priced contract duration can be bought (PRC-10)."""
    report = load(
        loaded,
        changed(
            _new_product(code="acme-insights", seller="acme"),
            lambda d: d["sellers"].pop(0),
            lambda d: d["products"][0].update(short_description="x" * 300, highlights=["a" * 500, "b" * 500]),
            _set("products.1.enterprise_only", True),  # acme-crm, bought by globex (enterprise)
            _contract(36, {"seats": 5, "sandboxes": 1}),
        ),
    )
    assert report.counts["products"] == {"created": 1, "updated": 2, "unchanged": NEXT_PRODUCT - 2}
    assert report.counts["subscriptions"] == {"updated": 1, "unchanged": len(_DEMO["subscriptions"]) - 1}


@pytest.mark.rule("PRC-08")
@pytest.mark.rule("PRC-09")
def test_published_pricing_keeps_its_dimensions_and_its_model_PRC_08_PRC_09(loaded: Database) -> None:
    contract = {"contract": {"dimensions": [{"name": "users", "description": "Users", "prices": {"12": "100"}}]}}
    before = snapshot(loaded)

    [removed] = outcome(loaded, changed(lambda d: d["products"][1]["pricing"]["contract"]["dimensions"].pop(1)))
    moved = outcome(loaded, changed(_set("products.0.pricing", contract)))

    assert removed.startswith("products[1].pricing.") and "sandboxes" in removed
    assert removed.endswith(": a published dimension cannot be removed [PRC-08]")
    assert moved == [
        "products[0].pricing: a usage-priced product cannot move to another model: list a new product instead [PRC-09]"
    ]
    assert snapshot(loaded) == before


@pytest.mark.rule("SEL-01")
def test_a_paid_product_of_an_unknown_seller_is_told_only_that_SEL_01(loaded: Database) -> None:
    assert outcome(loaded, changed(_new_product(seller="x"))) == [
        f"products[{NEXT_PRODUCT}].seller: unknown seller 'x' [SEL-01]"
    ]


@pytest.mark.rule("LST-03")
def test_field_limits_are_refused_with_their_rule_LST_03() -> None:
    data = changed(_set("products.0.short_description", "x" * 301), _set("products.0.highlights", ["a" * 1001]))
    assert shape_problems(data) == [
        "products[0].short_description: may have at most 300 characters, got 301 [LST-03]",
        "products[0].highlights: highlights may have at most 1,000 characters in all, got 1001 [LST-03]",
    ]


def test_a_manifest_for_the_marketplace_region_loads(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_REGION", "eu-west-1")
    config.reset_settings()
    assert load(db, changed(_set("region", "eu-west-1"))).changed
    assert outcome(db, demo()) == ["region: the manifest is for us-east-1 but this marketplace runs in eu-west-1"]


# --- (d) every problem at once ------------------------------------------------------------------------


def test_every_problem_in_the_shape_is_reported_at_once(loaded: Database) -> None:
    data = changed(
        _typo,
        _price(2, "hourly", "m5.large", "-0.10"),
        _set("buyers.0.account", "1111222233334"),
        _set("subscriptions.0.at", datetime(2026, 11, 1)),
        _set("sellers.1.tax_form", "W-10"),
    )
    before = snapshot(loaded)

    assert sorted(outcome(loaded, data)) == sorted(
        [
            "products[0].short_descripton: unknown field (did you mean 'short_description'?)",
            "products[2].pricing.hourly.m5.large: must not be negative",
            "buyers[0].account: must be exactly 12 digits, got '1111222233334'",
            "subscriptions[0].at: needs a time zone, e.g. 2026-03-01T00:00:00Z",
            "sellers[1].tax_form: must be one of 'W-9', 'W-8' or 'none', got 'W-10' [SEL-02]",
        ]
    )
    assert snapshot(loaded) == before


def test_every_problem_across_the_marketplace_is_reported_at_once(loaded: Database) -> None:
    data = changed(
        _set("region", "eu-west-1"),
        _new_product(seller="x", pricing=FREE),
        _set("products.0.enterprise_only", True),
        _contract(24, {"sandboxes": 1}),
        _set("subscriptions.3.product", "nope"),
        _set("buyers.2.api_tokens", ["demo-acme-token"]),
    )
    before = snapshot(loaded)

    assert sorted(outcome(loaded, data)) == sorted(
        [
            "region: the manifest is for eu-west-1 but this marketplace runs in us-east-1",
            f"products[{NEXT_PRODUCT}].seller: unknown seller 'x' [SEL-01]",
            "subscriptions[0].buyer: 'acme-analytics' is sold to enterprise buyers only [LST-09]",
            "subscriptions[1].contract.duration_months: sandboxes has no 24-month price [PRC-10]",
            "subscriptions[3].product: unknown product 'nope'",
            "buyers[2].api_tokens[0]: this token already belongs to another account",
            "buyers[2].api_tokens[0]: duplicate API token (first at sellers[0].api_tokens[0])",
        ]
    )
    assert snapshot(loaded) == before


def test_shape_and_reference_problems_are_reported_together(loaded: Database) -> None:
    data = changed(_new_product(seller="x", pricing=FREE), _typo)
    assert sorted(outcome(loaded, data)) == sorted(
        [
            "products[0].short_descripton: unknown field (did you mean 'short_description'?)",
            f"products[{NEXT_PRODUCT}].seller: unknown seller 'x' [SEL-01]",
        ]
    )
