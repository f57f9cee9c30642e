"""Password resets by e-mail (DESIGN.md, "Signing in": a reset link can be e-mailed through the outbox).

Asking for a link answers the same whether or not the address has an account, and sends at most one link
per address every `RESEND_AFTER`. A link holds a random token (only its SHA-256 is stored), works once,
for `LIFETIME`, and sets the password of every account signing in with the address — as `agora users
set-password` does. Using it signs those accounts out everywhere and clears the address's failed sign-ins.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.identities import passwords
from agora.identities.passwords import Account
from agora.models import LoginThrottle, PasswordReset, WebSession
from agora.notifications.service import notify

LIFETIME = timedelta(hours=1)
RESEND_AFTER = timedelta(minutes=2)
MAX_EMAIL = 320


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def request_link(session: Session, email: str, link_base: str) -> bool:
    """E-mail a reset link to `email` if an account signs in with it; True when one was sent (the caller
    must not tell the visitor)."""
    address = email.strip().lower()[:MAX_EMAIL]
    accounts = passwords.accounts_with_email(session, address) if address else []
    if not accounts:
        return False
    now = clock.now()
    recent = session.scalar(
        select(PasswordReset.id).where(PasswordReset.email == address, PasswordReset.created_at > now - RESEND_AFTER)
    )
    if recent is not None:
        return False
    token = secrets.token_urlsafe(32)
    session.add(PasswordReset(email=address, token_hash=_digest(token), created_at=now, expires_at=now + LIFETIME))
    link = f"{link_base.rstrip('/')}/password-reset/{token}"
    minutes = int(LIFETIME.total_seconds() // 60)
    notify(
        session,
        to=accounts[0].email,
        kind="password_reset",
        subject="Reset your Agora password",
        body=(
            "Someone (we hope you) asked to reset the password of the Agora account that signs in with this "
            f"address.\n\nSet a new password here within {minutes} minutes:\n{link}\n\n"
            "The link works once. If you did not ask for it, ignore this message: your password is unchanged."
        ),
    )
    audit.record(session, actor="web", action="password.reset_requested", target_type="email", target_id=address)
    session.flush()
    return True


def valid(session: Session, token: str, *, lock: bool = False) -> PasswordReset | None:
    """The unused, unexpired reset this token opens, or None."""
    if not token or len(token) > 128:
        return None
    query = select(PasswordReset).where(PasswordReset.token_hash == _digest(token))
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None or found.used_at is not None or found.expires_at <= clock.now():
        return None
    return found


def complete(session: Session, token: str, password: str) -> list[Account] | None:
    """Set `password` through the link; None when the link is unknown, used or expired. The password's
    strength is checked first (`Invalid` naming `password`), so a refused password leaves the link usable."""
    reset = valid(session, token, lock=True)
    if reset is None:
        return None
    passwords.check_strength(password)
    now = clock.now()
    accounts = passwords.accounts_with_email(session, reset.email)
    for account in accounts:
        passwords.set_password(session, account.role, account.id, password, actor="web:password-reset")
        session.execute(
            delete(WebSession).where(WebSession.role == account.role.value, WebSession.subject_id == account.id)
        )
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.email == reset.email, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    session.execute(delete(LoginThrottle).where(LoginThrottle.email == reset.email))
    audit.record(session, actor="web", action="password.reset", target_type="email", target_id=reset.email)
    session.flush()
    return accounts


SECRET_LINK = re.compile(r"(/password-reset/)[A-Za-z0-9_-]+")


def redact(body: str) -> str:
    """A message as operators may read it in the outbox (API and console): a reset link signs in as its
    recipient, so its token is hidden. `agora mail list`, run on the server, shows messages whole."""
    return SECRET_LINK.sub(r"\1[hidden: only the recipient may use this link]", body)
