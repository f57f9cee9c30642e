"""Who is calling: bearer tokens for /api/v1, and the key material for SDK signatures.

Tokens are stored as SHA-256 digests (they are high-entropy secrets, so a fast hash is the right tool and
allows an indexed lookup). Access-key secrets must be recoverable to verify HMAC signatures, so they are
Fernet-encrypted with a key derived from `AGORA_SECRET_KEY`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.cache import TtlCache
from agora.config import fernet_key
from agora.db import Database
from agora.errors import Forbidden, Unauthorized
from agora.models import AccessKey, ApiToken, Buyer, Operator, Role, Seller


@dataclass(frozen=True)
class Principal:
    role: Role
    id: int
    handle: str  # operator/seller handle, buyer account

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.handle}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role) -> str:
    return f"agora_{role.value[:2]}_{secrets.token_urlsafe(32)}"


def new_access_key() -> tuple[str, str]:
    key_id = "AKIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    return key_id, secrets.token_urlsafe(30)


@lru_cache(maxsize=4)
def _fernet(material: bytes) -> Fernet:
    return Fernet(material)


def encrypt_secret(secret: str) -> str:
    return _fernet(fernet_key("access-keys")).encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet(fernet_key("access-keys")).decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError(
            "an access-key secret cannot be decrypted: AGORA_SECRET_KEY (or ./var/secret.key) is not the key"
            " the secrets were stored with"
        ) from None


def subject_columns(role: Role, subject_id: int) -> dict[str, int]:
    return {f"{role.value}_id": subject_id}


def _principal_for(session: Session, cred: ApiToken | AccessKey) -> Principal:
    role = Role(cred.role)
    if cred.operator_id is not None:
        operator = session.get_one(Operator, cred.operator_id)
        return Principal(role, operator.id, operator.handle)
    if cred.seller_id is not None:
        seller = session.get_one(Seller, cred.seller_id)
        return Principal(role, seller.id, seller.handle)
    assert cred.buyer_id is not None
    buyer = session.get_one(Buyer, cred.buyer_id)
    return Principal(role, buyer.id, buyer.account)


def principal_from_token(session: Session, token: str) -> Principal | None:
    cred = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
    return _principal_for(session, cred) if cred else None


def access_key_secret(session: Session, access_key_id: str) -> tuple[Principal, str] | None:
    """The principal and clear secret of an active access key (for signature verification).

    Every SDK request asks this, so it is one indexed read, and each stored secret is decrypted once per
    process (the ciphertext is the cache key, so a rotated or revoked key is never served from cache)."""
    found = session.execute(
        select(
            AccessKey.role,
            AccessKey.revoked_at,
            AccessKey.secret_encrypted,
            Operator.id,
            Operator.handle,
            Seller.id,
            Seller.handle,
            Buyer.id,
            Buyer.account,
        )
        .outerjoin(Operator, Operator.id == AccessKey.operator_id)
        .outerjoin(Seller, Seller.id == AccessKey.seller_id)
        .outerjoin(Buyer, Buyer.id == AccessKey.buyer_id)
        .where(AccessKey.access_key_id == access_key_id)
    ).first()
    if found is None or found.revoked_at is not None:
        return None
    role = Role(found.role)
    subject = {
        Role.OPERATOR: (found[3], found[4]),
        Role.SELLER: (found[5], found[6]),
        Role.BUYER: (found[7], found[8]),
    }[role]
    return Principal(role, subject[0], subject[1]), _decrypt_cached(fernet_key("access-keys"), found.secret_encrypted)


ACCESS_KEY_TTL = 2.0  # seconds: how long after revocation a process may still accept a key's signatures
_access_keys: TtlCache[str, tuple[Principal, str] | None] = TtlCache(ACCESS_KEY_TTL)


def access_key_secret_cached(db: Database, access_key_id: str) -> tuple[Principal, str] | None:
    """`access_key_secret`, remembered for `ACCESS_KEY_TTL` seconds per process: SDK clients sign every
    request with the same key, and this lookup would otherwise be a third of a metering request's cost.
    A read transaction is opened only when the key is not cached."""

    def load() -> tuple[Principal, str] | None:
        with db.reader() as session:
            return access_key_secret(session, access_key_id)

    return _access_keys.get(access_key_id, load)


def forget_access_keys() -> None:
    """Drop the per-process access-key cache (after a revocation in this process, and in tests)."""
    _access_keys.clear()


@lru_cache(maxsize=4096)
def _decrypt_cached(material: bytes, token: str) -> str:
    return decrypt_secret(token)


# --- FastAPI dependencies -------------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API token as 'Authorization: Bearer <token>'")
    return token.strip()


def _token_principal(request: Request, token: str) -> Principal | None:
    """Who a bearer token stands for, read outside the request's unit of work, so a request takes no write
    lock until it writes."""
    db: Database = request.app.state.db
    with db.reader() as session:
        return principal_from_token(session, token)


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency that admits only the given roles: 401 without a valid token, 403 for another role."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Principal:
        principal = _token_principal(request, _bearer(request))
        if principal is None:
            raise Unauthorized("the API token is unknown or revoked")
        if principal.role not in allowed:
            names = " or ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"this action is for {names} accounts, not {principal.role.value}")
        request.state.principal = principal
        return principal

    dependency.agora_roles = allowed  # type: ignore[attr-defined]
    return dependency


def viewer(request: Request) -> Principal | None:
    """For public routes that show more to some callers: the caller if a token is sent, else None.
    A token that is sent but invalid is still 401 — a typo should not silently look anonymous."""
    if not request.headers.get("authorization"):
        return None
    principal = _token_principal(request, _bearer(request))
    if principal is None:
        raise Unauthorized("the API token is unknown or revoked")
    request.state.principal = principal
    return principal


viewer.agora_roles = frozenset()  # type: ignore[attr-defined]


def route_roles(dependency: Any) -> frozenset[Role] | None:
    roles = getattr(dependency, "agora_roles", None)
    return roles if isinstance(roles, frozenset) else None


ANY_ROLE = (Role.OPERATOR, Role.SELLER, Role.BUYER)
