from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from agora.db import JSONType
from agora.models.base import Base, Timestamped


class Subscription(Timestamped, Base):
    """A buyer's agreement to a product. `ended_at` is the cancellation instant (proration and refunds use
    it); the trial window, when there is one, is [started_at, trial_ends_at)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("product_id", "customer_identifier", name="uq_subscriptions_customer"),
        # One active subscription per buyer and product, even when two requests race.
        Index(
            "uq_subscriptions_active",
            "buyer_id",
            "product_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    customer_identifier: Mapped[str] = mapped_column(String(128))
    agreement_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the Agreement API's `agmt-…`
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    eula: Mapped[str | None] = mapped_column(String(160))
    eula_accepted_at: Mapped[datetime | None] = mapped_column()
    license_reference: Mapped[str | None] = mapped_column(String(200))
    trial_ends_at: Mapped[datetime | None] = mapped_column()
    # A subscription created by accepting a private offer follows the offer's prices and term.
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    # Purchases made with the subscription (contract, annual) as the manifest gave them; the annual and
    # contract purchase records of the buying issue replace this.
    purchases: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class TrialUse(Timestamped, Base):
    """One free trial per buyer per product: the unique constraint is the rule."""

    __tablename__ = "trial_uses"
    __table_args__ = (UniqueConstraint("buyer_id", "product_id", name="uq_trial_uses_buyer_product"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))


class RegistrationTokenUse(Timestamped, Base):
    """A SaaS registration token the seller resolved (SUB-06). A token resolves once: the unique digest is the
    rule, so a second resolution, even a concurrent one, is refused as expired (api-surface §1.5.10).
    `created_at` is when it was resolved."""

    __tablename__ = "registration_token_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the token's decoded bytes
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)


class LicenseActivation(Timestamped, Base):
    """A license confirmed from inside the software (Alibaba's ActivateLicense): a contract's license key
    (SUB-07) or the license a BYOL buyer brought (PRC-11). A license activates once: the unique code is the rule;
    `identification` is the user the software named, if any."""

    __tablename__ = "license_activations"

    id: Mapped[int] = mapped_column(primary_key=True)
    license_code: Mapped[str] = mapped_column(String(200), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    identification: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime] = mapped_column()
