"""What the operator console's tests need on top of the demo market, set up through the API as sellers and
the operator would: a listing in review with its files, a change request on a public listing, a
pricing-model request (PRC-16), and a job that fails until retried."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from agora import jobs
from agora.app import create_app
from agora.db import Database
from tests.catalog import files

ACME = {"Authorization": "Bearer demo-acme-token"}
NORTHWIND = {"Authorization": "Bearer demo-northwind-token"}
OPS = {"Authorization": "Bearer demo-ops-token"}
IN_REVIEW = "acme-insights"
IN_REVIEW_TITLE = "Acme Insights"
FLAKY = "ops_demo.flaky"
_failures_left = {"n": 0}


@jobs.handler(FLAKY)
def _flaky(session: Any, payload: dict[str, Any]) -> None:
    """Fails while `_failures_left` says so: the job the console retries."""
    if _failures_left["n"] > 0:
        _failures_left["n"] -= 1
        raise RuntimeError("the demo upstream answered 503 Service Unavailable")


def listing(code: str, title: str) -> dict[str, Any]:
    return {
        "code": code,
        "kind": "saas",
        "title": title,
        "short_description": "Dashboards of what your customers do, by the hour.",
        "highlights": ["Funnels and cohorts", "Alerts on drops"],
        "long_description": "Insights reads your product's events.\n\nIt needs no agent.",
        "category": "analytics",
        "tags": ["dashboards"],
        "regions": ["us-east-1"],
        "pricing": {
            "usage": {
                "category": "users",
                "dimensions": [{"name": "users", "description": "Active users", "unit": "UserHrs", "rate": "0.125"}],
            }
        },
        "refund_policy": "Full refund within 30 days: support@acme.example",
        "support": "support@acme.example, weekdays 9–17 CET",
    }


def upload(api: TestClient, code: str, kind: str, data: bytes, name: str) -> None:
    response = api.post(
        f"/api/v1/products/{code}/assets",
        data={"kind": kind},
        files={"file": (name, data, "application/octet-stream")},
        headers=ACME,
    )
    assert response.status_code == 201, response.text


def submit_listing(api: TestClient, code: str = IN_REVIEW, title: str = IN_REVIEW_TITLE) -> None:
    created = api.post("/api/v1/products", json=listing(code, title), headers=ACME)
    assert created.status_code == 201, created.text
    upload(api, code, "logo", files.png(), "logo.png")
    upload(api, code, "user_guide", files.pdf(), "insights-guide.pdf")
    upload(api, code, "screenshot", files.png(640, 400, (220, 230, 240)), "dashboard.png")
    submitted = api.post(f"/api/v1/products/{code}/submit", headers=ACME)
    assert submitted.status_code == 200, submitted.text


def seed_console(db: Database, *, failing_job: bool = True) -> dict[str, Any]:
    """Everything the console tests act on; returns the ids they need."""
    with TestClient(create_app(db)) as api:
        submit_listing(api)
        change = api.patch(
            "/api/v1/products/acme-vault",
            json={"short_description": "Hardened secrets manager image, now with HSM-backed auto-unseal."},
            headers=ACME,
        )
        assert change.status_code in (200, 202), change.text
        model = api.post(
            "/api/v1/products/northwind-monitor/pricing-model-requests",
            json={"hourly": {"m5.large": "0.05"}, "monthly": "300"},
            headers=NORTHWIND,
        )
        assert model.status_code == 201, model.text
        change_id = api.get("/api/v1/reviews", headers=OPS).json()["change_requests"][0]["id"]
    out: dict[str, Any] = {"model_request": model.json()["id"], "change_request": change_id}
    if failing_job:
        with db.unit_of_work() as session:
            job = jobs.enqueue(session, FLAKY, {"upstream": "demo"}, max_attempts=1)
            assert job is not None
            out["job"] = job.id
        _failures_left["n"] = 1
        worker = jobs.Worker(db, only=frozenset({FLAKY}))
        assert worker.run_once()
    return out
