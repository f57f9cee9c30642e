"""/openapi.json says what the API does: its error shape, its bearer tokens, a schema for every success."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora.app import create_app
from agora.db import open_database
from agora.models import Role
from agora.openapi import SCHEME, api_routes, declared_roles


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(open_database("sqlite://"))
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_fastapis_validation_error_is_gone_and_every_error_is_the_shared_model(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"} and "problems" in error["properties"]
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_every_authenticated_operation_declares_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"][SCHEME] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"][SCHEME]["description"],
    }
    app = create_app(open_database("sqlite://"))
    for route in (r for r in api_routes(app.routes) if r.include_in_schema):
        roles = declared_roles(route)
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            if roles is None:
                assert route.path in ("/healthz", "/readyz"), f"{route.path} declares no audience"
                assert "security" not in operation
                continue
            assert {SCHEME: []} in operation["security"], (method, route.path)
            assert "401" in responses, (method, route.path)
            assert ("403" in responses) == bool(roles and set(Role) - roles), (method, route.path)
            if route.param_convertors:
                assert "404" in responses, (method, route.path)


def test_public_routes_take_a_token_optionally(document: dict[str, Any]) -> None:
    assert document["paths"]["/api/v1/catalog"]["get"]["security"] == [{}, {SCHEME: []}]
    assert document["paths"]["/api/v1/subscriptions"]["get"]["security"] == [{SCHEME: []}]


def test_every_success_response_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, (method, path)
        for status, response in successes.items():
            assert response.get("content"), (method, path, status)
            for media_type, body in response["content"].items():
                assert body.get("schema"), (method, path, status, media_type)


def test_a_real_422_matches_the_documented_error(document: dict[str, Any]) -> None:
    app = create_app(open_database("sqlite://"))
    with TestClient(app) as client:
        body = client.get("/api/v1/catalog", params={"limit": 0}).json()
    error = document["components"]["schemas"]["Error"]
    assert set(body) <= set(error["properties"]) and set(error["required"]) <= set(body)
    assert body["problems"][0]["loc"] == "query.limit"


def _bare(schema: dict[str, Any]) -> bool:
    """`{"type": "object"}` with nothing said about its keys: what FastAPI writes for `-> dict[str, Any]`."""
    return schema.get("type") == "object" and "properties" not in schema and "$ref" not in schema


def test_no_json_success_is_a_bare_object(document: dict[str, Any]) -> None:
    """Issue 15, item 12: every JSON answer names its fields (a listing may carry more, and says so)."""
    bare = [
        (method, path)
        for method, path, operation in _operations(document)
        for status, response in operation["responses"].items()
        if status.startswith("2")
        for media_type, body in response.get("content", {}).items()
        if media_type == "application/json" and _bare(body["schema"])
    ]
    assert bare == []


def test_an_invoice_is_documented_field_by_field(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    invoice = schemas["InvoiceOut"]
    assert {"id", "buyer", "period", "kind", "total", "subtotals", "lines"} <= set(invoice["properties"])
    listed = document["paths"]["/api/v1/invoices"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["properties"]["invoices"]["items"] == {"$ref": "#/components/schemas/InvoiceOut"}


def test_no_list_is_a_list_of_bare_objects(document: dict[str, Any]) -> None:
    bare = []
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            arrays = [schema, *schema.get("properties", {}).values()] if status.startswith("2") else []
            bare += [(method, path) for a in arrays if a.get("type") == "array" and _bare(a.get("items", {}))]
    assert bare == []
