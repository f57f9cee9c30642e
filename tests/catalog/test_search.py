"""Public search (`GET /api/v1/catalog`): a listing is searchable once public (LST-02) by the words of its
title, descriptions, highlights, tags and SEO keywords, as prefixes; drafts, limited and restricted listings
are not (LST-05, LST-06); filters and pagination; hostile queries are just words."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora import tasks
from agora.db import Database
from tests.factories import catalog as f
from tests.factories.identities import Cast, add_cast

PUBLIC = ("acme-analytics", "acme-vault", "globex-notes")


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def cast(db: Database) -> Cast:
    return add_cast(db)


@pytest.fixture
def catalog(client: TestClient, db: Database, cast: Cast) -> Cast:
    """Three public listings, and one listing in each state search must not show."""
    f.make_public(
        client,
        db,
        cast,
        "acme-analytics",
        title="Acme Analytics",
        short_description="Dashboards for everything",
        long_description="A columnar warehouse engine under the hood.",
        highlights=["Realtime alerting"],
        tags=["observability"],
        seo_keywords=["kpi tracking"],
        seo_description="Business intelligence for product teams",
        category="analytics",
        regions=["us-east-1"],
    )
    f.make_public(
        client,
        db,
        cast,
        "acme-vault",
        kind="ami",
        title="Acme Vault",
        short_description="Secrets management on your own instances",
        category="security",
        regions=["eu-west-1"],
        pricing={"hourly": {"m5.large": "0.10"}, "free_trial_days": 14},
    )
    f.make_public(
        client,
        db,
        cast,
        "globex-notes",
        seller=cast.other_seller,
        kind="container",
        title="Globex Notes",
        short_description="Shared notebooks",
        category="productivity",
        regions=["us-east-1", "ap-southeast-1"],
        pricing=f.FREE_PRICING,
        refund_policy=None,
    )
    f.create_listing(client, cast.seller, "acme-draft", short_description="Zeppelin draft dashboards")
    f.make_limited(client, db, cast, "acme-limited", short_description="Quasar limited dashboards")
    f.make_public(client, db, cast, "acme-retired", short_description="Nebula retired dashboards")
    restricted = client.post(
        "/api/v1/products/acme-retired/restrict", json={"reason": "withdrawn"}, headers=cast.operator.headers
    )
    assert restricted.status_code == 200, restricted.text
    return cast


def _search(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/catalog", params=params, headers=headers or {})
    assert response.status_code == 200, (params, response.text)
    body: dict[str, Any] = response.json()
    return body


def _codes(client: TestClient, **params: Any) -> set[str]:
    return {r["code"] for r in _search(client, **params)["results"]}


WORD_QUERIES = [
    ("Acme Analytics", {"acme-analytics"}),  # title
    ("globex", {"globex-notes"}),  # title, another seller
    ("dashboards", {"acme-analytics"}),  # short description
    ("dash", {"acme-analytics"}),  # prefix: "dash" finds "dashboards"
    ("DASHBOARDS", {"acme-analytics"}),  # case does not matter
    ("columnar", {"acme-analytics"}),  # long description
    ("column", {"acme-analytics"}),
    ("realtime alert", {"acme-analytics"}),  # highlights; every word must match
    ("observability", {"acme-analytics"}),  # tags
    ("kpi", {"acme-analytics"}),  # SEO keywords
    ("intelligence", {"acme-analytics"}),  # SEO description
    ("secrets", {"acme-vault"}),
    ("notebook", {"globex-notes"}),
    ("acme", {"acme-analytics", "acme-vault"}),
    ("acme notebooks", set()),
    ("nonexistentword", set()),
    # Listings that are not public are not found by any of their words.
    ("zeppelin", set()),
    ("quasar", set()),
    ("nebula", set()),
    ("acme draft", set()),
    ("acme retired", set()),
]


def test_only_public_listings_are_found_by_their_words_LST_02_LST_05_LST_06(client: TestClient, catalog: Cast) -> None:
    for query, expected in WORD_QUERIES:
        for headers in ({}, catalog.buyer.headers, catalog.seller.headers):
            found = _search(client, headers, q=query)
            assert {r["code"] for r in found["results"]} == expected, (query, headers)
            assert found["total"] == len(expected), query

    result = _search(client, q="dashboards")["results"][0]
    assert result["title"] == "Acme Analytics"
    assert result["seller"] == {"handle": "acme", "name": "Acme"}
    assert result["short_description"] == "Dashboards for everything"
    assert result["logo_url"].startswith("/api/v1/assets/")

    everything = _search(client)
    assert everything["total"] == 3
    # Without a query, listings come in title order.
    assert [r["code"] for r in everything["results"]] == list(PUBLIC)
    # Not even their own seller or an operator finds the hidden ones through search.
    for who in (catalog.seller, catalog.operator):
        assert _search(client, who.headers, q="dashboards")["total"] == 1


FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"kind": "ami"}, {"acme-vault"}),
    ({"kind": "container"}, {"globex-notes"}),
    ({"kind": "ml_model"}, set()),
    ({"category": "security"}, {"acme-vault"}),
    ({"category": "analytics"}, {"acme-analytics"}),
    ({"pricing_family": "free"}, {"globex-notes"}),
    ({"pricing_family": "usage"}, {"acme-analytics"}),
    ({"pricing_family": "hourly_trial"}, {"acme-vault"}),
    ({"region": "us-east-1"}, {"acme-analytics", "globex-notes"}),
    ({"region": "ap-southeast-1"}, {"globex-notes"}),
    ({"region": "sa-east-1"}, set()),
    ({"free_trial": "true"}, {"acme-vault"}),
    ({"free_trial": "false"}, {"acme-analytics", "globex-notes"}),
    ({"q": "acme", "kind": "saas"}, {"acme-analytics"}),
    ({"q": "acme", "region": "eu-west-1", "free_trial": "true"}, {"acme-vault"}),
    ({"q": "dashboards", "category": "security"}, set()),
]


def test_filters_and_pagination_LST_01_LST_02(client: TestClient, catalog: Cast) -> None:
    """Search narrows by kind (LST-01), category, pricing family, region and free trial (LST-02 facets)."""
    for params, expected in FILTERS:
        assert _codes(client, **params) == expected, params
        assert _search(client, **params)["total"] == len(expected), params

    pages = [_search(client, limit=2, offset=offset) for offset in (0, 2, 3)]
    assert [(p["total"], p["limit"], p["offset"]) for p in pages] == [(3, 2, 0), (3, 2, 2), (3, 2, 3)]
    assert [[r["code"] for r in p["results"]] for p in pages] == [
        ["acme-analytics", "acme-vault"],
        ["globex-notes"],
        [],
    ]
    with_query = _search(client, q="acme", limit=1, offset=1)
    assert with_query["total"] == 2
    assert len(with_query["results"]) == 1
    assert {with_query["results"][0]["code"], _search(client, q="acme", limit=1)["results"][0]["code"]} == {
        "acme-analytics",
        "acme-vault",
    }

    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"free_trial": "maybe"}, {"q": "x" * 201}):
        response = client.get("/api/v1/catalog", params=bad)
        assert response.status_code == 422, bad


HOSTILE_QUERIES = [
    '"; DROP TABLE products; --',
    "foo*(",
    "'",
    '"',
    '""',
    "dash*",
    "AND OR NOT",
    "NEAR(dash, 2)",
    "title:acme",
    "-acme",
    "acme^2",
    "%_%",
    "\\",
    "(((",
    "a & b | !c",
    "acme:*",
    "日本語 ünïcödé",
    "   ",
    "🙂",
]


def test_queries_with_punctuation_and_quotes_do_not_error_LST_02(client: TestClient, db: Database, cast: Cast) -> None:
    f.make_public(client, db, cast, "acme-analytics")
    for query in HOSTILE_QUERIES:
        found = _search(client, q=query)
        assert isinstance(found["total"], int), query
    # The punctuation is dropped, the words remain.
    assert _codes(client, q="dash*") == {"acme-analytics"}
    assert _codes(client, q='"dashboards"') == {"acme-analytics"}
    assert _codes(client, q="title:acme") == set()
    assert _codes(client, q="acme:*") == {"acme-analytics"}
    assert _codes(client, q="   ") == {"acme-analytics"}
    assert _search(client)["total"] == 1


def test_a_listing_becomes_searchable_at_sign_off_LST_02_LST_05(client: TestClient, db: Database, cast: Cast) -> None:
    f.make_limited(client, db, cast, "acme-analytics", tags=["kaleidoscope"])
    assert _search(client, q="kaleidoscope")["total"] == 0
    f.sign_off(client, cast.seller, "acme-analytics")
    assert _codes(client, q="kaleid") == {"acme-analytics"}

    client.post("/api/v1/products/acme-analytics/restrict", json={}, headers=cast.seller.headers)
    assert _search(client, q="kaleidoscope")["total"] == 0
    reinstated = client.post("/api/v1/products/acme-analytics/reinstate", headers=cast.operator.headers)
    assert reinstated.status_code == 200, reinstated.text
    assert _codes(client, q="kaleidoscope") == {"acme-analytics"}
