"""Operators, sellers, buyers and their credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import (
    Principal,
    decrypt_secret,
    encrypt_secret,
    forget_access_keys,
    hash_token,
    new_access_key,
    new_token,
    subject_columns,
)
from agora.errors import Conflict, Forbidden, Invalid, NotFound
from agora.models import AccessKey, ApiToken, Buyer, Operator, Role, Seller

ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
ACCESS_KEY_RE = re.compile(r"^[A-Za-z0-9_+/=.-]{8,128}$")


@dataclass(frozen=True)
class NewCredentials:
    """Shown once: the clear token and secret are not stored anywhere."""

    token: str
    access_key_id: str
    secret: str


def find_subject(session: Session, role: Role, handle: str) -> Operator | Seller | Buyer:
    subject: Operator | Seller | Buyer | None
    if role is Role.OPERATOR:
        subject = session.scalar(select(Operator).where(Operator.handle == handle))
    elif role is Role.SELLER:
        subject = session.scalar(select(Seller).where(Seller.handle == handle))
    else:
        subject = session.scalar(select(Buyer).where(Buyer.account == handle))
    if subject is None:
        raise NotFound(f"no {role.value} {handle!r}")
    return subject


def add_token(session: Session, role: Role, subject_id: int, token: str) -> tuple[ApiToken, bool]:
    """Attach a token the caller chose (manifests name theirs). Returns (token, created)."""
    digest = hash_token(token)
    existing = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if existing is not None:
        if (Role(existing.role), _subject_id(existing)) != (role, subject_id):
            raise Conflict("that API token already belongs to another account")
        return existing, False
    cred = ApiToken(role=role.value, token_hash=digest, hint=token[:6], **subject_columns(role, subject_id))
    session.add(cred)
    session.flush()
    return cred, True


def add_access_key(
    session: Session, role: Role, subject_id: int, access_key_id: str, secret: str
) -> tuple[AccessKey, str]:
    """Attach a key pair. Returns (key, outcome): "created", "updated" (new secret) or "unchanged"."""
    if not ACCESS_KEY_RE.match(access_key_id):
        raise Invalid("access key ids are 8–128 characters of letters, digits and _+/=.-")
    existing = session.get(AccessKey, access_key_id)
    if existing is not None:
        if (Role(existing.role), _subject_id(existing)) != (role, subject_id):
            raise Conflict(f"access key {access_key_id} already belongs to another account")
        if decrypt_secret(existing.secret_encrypted) == secret and existing.revoked_at is None:
            return existing, "unchanged"
        existing.secret_encrypted = encrypt_secret(secret)
        existing.revoked_at = None
        return existing, "updated"
    key = AccessKey(
        access_key_id=access_key_id,
        role=role.value,
        secret_encrypted=encrypt_secret(secret),
        **subject_columns(role, subject_id),
    )
    session.add(key)
    session.flush()
    return key, "created"


def _subject_id(cred: ApiToken | AccessKey) -> int | None:
    return cred.operator_id or cred.seller_id or cred.buyer_id


def create_credentials(session: Session, role: Role, subject_id: int, *, actor: str) -> NewCredentials:
    token = new_token(role)
    key_id, secret = new_access_key()
    add_token(session, role, subject_id, token)
    add_access_key(session, role, subject_id, key_id, secret)
    audit.record(
        session,
        actor=actor,
        action="credentials.create",
        target_type=role.value,
        target_id=subject_id,
        after={"access_key_id": key_id, "token_hint": token[:6]},
    )
    return NewCredentials(token, key_id, secret)


def list_access_keys(session: Session, principal: Principal) -> list[AccessKey]:
    column = getattr(AccessKey, f"{principal.role.value}_id")
    return list(session.scalars(select(AccessKey).where(column == principal.id).order_by(AccessKey.created_at)))


def revoke_access_key(session: Session, principal: Principal, access_key_id: str) -> AccessKey:
    key = session.get(AccessKey, access_key_id)
    # Another account's key is reported as missing: its existence is not the caller's business.
    if key is None or (Role(key.role), _subject_id(key)) != (principal.role, principal.id):
        raise NotFound(f"no access key {access_key_id}")
    if key.revoked_at is not None:
        raise Conflict(f"access key {access_key_id} is already revoked")
    key.revoked_at = clock.now()
    forget_access_keys()  # other processes stop accepting it within ACCESS_KEY_TTL
    audit.record(
        session,
        actor=principal.actor,
        action="access_key.revoke",
        target_type="access_key",
        target_id=access_key_id,
        before={"revoked_at": None},
        after={"revoked_at": key.revoked_at.isoformat()},
    )
    return key


def revoke_for_account(session: Session, principal: Principal, kind: str, credential_id: str) -> ApiToken | AccessKey:
    """The operator revokes a seller's or buyer's API token (`kind` "token", by its row id) or SDK access key
    (`kind` "key"), for example one that leaked. Audited like a holder's own revocation."""
    if principal.role is not Role.OPERATOR:
        raise Forbidden("only the marketplace operator revokes another account's credentials")
    found: ApiToken | AccessKey | None
    if kind == "token":
        found = session.get(ApiToken, int(credential_id)) if credential_id.isdigit() else None
        target_type = "api_token"
    elif kind == "key":
        found = session.get(AccessKey, credential_id)
        target_type = "access_key"
    else:
        raise Invalid.at("kind", "is token or key")
    if found is None:
        raise NotFound(f"no {target_type.replace('_', ' ')} {credential_id}")
    if found.revoked_at is not None:
        raise Conflict(f"{target_type.replace('_', ' ')} {credential_id} is already revoked")
    found.revoked_at = clock.now()
    forget_access_keys()
    audit.record(
        session,
        actor=principal.actor,
        action=f"{target_type}.revoke",
        target_type=target_type,
        target_id=credential_id,
        before={"revoked_at": None, "owner": f"{found.role}:{_subject_id(found)}"},
        after={"revoked_at": found.revoked_at.isoformat()},
    )
    return found


def get_seller(session: Session, principal: Principal, handle: str) -> Seller:
    seller = session.scalar(select(Seller).where(Seller.handle == handle))
    if seller is None or (principal.role is Role.SELLER and seller.id != principal.id):
        raise NotFound(f"no seller {handle!r}")
    return seller


def get_buyer(session: Session, principal: Principal, account: str) -> Buyer:
    buyer = session.scalar(select(Buyer).where(Buyer.account == account))
    if buyer is None or (principal.role is Role.BUYER and buyer.id != principal.id):
        raise NotFound(f"no buyer account {account}")
    return buyer
