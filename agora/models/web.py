"""Web sign-in: password hashes, browser sessions, and the failed-login counter that slows guessing down."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.models.base import Base


class Password(Base):
    """An account's web password, as an Argon2 hash. `subject_id` is the operator's, seller's or buyer's id
    (by `role`); a person may hold one of each under the same e-mail."""

    __tablename__ = "passwords"
    __table_args__ = (UniqueConstraint("role", "subject_id", name="uq_passwords_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column()
    hash: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column()


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a database
    read does not hand out live sessions."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()


class LoginThrottle(Base):
    """Consecutive failed sign-ins for one e-mail address (known or not, so the counter tells nothing about
    which addresses have accounts)."""

    __tablename__ = "login_throttles"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()


class PasswordReset(Base):
    """A password-reset link e-mailed to an address. The link holds a random token; only its SHA-256 is
    stored. It works once, for an hour, and sets the password of every account signing in with `email`."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
