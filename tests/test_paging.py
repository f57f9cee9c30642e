"""Every list of the native API pages the same way: `limit` (1 to 1,000), `after` (the id of the last item
seen), and a `Link: <…>; rel="next"` header while more items follow."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import audit
from agora.app import create_app
from agora.db import Database, open_database
from agora.models import Product
from tests.factories.catalog import create_listing
from tests.factories.identities import Cast, add_cast, add_seller

# Lists that do not page, and why.
UNPAGED = {
    "/api/v1/keys": "an account's own credentials, which only that account creates, one per request",
    "/api/v1/reviews": "a work queue, oldest first, emptied by the reviewers (two lists in one object)",
}


def _openapi() -> dict[str, Any]:
    return create_app(open_database("sqlite://")).openapi()


def _is_list(path: str, operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """An array, or (for a collection path) an object that holds one, such as `{"invoices": [...]}`."""
    body = operation["responses"]["200"]["content"].get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = schemas[body["$ref"].rsplit("/", 1)[1]]
    if body.get("type") == "array":
        return True
    return "{" not in path and any(p.get("type") == "array" for p in body.get("properties", {}).values())


def test_every_list_takes_limit_and_after_and_documents_the_link_header() -> None:
    document = _openapi()
    lists = [
        path
        for path, operations in document["paths"].items()
        if "get" in operations and _is_list(path, operations["get"], document["components"]["schemas"])
    ]
    assert {"/api/v1/subscriptions", "/api/v1/invoices", "/api/v1/usage", "/api/v1/audit"} <= set(lists)
    for path in lists:
        if path in UNPAGED:
            continue
        operation = document["paths"][path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"limit"} <= names and names & {"after", "offset"}, path
        limit = next(p for p in operation["parameters"] if p["name"] == "limit")["schema"]
        assert limit["minimum"] == 1 and limit["maximum"] <= 10_000, path
        assert "Link" in operation["responses"]["200"]["headers"], path


def _walk(client: TestClient, url: str, headers: dict[str, str], **params: Any) -> list[Any]:
    pages = []
    response = client.get(url, params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.headers.get("link")
        if link is None:
            return pages
        match = re.fullmatch(r'<(.+)>; rel="next"', link)
        assert match, link
        response = client.get(match.group(1), headers=headers)


@pytest.fixture
def cast(db: Database) -> Cast:
    return add_cast(db)


def test_a_list_in_its_own_order_pages_by_id_without_repeats_or_gaps(
    client: TestClient, db: Database, cast: Cast
) -> None:
    with db.unit_of_work() as session:
        for handle in ("zeta", "beta", "mu", "alpha", "omega", "kappa"):
            add_seller(session, handle)
    pages = _walk(client, "/api/v1/sellers", cast.operator.headers, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    handles = [s["handle"] for page in pages for s in page]
    assert handles == sorted(["acme", "globex", "zeta", "beta", "mu", "alpha", "omega", "kappa"])


def test_a_newest_first_list_pages_backwards_and_keeps_its_old_cursor(
    client: TestClient, db: Database, cast: Cast
) -> None:
    with db.unit_of_work() as session:
        for n in range(5):
            audit.record(session, actor="test", action="thing.make", target_type="thing", target_id=n)
    pages = _walk(client, "/api/v1/audit", cast.operator.headers, limit=2, action="thing.make")
    assert [[e["target_id"] for e in p["events"]] for p in pages] == [["4", "3"], ["2", "1"], ["0"]]
    assert [p["next_before_id"] is not None for p in pages] == [True, True, False]
    old_style = client.get(
        "/api/v1/audit",
        params={"limit": 2, "action": "thing.make", "before_id": pages[0]["next_before_id"]},
        headers=cast.operator.headers,
    )
    assert old_style.json() == pages[1]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": 2**63}, {"after": "x"}, {"after": 10**6}],
    ids=str,
)
def test_bad_paging_parameters_are_422(client: TestClient, cast: Cast, params: dict[str, Any]) -> None:
    # /sellers keeps its own order (by handle), so an `after` that is none of its items cannot be placed.
    response = client.get("/api/v1/sellers", params=params, headers=cast.operator.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] in {"validation_error", "invalid"} and body["problems"][0]["loc"].endswith(next(iter(params)))


def test_a_cursor_of_another_tenant_is_refused_like_one_that_does_not_exist(
    client: TestClient, db: Database, cast: Cast
) -> None:
    for code in ("acme-b", "acme-a", "acme-c"):
        create_listing(client, cast.seller, code)
    create_listing(client, cast.other_seller, "globex-a")
    with db.reader() as session:
        ids = {code: id_ for code, id_ in session.execute(select(Product.code, Product.id))}
    pages = _walk(client, "/api/v1/products", cast.seller.headers, limit=2)
    assert [[p["code"] for p in page] for page in pages] == [["acme-a", "acme-b"], ["acme-c"]]
    # A seller's products are its own list: another seller's product is no place in it, as a missing one.
    theirs = client.get("/api/v1/products", params={"after": ids["globex-a"]}, headers=cast.seller.headers)
    missing = client.get("/api/v1/products", params={"after": 10**6}, headers=cast.seller.headers)
    assert theirs.status_code == missing.status_code == 422
    assert theirs.json() == missing.json()
    assert (
        client.get("/api/v1/products", params={"after": ids["acme-b"]}, headers=cast.seller.headers).json()[0]["code"]
        == "acme-c"
    )
