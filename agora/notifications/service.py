"""The notifications outbox: a message is a row plus a `notifications.send` job, in the caller's
transaction. Delivery goes through SMTP when `AGORA_SMTP_URL` is set; without it messages stay readable
in the outbox (and in `simulate` output) and are marked delivered to the log."""

from __future__ import annotations

from sqlalchemy.orm import Session

from agora import jobs
from agora.models import Notification


def notify(session: Session, *, to: str, kind: str, subject: str, body: str) -> Notification:
    message = Notification(to=to, kind=kind, subject=subject, body=body, state="queued")
    session.add(message)
    session.flush()
    jobs.enqueue(session, "notifications.send", {"notification_id": message.id}, dedupe_key=f"notify:{message.id}")
    return message
