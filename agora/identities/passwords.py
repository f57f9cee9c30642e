"""Web passwords: Argon2 hashes (argon2-cffi's defaults, RFC 9106's low-memory profile), sign-in by e-mail,
and the throttle that slows guessing down. A password is never printed, logged or returned; only its hash
is stored.

Throttling is per e-mail address, known or not: after `FREE_FAILURES` consecutive failures every further
attempt must wait, 30 s doubling up to 15 min, and is refused without looking at the password until then. A
wrong e-mail and a wrong password fail alike, and an unknown e-mail still pays for one hash verification, so
neither the message nor the time taken tells which addresses have accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import Principal
from agora.errors import AgoraError, Invalid, NotFound
from agora.models import Buyer, LoginThrottle, Operator, Password, Role, Seller

FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=30)
LONGEST_DELAY = timedelta(minutes=15)
MIN_LENGTH = 8
MAX_LENGTH = 1024  # Argon2 takes any length; a cap keeps a megabyte "password" from costing a request


class SignInThrottled(AgoraError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts: try again in {retry_after} s")
        self.retry_after = retry_after


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("agora: no account has this password")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid.at("password", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid.at("password", f"must be at most {MAX_LENGTH} characters")


def verify(hashed: str, password: str) -> bool:
    try:
        return _hasher().verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(session: Session, role: Role, subject_id: int, password: str, *, actor: str) -> bool:
    """Store `password` for the account; returns False when it is already the account's password (a
    manifest loaded twice changes nothing)."""
    row = session.scalar(select(Password).where(Password.role == role.value, Password.subject_id == subject_id))
    if row is not None and verify(row.hash, password):
        return False
    hashed = hash_password(password)
    if row is None:
        session.add(Password(role=role.value, subject_id=subject_id, hash=hashed, updated_at=clock.now()))
    else:
        row.hash, row.updated_at = hashed, clock.now()
    audit.record(session, actor=actor, action="password.set", target_type=role.value, target_id=subject_id)
    session.flush()
    return True


@dataclass(frozen=True)
class Account:
    role: Role
    id: int
    handle: str
    email: str


def accounts_with_email(session: Session, email: str) -> list[Account]:
    """Every operator, seller and buyer signing in with `email` (compared without regard to case)."""
    wanted = email.strip().lower()
    found: list[Account] = []
    for operator in session.scalars(select(Operator).where(func.lower(Operator.email) == wanted)):
        found.append(Account(Role.OPERATOR, operator.id, operator.handle, operator.email or ""))
    for seller in session.scalars(select(Seller).where(func.lower(Seller.email) == wanted)):
        found.append(Account(Role.SELLER, seller.id, seller.handle, seller.email or ""))
    for buyer in session.scalars(select(Buyer).where(func.lower(Buyer.email) == wanted)):
        found.append(Account(Role.BUYER, buyer.id, buyer.account, buyer.email))
    return found


def set_password_for_email(session: Session, email: str, password: str, *, actor: str) -> list[Account]:
    """`agora users set-password`: the password of every account signing in with `email`."""
    accounts = accounts_with_email(session, email)
    if not accounts:
        raise NotFound(f"no operator, seller or buyer has the e-mail address {email!r}")
    check_strength(password)
    for account in accounts:
        set_password(session, account.role, account.id, password, actor=actor)
    return accounts


def _throttle(session: Session, email: str) -> LoginThrottle | None:
    return session.get(LoginThrottle, email, with_for_update=True)


def _retry_after(locked_until: datetime | None, now: datetime) -> int:
    if locked_until is None or locked_until <= now:
        return 0
    return max(1, int((locked_until - now).total_seconds() + 0.999))


def authenticate(session: Session, email: str, password: str) -> Principal | None:
    """The account `email` and `password` sign in to; None (with the failure counted, so the caller must
    commit) when they match none; `SignInThrottled` while the address must wait."""
    key = email.strip().lower()[:320]
    now = clock.now()
    throttle = _throttle(session, key)
    wait = _retry_after(throttle.locked_until if throttle else None, now)
    if wait:
        raise SignInThrottled(wait)
    principal = None
    candidates = accounts_with_email(session, key) if key and len(password) <= MAX_LENGTH else []
    hashes = {
        (row.role, row.subject_id): row.hash
        for row in session.scalars(select(Password).where(Password.subject_id.in_([a.id for a in candidates])))
    }
    checked = False
    for account in candidates:
        hashed = hashes.get((account.role.value, account.id))
        if hashed is None:
            continue
        checked = True
        if verify(hashed, password):
            principal = Principal(account.role, account.id, account.handle)
            break
    if not checked:
        verify(_dummy_hash(), password)  # the same work as for a real account
    if principal is not None:
        if throttle is not None:
            session.delete(throttle)
        session.flush()
        return principal
    if throttle is None:
        throttle = LoginThrottle(email=key, failures=0)
        session.add(throttle)
    throttle.failures += 1
    if throttle.failures >= FREE_FAILURES:
        delay = min(FIRST_DELAY * 2 ** (throttle.failures - FREE_FAILURES), LONGEST_DELAY)
        throttle.locked_until = now + delay
    session.flush()
    return None
