"""Issue 15: no input of the native API reaches the database or an encoder in a shape they refuse.

Integers beyond 64 bits, instants out of range or without a zone, months outside 1970..9000, lone UTF-16
surrogates and NUL characters are all answered 4xx, in the API's error shape, naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import audit, tasks
from agora.app import API_ROUTERS
from agora.db import Database
from agora.models import Product
from tests.factories.catalog import create_listing, lenient_client, make_public
from tests.factories.identities import Cast, add_cast

TOO_BIG = 2**63


@pytest.fixture
def cast(db: Database) -> Cast:
    return add_cast(db)


@pytest.fixture
def lenient(db: Database) -> Iterator[TestClient]:
    with lenient_client(db) as client:
        yield client


def _is_int(annotation: Any) -> bool:
    """`int`, `int | None` and their `Annotated` forms."""
    if annotation is int:
        return True
    return get_origin(annotation) in (Union, UnionType, Annotated) and any(_is_int(a) for a in get_args(annotation))


def _dependants(dependant: Dependant) -> list[Dependant]:
    """A route's dependant and those of its dependencies (the paging dependency's `after` and `limit`)."""
    return [dependant] + [d for sub in dependant.dependencies for d in _dependants(sub)]


def _own_parameters(dependant: Dependant) -> list[tuple[str, Any]]:
    return [("path", p) for p in dependant.path_params] + [("query", p) for p in dependant.query_params]


def _int_parameters() -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) of every integer path or query parameter of the native API."""
    found = []
    for route in (r for router in API_ROUTERS for r in router.routes):
        if not isinstance(route, APIRoute):
            continue
        params = [(where, p) for d in _dependants(route.dependant) for where, p in _own_parameters(d)]
        for where, param in params:
            if _is_int(param.field_info.annotation):
                for method in sorted(route.methods):
                    found.append((method, route.path, where, param.name))
    return found


INT_PARAMETERS = _int_parameters()


def test_the_walk_finds_the_integer_parameters_of_issue_15() -> None:
    names = {(path, name) for _, path, _, name in INT_PARAMETERS}
    assert ("/api/v1/invoices/{invoice_id}", "invoice_id") in names
    assert ("/api/v1/audit", "before_id") in names
    assert ("/api/v1/usage", "after") in names
    assert len(INT_PARAMETERS) > 25


@pytest.mark.parametrize(("method", "path", "where", "name"), INT_PARAMETERS, ids=lambda v: str(v))
def test_an_integer_beyond_64_bits_is_refused_not_a_server_error(
    lenient: TestClient, cast: Cast, method: str, path: str, where: str, name: str
) -> None:
    concrete = re.sub(r"\{[^}]+\}", lambda m: str(TOO_BIG) if m.group()[1:-1] == name else "1", path)
    params = {name: str(TOO_BIG)} if where == "query" else None
    for actor in (cast.operator, cast.seller, cast.buyer):
        response = lenient.request(method, concrete, params=params, json={}, headers=actor.headers)
        assert response.status_code in (401, 403, 404, 422), (actor.role, response.status_code, response.text)
        if response.status_code == 422:
            assert set(response.json()) >= {"error", "detail"}


def test_an_out_of_range_id_names_its_field(lenient: TestClient, cast: Cast) -> None:
    response = lenient.get(f"/api/v1/invoices/{TOO_BIG}", headers=cast.buyer.headers)
    assert response.status_code == 422
    assert [p["loc"] for p in response.json()["problems"]] == ["path.invoice_id"]


def test_record_ids_beyond_64_bits_are_refused(lenient: TestClient, cast: Cast) -> None:
    body = {"record_ids": [1, TOO_BIG], "reason": "counted twice"}
    response = lenient.post("/api/v1/usage/errors", json=body, headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == ["body.record_ids.1"]


# --- instants and months ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "1969-12-31T23:59:59Z",
        "9001-01-01T00:00:00Z",
        "2026-01-01T00:00:00",  # no time zone
    ],
)
def test_audit_refuses_an_instant_without_a_zone_or_out_of_range(lenient: TestClient, cast: Cast, since: str) -> None:
    response = lenient.get("/api/v1/audit", params={"since": since}, headers=cast.operator.headers)
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == ["query.since"]


