"""Every state change is audited in its own transaction; operators read the log, filtered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import audit, clock
from agora.db import Database
from agora.models import AuditEvent
from tests.factories.identities import add_cast


def test_an_audit_event_commits_or_rolls_back_with_its_change(db: Database) -> None:
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        audit.record(session, actor="test", action="thing.change", target_type="thing", target_id=1)
        raise RuntimeError("the change failed")
    with db.reader() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_api_changes_are_audited_with_actor_before_after_and_request_id(
    client: TestClient, db: Database, manual_clock: clock.ManualClock
) -> None:
    cast = add_cast(db)
    key_id = client.post("/api/v1/keys", headers=cast.seller.headers).json()["access_key_id"]
    manual_clock.advance(timedelta(minutes=5))
    response = client.delete(f"/api/v1/keys/{key_id}", headers={**cast.seller.headers, "X-Request-Id": "req-42"})
    assert response.headers["x-request-id"] == "req-42"

    page = client.get("/api/v1/audit", params={"request_id": "req-42"}, headers=cast.operator.headers).json()
    (event,) = page["events"]
    assert event["actor"] == "seller:acme"
    assert event["action"] == "access_key.revoke"
    assert (event["target_type"], event["target_id"]) == ("access_key", key_id)
    assert event["before"] == {"revoked_at": None}
    assert event["after"] == {"revoked_at": manual_clock.now().isoformat()}
    assert event["at"].replace("Z", "+00:00") == manual_clock.now().isoformat()


def test_audit_log_filters_and_pages(client: TestClient, db: Database, manual_clock: clock.ManualClock) -> None:
    cast = add_cast(db)
    with db.unit_of_work() as session:
        for i in range(5):
            manual_clock.advance(timedelta(hours=1))
            audit.record(session, actor=f"seller:s{i % 2}", action=f"product.v{i}", target_type="product", target_id=i)
    headers = cast.operator.headers

    def events(**params: object) -> list[dict[str, object]]:
        response = client.get("/api/v1/audit", params=params, headers=headers)
        assert response.status_code == 200, response.text
        result: list[dict[str, object]] = response.json()["events"]
        return result

    assert [e["target_id"] for e in events(actor="seller:s0")] == ["4", "2", "0"]
    assert len(events(action="product.")) == 5
    assert [e["target_id"] for e in events(action="product.v3")] == ["3"]
    assert [e["target_id"] for e in events(target_type="product", target_id="1")] == ["1"]
    since = (clock.now() - timedelta(hours=2)).isoformat()
    assert [e["target_id"] for e in events(since=since, action="product.")] == ["4", "3", "2"]

    first = client.get("/api/v1/audit", params={"limit": 2, "action": "product."}, headers=headers).json()
    assert [e["target_id"] for e in first["events"]] == ["4", "3"]
    rest = client.get(
        "/api/v1/audit",
        params={"limit": 10, "action": "product.", "before_id": first["next_before_id"]},
        headers=headers,
    ).json()
    assert [e["target_id"] for e in rest["events"]] == ["2", "1", "0"] and rest["next_before_id"] is None

    bad = client.get("/api/v1/audit", params={"limit": 0}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
