"""The operator console's oversight pages through the TestClient, on SQLite and PostgreSQL: the audit log
and its filters with each entry's before and after, the job queue with **Retry**, the outbox, and the
accounts whose tokens and keys are revoked from here (each revocation audited)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock, jobs, tasks
from agora.auth import hash_token
from agora.db import Database
from agora.models import AccessKey, ApiToken, AuditEvent, Job
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import OPERATOR
from tests.web.ops_market import FLAKY, IN_REVIEW, seed_console


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def console(db: Database, offer_id: str) -> dict[str, Any]:
    return seed_console(db)


@pytest.fixture
def ops(browser: TestClient, console: dict[str, Any]) -> TestClient:
    assert sign_in(browser, *OPERATOR).status_code == 303
    return browser


def post(client: TestClient, url: str, page: str, **fields: str) -> Any:
    return client.post(url, data={"csrf_token": csrf_of(client.get(page)), **fields})


def entries(html: str) -> list[str]:
    return re.findall(r'<h2 id="audit-\d+" class="audit-title"><code>([^<]+)</code>', html)


# --- audit ---------------------------------------------------------------------------------------------------


def test_the_audit_log_filters_by_actor_action_target_and_time(ops: TestClient) -> None:
    page = f"/ops/reviews/{IN_REVIEW}"
    post(ops, f"{page}/reject", page, reason="Add screenshots of the alerts.")
    by_operator = ops.get("/ops/audit", params={"actor": "operator:ops"}).text
    assert entries(by_operator)[0] == "product.reject"  # newest first
    assert set(entries(by_operator)) == {"product.reject", "infrastructure_price.set"}  # the seed's prices
    assert "Add screenshots of the alerts." in text_of(by_operator)  # the entry's after
    assert "submitted" in text_of(by_operator) and "draft" in text_of(by_operator)  # before → after
    prefix = entries(ops.get("/ops/audit", params={"action": "product."}).text)
    assert prefix and all(a.startswith("product.") for a in prefix)
    target = entries(ops.get("/ops/audit", params={"target_type": "product", "target_id": IN_REVIEW}).text)
    assert target[0] == "product.reject" and "product.create" in target
    today = clock.now().date()
    assert entries(ops.get("/ops/audit", params={"since": today.isoformat(), "actor": "operator:ops"}).text)
    past = ops.get("/ops/audit", params={"until": "2000-01-01"}).text
    assert entries(past) == [] and "No entry matches" in past


def test_a_bad_date_in_the_audit_filter_names_its_field(ops: TestClient) -> None:
    response = ops.get("/ops/audit", params={"since": "last tuesday"})
    assert response.status_code == 422
    assert 'id="a-since" name="since" value="last tuesday" aria-invalid="true"' in response.text
    assert "Enter a date as YYYY-MM-DD." in response.text


# --- jobs ----------------------------------------------------------------------------------------------------


def test_a_failed_job_shows_its_last_error_and_is_retried(ops: TestClient, db: Database, console: Any) -> None:
    job_id = console["job"]
    page = ops.get("/ops/jobs").text
    assert f"Job {job_id}:" in text_of(page) and FLAKY in page
    assert "RuntimeError: the demo upstream answered 503 Service Unavailable" in page
    depth = text_of(page)
    assert re.search(rf"{re.escape(FLAKY)} 0 0 1 0", depth), depth  # queued, running, failed, done
    assert post(ops, f"/ops/jobs/{job_id}/retry", "/ops/jobs").status_code == 303
    assert f"Job {job_id} ({FLAKY}) is queued again." in unescape(ops.get("/ops/jobs").text)
    with db.reader() as session:
        assert session.get_one(Job, job_id).state == "queued"
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.retry")).all()
        assert (event.actor, event.target_id, event.before) == (
            "operator:ops",
            str(job_id),
            {"state": "failed", "attempts": 1},
        )
    assert jobs.Worker(db, only=frozenset({FLAKY})).run_once()
    with db.reader() as session:
        assert session.get_one(Job, job_id).state == "done"
    # only a failed job is retried: the service's reason is shown
    post(ops, f"/ops/jobs/{job_id}/retry", "/ops/jobs")
    assert "only failed jobs can be retried" in unescape(ops.get("/ops/jobs").text)


# --- outbox --------------------------------------------------------------------------------------------------


def test_the_outbox_lists_messages_and_filters_them(ops: TestClient, db: Database) -> None:
    page = f"/ops/reviews/{IN_REVIEW}"
    post(ops, f"{page}/reject", page, reason="Say which regions you support.")
    jobs.Worker(db).run_until_idle()
    outbox = text_of(ops.get("/ops/outbox", params={"kind": "listing_rejected"}).text)
    assert "Changes needed: Acme Insights" in outbox
    assert "To sales@acme.example" in outbox and "Say which regions you support." in outbox
    assert "kept" in outbox  # no SMTP server in the tests: the outbox is the record
    assert "Review requested" not in outbox


# --- accounts ------------------------------------------------------------------------------------------------


def test_a_sellers_token_and_key_are_revoked_from_the_console(ops: TestClient, db: Database) -> None:
    page = ops.get("/ops/sellers").text
    assert "Acme Corp" in page and "AKIDACME00000001" in page
    with db.reader() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token("demo-acme-token")))
        assert token is not None
        token_id = token.id
    with TestClient(ops.app) as api:  # type: ignore[arg-type]
        headers = {"Authorization": "Bearer demo-acme-token"}
        assert api.get("/api/v1/me", headers=headers).status_code == 200
        assert post(ops, f"/ops/sellers/credentials/token/{token_id}/revoke", "/ops/sellers").status_code == 303
        assert "The API token is revoked" in unescape(ops.get("/ops/sellers").text)
        assert api.get("/api/v1/me", headers=headers).status_code == 401
    assert post(ops, "/ops/sellers/credentials/key/AKIDACME00000001/revoke", "/ops/sellers").status_code == 303
    with db.reader() as session:
        key = session.get_one(AccessKey, "AKIDACME00000001")
        assert key.revoked_at is not None
        actions = list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.actor == "operator:ops", AuditEvent.action.like("%.revoke"))
            )
        )
    assert actions == ["api_token.revoke", "access_key.revoke"]
    again = post(ops, "/ops/sellers/credentials/key/AKIDACME00000001/revoke", "/ops/sellers")
    assert again.status_code == 303
    assert "already revoked" in unescape(ops.get("/ops/sellers").text)
    assert post(ops, "/ops/sellers/credentials/key/NO-SUCH-KEY1/revoke", "/ops/sellers").status_code == 404


def test_buyers_are_listed_with_their_credentials(ops: TestClient) -> None:
    words = text_of(ops.get("/ops/buyers").text)
    assert "Account 111122223333" in words and "AKIDBUYER0000001" in words and "enterprise" in words