def test_audit_takes_instants_within_range(client: TestClient, cast: Cast) -> None:
    for since in ("1970-01-01T00:00:00Z", "9000-12-31T23:59:59+00:00", "2026-03-01T12:00:00+05:30"):
        response = client.get("/api/v1/audit", params={"since": since, "until": since}, headers=cast.operator.headers)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "1969-12", "9001-01"])
def test_a_report_of_a_month_out_of_range_is_refused(lenient: TestClient, cast: Cast, period: str) -> None:
    response = lenient.get(f"/api/v1/reports/{period}", headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["loc"] == "path.period"


def test_a_report_of_the_first_and_last_months_is_answered(client: TestClient, cast: Cast) -> None:
    for period in ("1970-01", "9000-12"):
        assert client.get(f"/api/v1/reports/{period}", headers=cast.seller.headers).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accept_by", "9999-12-31T23:59:59-05:00"),
        ("accept_by", "2026-06-30T00:00:00"),
        ("schedule", [{"at": "0001-01-01T00:00:00+01:00", "amount": "10"}]),
    ],
)
def test_an_offer_refuses_instants_out_of_range(lenient: TestClient, cast: Cast, field: str, value: Any) -> None:
    body = {"product": "p", "buyer": "111122223333", "pricing": {"monthly": "10"}, "duration_days": 30,
            "accept_by": "2026-06-30T00:00:00Z", field: value}  # fmt: skip
    response = lenient.post("/api/v1/offers", json=body, headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    locs = [p["loc"] for p in response.json()["problems"]]
    assert locs == (["body.accept_by"] if field == "accept_by" else ["body.schedule.0.at"])


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_the_usage_query_refuses_instants_out_of_range(lenient: TestClient, cast: Cast, when: str) -> None:
    """(A record's own timestamp out of range is refused per record, MTR-04, as metering refuses any.)"""
    response = lenient.get("/api/v1/usage", params={"start": when}, headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == ["query.start"]


# --- text ------------------------------------------------------------------------------------------------------


def _post(client: TestClient, path: str, raw: str, headers: dict[str, str]) -> Any:
    return client.post(path, content=raw, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("path", "raw", "loc"),
    [
        ("/api/v1/subscriptions", '{"product": "\\ud800", "accept_eula": true}', "body.product"),
        ("/api/v1/subscriptions", '{"product": "p", "accept_eula": true, "\\udfff": 1}', "body"),
        ("/api/v1/subscriptions", '{"product": "a\\u0000b", "accept_eula": true}', "body.product"),
        ("/api/v1/offers", '{"product": "\\ud800", "buyer": "111122223333"}', "body.product"),
        ("/api/v1/refunds", '{"product": "x", "periods": ["\\udc00"]}', "body.periods.0"),
        ("/api/v1/products/p/restrict", '{"reason": "\\ud800"}', "body.reason"),
    ],
)
def test_a_lone_surrogate_or_nul_in_a_json_body_is_refused_naming_the_field(
    lenient: TestClient, cast: Cast, path: str, raw: str, loc: str
) -> None:
    for actor in (cast.seller, cast.buyer):
        response = _post(lenient, path, raw, actor.headers)
        if response.status_code in (401, 403):
            continue
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid"
        assert [p["loc"] for p in response.json()["problems"]] == [loc]


def test_a_body_without_a_content_type_is_checked_too(lenient: TestClient, cast: Cast) -> None:
    """FastAPI parses such a body as JSON."""
    raw = b'{"product": "\\ud800", "accept_eula": true}'
    response = lenient.post("/api/v1/subscriptions", content=raw, headers=cast.buyer.headers)
    assert "content-type" not in response.request.headers
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == ["body.product"]


def test_a_surrogate_pair_is_text_like_any_other(lenient: TestClient, cast: Cast) -> None:
    response = _post(lenient, "/api/v1/subscriptions", '{"product": "\\ud83d\\ude00", "accept_eula": true}',
                     cast.buyer.headers)  # fmt: skip
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("query", ["actor=%ED%A0%80", "actor=a%00b", "actor=%FF"])
def test_invalid_text_in_a_query_string_is_refused(lenient: TestClient, cast: Cast, query: str) -> None:
    response = lenient.get(f"/api/v1/audit?{query}", headers=cast.operator.headers)
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["loc"] in ("query", "query.actor")


def test_nul_in_a_path_is_refused(lenient: TestClient, cast: Cast) -> None:
    response = lenient.get("/api/v1/products/a%00b", headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["loc"] == "path.code"


def test_the_audit_log_renders_text_stored_before_the_edge_refused_it(
    client: TestClient, db: Database, cast: Cast
) -> None:
    """SQLite's JSON column keeps what JSON can spell; PostgreSQL's JSONB refuses it on the way in."""
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL cannot store a lone surrogate or NUL")
    with db.unit_of_work() as session:
        audit.record(
            session, actor="seller:acme", action="product.restrict", target_type="product", target_id="p",
            after={"reason": "\ud800", "\udfff": ["a\x00"]},
        )  # fmt: skip
    response = client.get("/api/v1/audit", headers=cast.operator.headers)
    assert response.status_code == 200, response.text
    [event] = response.json()["events"]
    assert event["after"] == {"reason": "\ufffd", "\ufffd": ["a\ufffd"]}


@pytest.mark.parametrize(
    ("method", "path"), [("PATCH", "/api/v1/products/p"), ("PUT", "/api/v1/products/p/wizard/general")]
)
def test_listing_text_with_a_lone_surrogate_is_refused(lenient: TestClient, cast: Cast, method: str, path: str) -> None:
    raw = '{"title": "T\\ud800", "highlights": ["ok", "\\udbff"]}'
    response = lenient.request(
        method, path, content=raw, headers={**cast.seller.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == ["body.title", "body.highlights.1"]


def test_a_listing_stored_with_a_lone_surrogate_still_reads(client: TestClient, db: Database, cast: Cast) -> None:
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL cannot store a lone surrogate in JSON")
    create_listing(client, cast.seller, "acme-x")
    with db.unit_of_work() as session:
        product = session.scalars(select(Product).where(Product.code == "acme-x")).one()
        product.listing = {**product.listing, "support": "help \ud800", "highlights": ["ok \U0001f600"]}
    for path in ("/api/v1/products/acme-x", "/api/v1/products/acme-x/wizard"):
        response = client.get(path, headers=cast.seller.headers)
        assert response.status_code == 200, response.text
    product_out = client.get("/api/v1/products/acme-x", headers=cast.seller.headers).json()
    assert "help \ufffd" in str(product_out) and "ok \U0001f600" in str(product_out)


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (b'{"reason": "\xed\xa0\x80"}', True),  # a lone surrogate as UTF-8 bytes: Python's JSON decoder lets it in
        ('{"reason": "\ud800"}'.encode("utf-16-le", "surrogatepass"), True),  # UTF-16, which it detects
        ('{"reason": "x"}'.encode("utf-16"), False),
    ],
)
def test_a_lone_surrogate_as_raw_bytes_is_refused_like_an_escaped_one(
    client: TestClient, lenient: TestClient, cast: Cast, db: Database, raw: bytes, refused: bool
) -> None:
    """Python's `json.loads` decodes bytes with `surrogatepass`, so a body needs no `\\u` escape to spell one."""
    tasks.register_all()
    make_public(client, db, cast, "acme-raw")
    response = lenient.post(
        "/api/v1/products/acme-raw/restrict",
        content=raw,
        headers={**cast.seller.headers, "Content-Type": "application/json"},
    )
    if refused:
        assert response.status_code == 422, response.text
        assert [p["loc"] for p in response.json()["problems"]] == ["body.reason"]
    else:
        assert response.status_code == 200, response.text
    assert lenient.get("/api/v1/audit", headers=cast.operator.headers).status_code == 200
