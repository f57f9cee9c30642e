"""Request bodies are bounded before any route reads them (`agora.limits`): refused by `Content-Length` up
front, counted as they stream, in the shape the caller speaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from agora.db import Database
from agora.limits import BODY_LIMIT, MB, OFFER_FORM_LIMIT, UPLOAD_LIMIT, BodyLimitMiddleware, body_limit
from tests.factories.identities import add_cast

AWS_METER = {"x-amz-target": "AWSMPMeteringService.BatchMeterUsage", "content-type": "application/x-amz-json-1.1"}


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


def test_an_anonymous_oversized_sdk_request_is_413_in_the_aws_shape(client: TestClient) -> None:
    response = client.post("/", content=b" " * (BODY_LIMIT + 1), headers=AWS_METER)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.headers["connection"] == "close"
    assert response.json()["__type"] == "RequestEntityTooLargeException"
    assert "1 MB" in response.json()["message"]
    assert response.headers["x-request-id"]


def test_an_oversized_alibaba_request_is_413_in_the_alibaba_shape(client: TestClient) -> None:
    for params, headers in (({"Action": "PushMeteringData"}, {}), ({}, {"x-acs-action": "PushMeteringData"})):
        response = client.post("/", params=params, content=b"x" * (2 * MB), headers=headers)
        assert response.status_code == 413
        body = response.json()
        assert body["Code"] == "RequestEntityTooLarge"
        assert {"RequestId", "HostId", "Message"} <= body.keys()


def test_an_oversized_native_body_is_413_in_agoras_shape(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    response = client.post("/api/v1/usage", content=b"{" * (BODY_LIMIT + 1), headers=json_type)
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "detail": "the request body may be at most 1 MB on this route"}


def test_a_chunked_body_is_counted_as_it_streams(client: TestClient) -> None:
    """No Content-Length to refuse up front: the bytes are counted and the request is cut at the limit."""
    response = client.post("/", content=_chunks(3 * MB), headers=AWS_METER)
    assert response.status_code == 413
    assert response.json()["__type"] == "RequestEntityTooLargeException"
    response = client.post("/api/v1/usage", content=_chunks(3 * MB), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_a_body_at_the_limit_reaches_its_route(client: TestClient) -> None:
    response = client.post("/", content=b" " * BODY_LIMIT, headers=AWS_METER)
    assert response.status_code != 413
    assert response.json()["__type"] != "RequestEntityTooLargeException"


def test_the_largest_legitimate_usage_batch_fits_the_limit(client: TestClient, db: Database) -> None:
    """1,000 records (the batch maximum) with every field at its longest, and two tagged allocations each:
    0.88 MB of JSON. It is answered record by record, not refused whole."""
    cast = add_cast(db)
    allocation = {"quantity": 2**62, "tags": {"k" * 20: "v" * 40, "q" * 20: "w" * 40}}
    record = {
        "product_code": "p" * 64,
        "dimension": "d" * 160,
        "quantity": 2**63 - 1,
        "timestamp": datetime(2026, 3, 1, 10, tzinfo=UTC).isoformat(timespec="microseconds"),
        "customer_identifier": "c" * 128,
        "allocations": [allocation, allocation],
    }
    body = json.dumps({"records": [record] * 1000}).encode()
    assert 0.8 * MB < len(body) <= BODY_LIMIT
    response = client.post(
        "/api/v1/usage", content=body, headers={**cast.seller.headers, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["results"]) == 1000


def test_uploads_have_the_largest_asset_kinds_limit_and_nothing_else_does() -> None:
    def scope(method: str, path: str) -> dict[str, object]:
        return {"method": method, "path": path}

    assert body_limit(scope("POST", "/api/v1/products/acme/assets")) == UPLOAD_LIMIT
    assert body_limit(scope("POST", "/api/v1/offers/offer-1/eula")) == UPLOAD_LIMIT
    assert body_limit(scope("POST", "/seller/products/acme-x/files")) == UPLOAD_LIMIT
    assert body_limit(scope("POST", "/seller/offers")) == OFFER_FORM_LIMIT < UPLOAD_LIMIT
    assert UPLOAD_LIMIT > 200 * MB
    others = [
        ("POST", "/"),
        ("POST", "/api/v1/usage"),
        ("PATCH", "/api/v1/products/acme"),
        ("POST", "/api/v1/products/acme/assets/x"),
        ("PUT", "/api/v1/products/acme/assets"),
    ]
    for method, path in others:
        assert body_limit(scope(method, path)) == BODY_LIMIT, path


def test_the_read_timeout_stops_at_the_end_of_the_body() -> None:
    """Once the body is in, the app may wait as long as it likes for a disconnect (a streaming response
    listens for one while it sends); only a body that stalls is timed out."""
    asyncio.run(_wait_for_a_disconnect_after_the_body())


async def _wait_for_a_disconnect_after_the_body() -> None:
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]
    sent: list[dict[str, object]] = []
    waited: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.3)  # longer than the read timeout below
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def app(scope: object, receive: object, send: object) -> None:
        assert (await receive())["body"] == b"{}"  # type: ignore[operator]
        waited.append(await receive())  # type: ignore[operator]

    middleware = BodyLimitMiddleware(app, read_timeout=0.1)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"2")]}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    assert waited == [{"type": "http.disconnect"}]
    assert sent == []
