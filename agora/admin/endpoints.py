"""Operator views over the platform's own records: the audit log and the job queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, field_validator
from sqlalchemy import select

from agora import audit, clock
from agora.auth import Principal, require
from agora.deps import Uow
from agora.errors import InvalidTransition, NotFound
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
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(
            AuditEvent.action.startswith(action) if action.endswith(".") else AuditEvent.action == action
        )
    if target_type:
        query = query.where(AuditEvent.target_type == target_type)
    if target_id:
        query = query.where(AuditEvent.target_id == target_id)
    if request_id:
        query = query.where(AuditEvent.request_id == request_id)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
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
    return [NotificationOut.model_validate(n, from_attributes=True) for n in rows]


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
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state != JobState.FAILED.value:
        raise InvalidTransition(f"job {job_id} is {job.state}; only failed jobs can be retried")
    before = {"state": job.state, "attempts": job.attempts}
    job.state = JobState.QUEUED.value
    job.max_attempts = job.attempts + job.max_attempts
    job.run_at = clock.now()
    job.finished_at = None
    audit.record(
        session,
        actor=principal.actor,
        action="job.retry",
        target_type="job",
        target_id=job.id,
        before=before,
        after={"state": job.state, "max_attempts": job.max_attempts},
    )
    session.flush()
    return JobOut.model_validate(job, from_attributes=True)
