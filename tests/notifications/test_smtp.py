"""The outbox delivers through a real SMTP server when AGORA_SMTP_URL is set, and retries when it is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from agora import config, jobs, tasks
from agora.db import Database
from agora.models import Job, Notification
from agora.notifications.service import notify


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("AGORA_SMTP_URL", f"smtp://127.0.0.1:{controller.port}/marketplace@agora.example")
    config.reset_settings()
    yield inbox
    controller.stop()
    config.reset_settings()


def _send(db: Database, to: str = "ops@buyer.example") -> int:
    with db.unit_of_work() as session:
        message = notify(session, to=to, kind="trial_welcome", subject="Your trial started", body="It ends soon.")
        return message.id


def test_a_notification_is_delivered_by_smtp_and_read_back(db: Database, smtp: Inbox) -> None:
    message_id = _send(db)
    tasks.register_all()
    jobs.Worker(db).run_until_idle()
    (received,) = smtp.messages
    assert received["To"] == "ops@buyer.example"
    assert received["From"] == "marketplace@agora.example"
    assert received["Subject"] == "Your trial started"
    assert received.get_payload().strip() == "It ends soon."
    with db.reader() as session:
        stored = session.get_one(Notification, message_id)
        assert (stored.state, stored.sent_at is not None) == ("sent", True)


def test_an_account_without_an_email_address_is_kept_in_the_outbox(db: Database, smtp: Inbox) -> None:
    message_id = _send(db, to="seller:acme")
    tasks.register_all()
    jobs.Worker(db).run_until_idle()
    assert smtp.messages == []
    with db.reader() as session:
        assert session.get_one(Notification, message_id).state == "kept"


def test_when_the_smtp_server_is_down_the_message_waits_and_is_retried(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_SMTP_URL", f"smtp://127.0.0.1:{_free_port()}")
    config.reset_settings()
    message_id = _send(db)
    tasks.register_all()
    jobs.Worker(db).run_until_idle()
    with db.reader() as session:
        assert session.get_one(Notification, message_id).state == "queued"
        job = session.scalars(select(Job).where(Job.name == "notifications.send")).one()
        assert job.state == "queued" and job.attempts == 1 and "Connection refused" in (job.last_error or "")
    config.reset_settings()
