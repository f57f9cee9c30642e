"""Operator decisions on a seller's request (listing change requests, pricing-model requests): one rule
for both — a request is decided once, and a rejection says why."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from agora import clock
from agora.auth import Principal
from agora.errors import Invalid, InvalidTransition


class Decidable(Protocol):
    id: int
    state: str
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None


def decide(request: Decidable, principal: Principal, *, approve: bool, reason: str | None, what: str) -> None:
    if request.state != "pending":
        raise InvalidTransition(f"{what} {request.id} is already {request.state}")
    if not approve and not (reason or "").strip():
        raise Invalid.at("reason", "a rejection must say what to change and why", "required")
    request.state = "approved" if approve else "rejected"
    request.reason = reason
    request.decided_by = principal.actor
    request.decided_at = clock.now()
