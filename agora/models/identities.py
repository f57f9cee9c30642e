"""Who can act: operators, sellers, buyers, and the credentials they act with."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from agora.models.base import Base, Timestamped


class Role(StrEnum):
    OPERATOR = "operator"
    SELLER = "seller"
    BUYER = "buyer"


class TaxForm(StrEnum):
    W9 = "W-9"
    W8 = "W-8"
    NONE = "none"


class Operator(Timestamped, Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))


class Seller(Timestamped, Base):
    __tablename__ = "sellers"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    tax_form: Mapped[str] = mapped_column(String(8), default=TaxForm.NONE.value)
    data_sharing: Mapped[bool] = mapped_column(default=False)
    # The Standard Webhooks signing secret, Fernet-encrypted like access-key secrets.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(String(512))


class Buyer(Timestamped, Base):
    __tablename__ = "buyers"
    __table_args__ = (CheckConstraint("length(account) = 12", name="account_12_digits"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(12), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    enterprise: Mapped[bool] = mapped_column(default=False)


_ONE_SUBJECT = (
    "(CASE WHEN operator_id IS NULL THEN 0 ELSE 1 END + CASE WHEN seller_id IS NULL THEN 0 ELSE 1 END"
    " + CASE WHEN buyer_id IS NULL THEN 0 ELSE 1 END) = 1"
)


class _Credential(Timestamped):
    role: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    seller_id: Mapped[int | None] = mapped_column(ForeignKey("sellers.id", ondelete="CASCADE"), index=True)
    buyer_id: Mapped[int | None] = mapped_column(ForeignKey("buyers.id", ondelete="CASCADE"), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column()


class ApiToken(_Credential, Base):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_ONE_SUBJECT, name="one_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))


class AccessKey(_Credential, Base):
    """An SDK key pair. The secret is Fernet-encrypted: HMAC verification needs it back in clear."""

    __tablename__ = "access_keys"
    __table_args__ = (CheckConstraint(_ONE_SUBJECT, name="one_subject"),)

    access_key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(String(512))
