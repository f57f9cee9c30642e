"""Browser sessions, CSRF tokens and flash messages.

Sessions are server-side: the cookie holds 32 random bytes, the `web_sessions` table their SHA-256, so
signing out (or an operator deleting the row) ends a session at once. A session ends after `IDLE` without
a request and in any case `LONGEST` after sign-in.

CSRF: every browser gets an `agora_csrf` cookie of random bytes; a form's token is an HMAC of that cookie
under a key derived from AGORA_SECRET_KEY. A forged cross-site form cannot read the cookie, so it cannot
compute the token; signing in replaces the cookie, so a token planted before sign-in is worthless after.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.config import fernet_key
from agora.db import Database
from agora.models import Buyer, Operator, Role, Seller, WebSession

SESSION_COOKIE = "agora_session"
CSRF_COOKIE = "agora_csrf"
FLASH_COOKIE = "agora_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE = timedelta(minutes=60)
LONGEST = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session


@dataclass(frozen=True)
class Viewer:
    """Who is signed in to this browser: the principal the services take, and a name to greet them by."""

    principal: Principal
    name: str
    email: str

    @property
    def role(self) -> Role:
        return self.principal.role


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(purpose: str) -> bytes:
    return fernet_key(f"web-{purpose}")


def start(session: Session, principal: Principal) -> str:
    """A new session for `principal`; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    prune(session, now)
    session.add(
        WebSession(
            token_hash=_digest(token),
            role=principal.role.value,
            subject_id=principal.id,
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    return token


def prune(session: Session, now: datetime) -> int:
    """Forget the sessions that have expired (each sign-in sweeps; an expired row opens nothing anyway, this
    only keeps the table the size of the people signed in)."""
    expired = delete(WebSession).where(or_(WebSession.last_seen_at < now - IDLE, WebSession.created_at < now - LONGEST))
    return int(session.execute(expired).rowcount or 0)  # type: ignore[attr-defined]


def end(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def _viewer_of(session: Session, row: WebSession) -> Viewer | None:
    role = Role(row.role)
    if role is Role.OPERATOR:
        operator = session.get(Operator, row.subject_id)
        if operator is None:
            return None
        return Viewer(
            Principal(role, operator.id, operator.handle), operator.name or operator.handle, operator.email or ""
        )
    if role is Role.SELLER:
        seller = session.get(Seller, row.subject_id)
        if seller is None:
            return None
        return Viewer(Principal(role, seller.id, seller.handle), seller.name, seller.email or "")
    buyer = session.get(Buyer, row.subject_id)
    if buyer is None:
        return None
    return Viewer(Principal(role, buyer.id, buyer.account), buyer.email, buyer.email)


def lookup(db: Database, token: str | None) -> Viewer | None:
    """The viewer a session cookie stands for, or None when it is unknown or expired. Keeps it alive."""
    if not token:
        return None
    digest = _digest(token)
    now = clock.now()
    with db.reader() as session:
        row = session.get(WebSession, digest)
        if row is None:
            return None
        expired = now - row.last_seen_at > IDLE or now - row.created_at > LONGEST
        viewer = None if expired else _viewer_of(session, row)
        stale = now - row.last_seen_at > TOUCH_EVERY
    if viewer is None:
        with db.unit_of_work() as session:
            session.execute(delete(WebSession).where(WebSession.token_hash == digest))
        return None
    if stale:
        with db.unit_of_work() as session:
            row = session.get(WebSession, digest)
            if row is not None:
                row.last_seen_at = now
    return viewer


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(seed: str) -> str:
    return hmac.new(_key("csrf"), seed.encode(), hashlib.sha256).hexdigest()


def csrf_valid(seed: str | None, token: str | None) -> bool:
    if not seed or not token:
        return False
    return hmac.compare_digest(csrf_token(seed), token)


FLASH_KINDS = ("success", "info", "error")


def sign_flash(kind: str, message: str) -> str:
    """A flash message for the next page, signed so that nobody can make the site say what it did not."""
    payload = f"{kind}|{message}".encode().hex()
    mac = hmac.new(_key("flash"), payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{mac}"


def read_flash(value: str | None) -> tuple[str, str] | None:
    if not value or "." not in value:
        return None
    payload, mac = value.rsplit(".", 1)
    expected = hmac.new(_key("flash"), payload.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        kind, _, message = bytes.fromhex(payload).decode().partition("|")
    except ValueError:
        return None
    return (kind if kind in FLASH_KINDS else "info"), message
