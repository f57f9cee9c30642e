from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.models.base import Base, Timestamped


class Contract(Timestamped, Base):
    """PRC-10/SUB-07: quantities bought upfront for 1, 12, 24 or 36 months. `amount_cents` is what the
    purchase (and each upgrade) costs; billing invoices it upfront (BIL-02)."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    duration_months: Mapped[int] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    license_key: Mapped[str] = mapped_column(String(200), unique=True)


class ContractCharge(Timestamped, Base):
    """One upfront charge of a contract: the purchase, then each upgrade (prorated to the remaining term)."""

    __tablename__ = "contract_charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # purchase | upgrade
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column()


class Entitlement(Timestamped, Base):
    """What the buyer may use: a quantity of one dimension until `expires_at` (SUB-07)."""

    __tablename__ = "entitlements"
    __table_args__ = (UniqueConstraint("contract_id", "dimension", name="uq_entitlements_dimension"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    dimension: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column()


class AnnualPurchase(Timestamped, Base):
    """SUB-03: `quantity` instances of one type for 12 months, invoiced in full at purchase; it keeps the
    unit price it was bought at (CHG-03). A renewal is a new purchase pointing at the one it renews."""

    __tablename__ = "annual_purchases"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    instance_type: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column()
    unit_price: Mapped[Decimal] = mapped_column(Numeric(20, 8))  # any price (pricing.schema: 12 digits, 8 places)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    auto_renew: Mapped[bool] = mapped_column(default=False)
    renews_id: Mapped[int | None] = mapped_column(ForeignKey("annual_purchases.id"))
