from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.config import get_settings
from agora.models import Notification

log = logging.getLogger("agora.notifications")
SENDER = "marketplace@agora.invalid"


def _send_smtp(url: str, message: Notification) -> None:
    parts = urlsplit(url)
    email = EmailMessage()
    email["From"] = unquote(parts.path.lstrip("/")) or SENDER
    email["To"] = message.to
    email["Subject"] = message.subject
    email.set_content(message.body)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(parts.hostname or "localhost", parts.port or (465 if parts.scheme == "smtps" else 25)) as smtp:
        if parts.scheme == "smtp+starttls":
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(email)


@jobs.handler("notifications.send")
def send(session: Session, payload: dict[str, Any]) -> None:
    message = session.get(Notification, payload["notification_id"])
    if message is None or message.state != "queued":
        return
    url = get_settings().smtp_url
    if url and "@" in message.to:
        _send_smtp(url, message)
        message.state = "sent"
    else:
        # No SMTP server configured, or an account without an e-mail address: the outbox is the record.
        log.info("notification to %s: %s (kept in the outbox)", message.to, message.subject)
        message.state = "kept"
    message.sent_at = clock.now()
