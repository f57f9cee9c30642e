"""What the operator reads about the platform itself: the audit log, the job queue, the outbox, and the
accounts with their credentials. The API's operator endpoints and the operator console both read here."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from agora.models import AccessKey, ApiToken, AuditEvent, Buyer, Job, JobState, Notification, Seller

PAGE = 100  # rows a console page shows; the API pages with its own cursor


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("product.")
    target_type: str | None = None
    target_id: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_query(f: AuditFilter) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if f.actor:
        query = query.where(AuditEvent.actor == f.actor)
    if f.action:
        action = AuditEvent.action
        query = query.where(action.startswith(f.action) if f.action.endswith(".") else action == f.action)
    if f.target_type:
        query = query.where(AuditEvent.target_type == f.target_type)
    if f.target_id:
        query = query.where(AuditEvent.target_id == f.target_id)
    if f.request_id:
        query = query.where(AuditEvent.request_id == f.request_id)
    if f.since:
        query = query.where(AuditEvent.at >= f.since)
    if f.until:
        query = query.where(AuditEvent.at < f.until)
    return query


def audit_events(session: Session, f: AuditFilter, limit: int = PAGE) -> list[AuditEvent]:
    """The newest matching events first."""
    return list(session.scalars(audit_query(f).order_by(AuditEvent.id.desc()).limit(limit)))


def audit_choices(session: Session) -> dict[str, list[str]]:
    """The actors, actions and target types that occur, for the filter's suggestions."""
    return {
        "actors": list(session.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor).limit(200))),
        "actions": list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))),
        "target_types": list(
            session.scalars(select(AuditEvent.target_type).distinct().order_by(AuditEvent.target_type))
        ),
    }


# --- jobs ----------------------------------------------------------------------------------------------------


@dataclass
class Depth:
    name: str
    queued: int = 0
    running: int = 0
    failed: int = 0
    done: int = 0


def queue_depth(session: Session) -> list[Depth]:
    """Jobs per kind and state, the kinds with failures first."""
    rows = session.execute(select(Job.name, Job.state, func.count()).group_by(Job.name, Job.state))
    depth: dict[str, Depth] = {}
    for name, state, count in rows:
        entry = depth.setdefault(name, Depth(name))
        if state in (JobState.QUEUED.value, JobState.RUNNING.value, JobState.FAILED.value, JobState.DONE.value):
            setattr(entry, state, count)
    return sorted(depth.values(), key=lambda d: (-d.failed, -(d.queued + d.running), d.name))


def failed_jobs(session: Session, limit: int = PAGE) -> list[Job]:
    query = select(Job).where(Job.state == JobState.FAILED.value).order_by(Job.finished_at.desc(), Job.id.desc())
    return list(session.scalars(query.limit(limit)))


def recent_jobs(session: Session, limit: int = 30) -> list[Job]:
    query = select(Job).where(Job.state != JobState.FAILED.value).order_by(Job.id.desc())
    return list(session.scalars(query.limit(limit)))


def count_failed(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.FAILED.value)) or 0


# --- outbox --------------------------------------------------------------------------------------------------


def outbox(session: Session, to: str | None = None, kind: str | None = None, limit: int = PAGE) -> list[Notification]:
    """Messages sent (through SMTP), kept (no SMTP, or no address) and queued, newest first."""
    query = select(Notification)
    if to:
        query = query.where(Notification.to == to)
    if kind:
        query = query.where(Notification.kind == kind)
    return list(session.scalars(query.order_by(Notification.id.desc()).limit(limit)))


def outbox_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Notification.state, func.count()).group_by(Notification.state))
    return {state: count for state, count in rows}


# --- accounts ------------------------------------------------------------------------------------------------


@dataclass
class Credential:
    kind: str  # token | key
    id: str  # the token's row id, or the access key id
    label: str  # what the operator recognises it by (a token's first characters; the key id)
    created_at: datetime
    revoked_at: datetime | None


@dataclass
class Account:
    handle: str
    name: str
    email: str | None
    facts: list[str]
    credentials: list[Credential] = field(default_factory=list)

    @property
    def active(self) -> int:
        return sum(1 for c in self.credentials if c.revoked_at is None)


def _credentials(session: Session, column: str, ids: list[int]) -> dict[int, list[Credential]]:
    found: dict[int, list[Credential]] = defaultdict(list)
    token_owner = getattr(ApiToken, column)
    for token in session.scalars(select(ApiToken).where(token_owner.in_(ids)).order_by(ApiToken.id)):
        found[getattr(token, column)].append(
            Credential("token", str(token.id), f"{token.hint}…", token.created_at, token.revoked_at)
        )
    key_owner = getattr(AccessKey, column)
    for key in session.scalars(select(AccessKey).where(key_owner.in_(ids)).order_by(AccessKey.created_at)):
        found[getattr(key, column)].append(
            Credential("key", key.access_key_id, key.access_key_id, key.created_at, key.revoked_at)
        )
    return found


def sellers(session: Session) -> list[Account]:
    rows = list(session.scalars(select(Seller).order_by(Seller.handle)))
    creds = _credentials(session, "seller_id", [s.id for s in rows])
    return [
        Account(
            s.handle,
            s.name,
            s.email,
            [
                f"tax form {s.tax_form}",
                "enrolled in data sharing" if s.data_sharing else "not enrolled in data sharing",
            ],
            creds.get(s.id, []),
        )
        for s in rows
    ]


def buyers(session: Session) -> list[Account]:
    rows = list(session.scalars(select(Buyer).order_by(Buyer.account)))
    creds = _credentials(session, "buyer_id", [b.id for b in rows])
    return [
        Account(b.account, b.account, b.email, ["enterprise" if b.enterprise else "individual"], creds.get(b.id, []))
        for b in rows
    ]


def shown(value: Any) -> str | None:
    """A recorded value as the operator reads it: text as it is, anything else as JSON; None stays None."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def as_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Each event with its before/after as (field, before, after) rows, for reading side by side."""
    out = []
    for e in events:
        before, after = e.before or {}, e.after or {}
        keys = list(dict.fromkeys([*before, *after]))
        out.append({"event": e, "changes": [(k, shown(before.get(k)), shown(after.get(k))) for k in keys]})
    return out


@dataclass
class Waiting:
    reviews: list[dict[str, Any]]
    change_requests: int
    model_requests: int
    failed_jobs: int
    refund_windows: int
    periods_to_close: list[Any]
    next_period: Any


def waiting(session: Session) -> Waiting:
    """What waits for the operator, each counted where its own page lists it."""
    from agora.billing import operations
    from agora.catalog import views as catalog_views

    queue = catalog_views.queue_out(session)
    periods = operations.periods(session)
    to_close = [p for p in periods if p.state != "closed" and p.ended]
    current = next((p for p in periods if not p.ended), None)
    return Waiting(
        reviews=queue["submitted"],
        change_requests=len(queue["change_requests"]),
        model_requests=len(catalog_views.model_requests_out(session)),
        failed_jobs=count_failed(session),
        refund_windows=len(operations.open_windows(session)),
        periods_to_close=to_close,
        next_period=current,
    )
