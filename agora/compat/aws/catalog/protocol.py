"""The Catalog API's HTTP side: REST-JSON routes (`POST /StartChangeSet`, `GET /DescribeEntity?catalog=…`, …),
SigV4 (service `aws-marketplace`) against the access keys Agora issued, and AWS's error shape —
`{"message": …}` with the `x-amzn-ErrorType` header and the status the service model gives each error."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agora.auth import Principal
from agora.compat.aws import protocol as aws
from agora.compat.aws import sigv4
from agora.compat.aws.catalog import change_sets, operations
from agora.compat.aws.catalog.errors import CatalogError, validation
from agora.compat.endpoint import in_thread
from agora.db import Database
from agora.validation import bad_text

log = logging.getLogger("agora.compat.catalog")
CONTENT_TYPE = "application/json"

Operation = Callable[[Session, Principal, dict[str, Any]], dict[str, Any]]
# path → (method, operation, query parameter → member)
ROUTES: dict[str, tuple[str, Operation, dict[str, str]]] = {
    "/StartChangeSet": ("POST", change_sets.start, {}),
    "/DescribeChangeSet": ("GET", change_sets.describe, {"catalog": "Catalog", "changeSetId": "ChangeSetId"}),
    "/ListChangeSets": ("POST", operations.list_change_sets, {}),
    "/CancelChangeSet": ("PATCH", change_sets.cancel, {"catalog": "Catalog", "changeSetId": "ChangeSetId"}),
    "/DescribeEntity": ("GET", operations.describe_entity, {"catalog": "Catalog", "entityId": "EntityId"}),
    "/ListEntities": ("POST", operations.list_entities, {}),
    "/BatchDescribeEntities": ("POST", operations.batch_describe_entities, {}),
    "/TagResource": ("POST", operations.tag_resource, {}),
    "/UntagResource": ("POST", operations.untag_resource, {}),
    "/ListTagsForResource": ("POST", operations.list_tags_for_resource, {}),
}


def _reply(status: int, body: dict[str, Any], request_id: str, error: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    if error:
        headers["x-amzn-ErrorType"] = error
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type=CONTENT_TYPE)


def _payload(path: str, query: str, body: bytes) -> dict[str, Any]:
    _, _, parameters = ROUTES[path]
    if parameters:
        values = parse_qs(query, keep_blank_values=True)
        payload = {member: values[name][0] for name, member in parameters.items() if name in values}
    else:
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise validation("the request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise validation("the request body must be a JSON object")
    problems = bad_text(payload, brackets=True)
    if problems:
        raise validation("; ".join(f"{loc or 'the request body'} {problem}" for loc, problem in problems))
    return payload


def handle(db: Database, method: str, path: str, query: str, headers: Any, body: bytes) -> Response:
    request_id = str(uuid.uuid4())
    try:
        expected, operation, _ = ROUTES[path]
        if method != expected:
            raise validation(f"{path} is called with {expected}")
        _, principal = aws.verify(db, method, path, query, headers, body)
        payload = _payload(path, query, body)
        with db.unit_of_work() as session:
            result = operation(session, principal, payload)
        return _reply(200, result, request_id)
    except CatalogError as error:
        return _reply(error.status, {"message": error.message, "Message": error.message}, request_id, error.code)
    except sigv4.SignatureError as error:
        return _reply(error.status, {"message": error.message}, request_id, error.code)
    except Exception:
        log.exception("Catalog API request %s failed", request_id)
        message = f"An internal error occurred. RequestId {request_id}."
        return _reply(500, {"message": message}, request_id, "InternalServiceException")


async def catalog_endpoint(request: Request) -> Response:
    body = await request.body()
    db: Database = request.app.state.db
    reply: Response = await in_thread(
        db, handle, db, request.method, request.url.path, request.url.query, request.headers, body
    )
    return reply


def routes() -> list[Route]:
    return [
        Route(path, catalog_endpoint, methods=[method], include_in_schema=False)
        for path, (method, _, _) in ROUTES.items()
    ]
