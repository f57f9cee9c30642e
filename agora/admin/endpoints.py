"""Operator views over the platform's own records: the audit log and the job queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, field_validator
from sqlalchemy import select

from agora import jobs
from agora.admin import views
from agora.auth import Principal, require
from agora.deps import Uow
from agora.identities import resets
from agora.models import AuditEvent, Job, JobState, Notification, Role
from agora.paging import Page, Paging
from agora.validation import Id, Instant, clean_text

router = APIRouter(prefix="/api/v1", tags=["operations"])
operator_only = require(Role.OPERATOR)


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None

    @field_validator("actor", "target_id", "before", "after", "request_id")
    @classmethod
    def _writable(cls, value: Any) -> Any:
        """What was stored before the edge refused invalid text still renders (as U+FFFD)."""
        return clean_text(value)


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_before_id: int | None


@router.get("/audit", response_model=AuditPage)
def list_audit(
    session: Uow,
    _: Principal = Depends(operator_only),
    actor: str | None = None,
    action: str | None = Query(None, description="exact action, or a prefix ending in '.' such as 'product.'"),
    target_type: str | None = None,
    target_id: str | None = None,
    request_id: str | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    before_id: Annotated[Id | None, Query(description="events older than this id (same as `after`)")] = None,
    page: Page = Depends(Paging),
) -> AuditPage:
    query = views.audit_query(views.AuditFilter(actor, action, target_type, target_id, request_id, since, until))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = page.scalars(session, query, [AuditEvent.id], newest_first=True)
    return AuditPage(
        events=[AuditEventOut.model_validate(r, from_attributes=True) for r in rows],
        next_before_id=page.next_after,
    )


class JobOut(BaseModel):
    id: int
    name: str
    state: str
    payload: dict[str, Any]
    run_at: datetime
    attempts: int
    max_attempts: int
    locked_by: str | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class NotificationOut(BaseModel):
    id: int
    to: str
    kind: str
    subject: str
    body: str
    state: str
    created_at: datetime
    sent_at: datetime | None


@router.get("/notifications", response_model=list[NotificationOut])
def list_notifications(
    session: Uow,
    _: Principal = Depends(operator_only),
    to: str | None = None,
    kind: str | None = None,
    page: Page = Depends(Paging),
) -> list[NotificationOut]:
    """The outbox: every message the marketplace sent or will send, newest first."""
    query = select(Notification)
    if to:
        query = query.where(Notification.to == to)
    if kind:
        query = query.where(Notification.kind == kind)
    rows = page.scalars(session, query, [Notification.id], newest_first=True)
    found = [NotificationOut.model_validate(n, from_attributes=True) for n in rows]
    return [n.model_copy(update={"body": resets.redact(n.body)}) for n in found]


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    session: Uow,
    _: Principal = Depends(operator_only),
    state: JobState | None = None,
    name: str | None = None,
    page: Page = Depends(Paging),
) -> list[JobOut]:
    query = select(Job)
    if state:
        query = query.where(Job.state == state.value)
    if name:
        query = query.where(Job.name == name)
    rows = page.scalars(session, query, [Job.id], newest_first=True)
    return [JobOut.model_validate(j, from_attributes=True) for j in rows]


@router.post("/jobs/{job_id}/retry", response_model=JobOut)
def retry_job(job_id: Id, session: Uow, principal: Principal = Depends(operator_only)) -> JobOut:
    """Give a job that used up its attempts another full set."""
    job = jobs.retry(session, principal.actor, job_id)
    return JobOut.model_validate(job, from_attributes=True)
