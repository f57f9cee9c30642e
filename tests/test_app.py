"""The app shell: health, OpenAPI, the error shape, request ids, the escaped web page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from agora import clock
from agora.db import Database
from agora.models import Product
from tests.factories.identities import add_seller


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path: object) -> None:
    from agora.app import create_app
    from agora.db import open_database

    broken = open_database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with TestClient(create_app(broken)) as c:
        response = c.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/audit" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_errors_have_one_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "detail"}
    unauthorized = client.get("/api/v1/me")
    assert unauthorized.json()["error"] == "unauthorized"


def test_a_request_id_is_echoed_or_made_up(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made_up = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"}).headers["x-request-id"]
    assert len(made_up) == 32 and made_up.isalnum()


def test_the_storefront_escapes_what_sellers_wrote(client: TestClient, db: Database) -> None:
    with db.unit_of_work() as session:
        seller = add_seller(session)
        session.add(
            Product(
                code="evil",
                seller_id=seller.id,
                kind="saas",
                title="<script>alert(1)</script>",
                state="public",
                listing={"short_description": "a & b"},
                pricing={"free": True},
                updated_at=clock.now(),
            )
        )
    page = client.get("/")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "a &amp; b" in page.text
