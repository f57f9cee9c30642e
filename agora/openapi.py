"""The OpenAPI document, made to say what the API really does.

FastAPI documents its own `HTTPValidationError` for 422s, knows nothing of the bearer tokens `agora.auth`
checks (a plain dependency, not a `SecurityBase`), and cannot see the errors a service raises. The facts
are all in the routes, so they are read from there rather than written by hand on ~90 operations:

- every error, whatever its status, is `{"error", "detail"}` (`agora.errors`), and a 422 adds `problems`;
- a route that depends on `auth.require(...)` takes a bearer token (401 without one), and 403 for the other
  roles; a route that depends on `auth.viewer` takes one optionally;
- a path parameter names an object that may not exist or may belong to another tenant: 404;
- a write may meet a state that forbids it: 409;
- a list pages with `limit`/`after` and announces the next page in a `Link` header (`agora.paging`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from agora.auth import route_roles
from agora.models import Role
from agora.paging import LINK_DESCRIPTION

SCHEME = "HTTPBearer"


class ErrorProblem(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: str = Field(description="where: a field path such as `records.0.quantity`, or a parameter name")
    msg: str
    type: str | None = Field(None, description="the validator's name, for problems found while parsing")


class Error(BaseModel):
    """What every 4xx of the native API answers."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable snake_case code, e.g. `not_found`, `invalid_transition`")
    detail: str = Field(description="a message for people")
    problems: list[ErrorProblem] | None = Field(None, description="422: every problem found, each located")


# Success bodies that are not JSON: FastAPI sees only `Response` there.
FILES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/v1/invoices/{invoice_id}/pdf"): {
        "application/pdf": {"schema": {"type": "string", "format": "binary"}}
    },
    ("get", "/api/v1/offers/{public_id}/eula"): {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    ("get", "/api/v1/assets/{digest}"): {"*/*": {"schema": {"type": "string", "format": "binary"}}},
}


class UsageRecordOut(BaseModel):
    """One usage record as `GET /api/v1/usage` lists it (`agora.metering.usage.query`)."""

    id: int = Field(description="the cursor: pass the last one as `after`, and to POST /usage/errors")
    metering_record_id: str
    product: str
    customer_identifier: str
    customer_account: str
    dimension: str
    resource: str | None
    period_start: str
    period_end: str | None
    quantity: int
    source: str
    received_at: str
    allocations: list[dict[str, Any]] | None


CSV = {"text/csv": {"schema": {"type": "string"}}}
# Routes that answer JSON or CSV (`format=csv`), so FastAPI has no model for them.
CSV_EXPORTS = {
    # InvoiceOut is a component because the other invoice routes answer it.
    ("get", "/api/v1/invoices"): {
        "type": "object",
        "properties": {"invoices": {"type": "array", "items": {"$ref": "#/components/schemas/InvoiceOut"}}},
        "required": ["invoices"],
    },
    ("get", "/api/v1/usage"): {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": UsageRecordOut.model_json_schema()},
            "next_after": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["records", "next_after"],
    },
}

WRITES = {"post", "put", "patch", "delete"}
STATUS_TEXT = {
    401: "No valid bearer token (`WWW-Authenticate: Bearer`).",
    403: "The caller's role may not do this.",
    404: "No such object, or it belongs to another tenant (the two are not told apart).",
    409: "The object's state does not allow this (e.g. `invalid_transition`), or it conflicts with another.",
    422: "The input breaks a rule; `problems` locates each.",
}


def _dependencies(route: APIRoute) -> Iterator[Any]:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        yield dependant.call
        stack.extend(dependant.dependencies)


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every `APIRoute` of an app, also those of included routers (FastAPI keeps those behind an
    `_IncludedRouter`, whose `original_router` holds them; the routers here carry their own prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def declared_roles(route: APIRoute) -> frozenset[Role] | None:
    """Who may call a route: the roles of its `auth.require`, an empty set for `auth.viewer` (anyone, a token
    optional), None where the route declares nothing (public)."""
    found = [roles for call in _dependencies(route) if (roles := route_roles(call)) is not None]
    return found[0] if found else None


def is_paged(route: APIRoute) -> bool:
    return any(getattr(call, "agora_paging", False) for call in _dependencies(route)) or route.path == "/api/v1/catalog"


def _error(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or STATUS_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _document(schema: dict[str, Any], routes: list[APIRoute]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_schema = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in {**error_schema.pop("$defs", {}), "Error": error_schema}.items():
        # Component names are global: one of the API's own models must not be replaced by these.
        assert name not in schemas, f"an API model is already named {name}"
        schemas[name] = definition
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token of an operator, seller or buyer (from the manifest or POST /api/v1/keys).",
        }
    }
    for route in routes:
        if not route.include_in_schema:
            continue
        roles = declared_roles(route)
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            _document_operation(method.lower(), route, operation, roles)


def _document_operation(method: str, route: APIRoute, operation: dict[str, Any], roles: frozenset[Role] | None) -> None:
    responses = operation.setdefault("responses", {})
    if roles is not None:
        # Optional for `viewer` routes: `{}` is "no requirement", the token only shows the caller more.
        operation["security"] = [{SCHEME: []}] if roles else [{}, {SCHEME: []}]
        responses["401"] = _error(401)
        if roles and set(Role) - roles:
            responses["403"] = _error(403)
    if route.param_convertors:
        responses["404"] = _error(404)
    if method in WRITES:
        responses["409"] = _error(409)
    if operation.get("parameters") or operation.get("requestBody") or "422" in responses:
        responses["422"] = _error(422)
    responses["4XX"] = _error(400, "Any other refusal, in the same shape.")
    key = (method, route.path_format)
    success = next((r for code, r in responses.items() if code.startswith("2")), None)
    if success is not None:
        if key in FILES:
            success["content"] = FILES[key]
        elif key in CSV_EXPORTS:
            success["content"] = {"application/json": {"schema": CSV_EXPORTS[key]}, **CSV}
        if is_paged(route):
            success["headers"] = {"Link": {"description": LINK_DESCRIPTION, "schema": {"type": "string"}}}


def install(app: FastAPI) -> None:
    """Serve the corrected document at /openapi.json (and /docs)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _document(schema, list(api_routes(app.routes)))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
