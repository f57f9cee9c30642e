"""Invoices: append-only records of what a buyer owes (BIL-01…04).

An invoice is created once per source — a buyer's month, or one upfront purchase or instalment — and the
unique `source` is what makes billing runs idempotent (BIL-03). Lines keep their quantity and unit price
as exact decimal text and their amount in integer cents, rounded once (BIL-04).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agora.models.base import Base, Timestamped


class Invoice(Timestamped, Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(96), unique=True)  # monthly:<buyer id>:<YYYY-MM> | upfront:…
    buyer_id: Mapped[int] = mapped_column(ForeignKey("buyers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # monthly | upfront | credit_note
    period: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM the invoice belongs to
    state: Mapped[str] = mapped_column(String(16))  # draft | finalized | paid | void
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    total_cents: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column()
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))  # a credit note's invoice


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    category: Mapped[str] = mapped_column(String(16), default="software")  # software | infrastructure (LST-10)
    charge: Mapped[str] = mapped_column(String(24))
    instance_type: Mapped[str | None] = mapped_column(String(64))
    dimension: Mapped[str | None] = mapped_column(String(160))
    quantity: Mapped[str] = mapped_column(String(40))
    unit_price: Mapped[str] = mapped_column(String(40))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    explain: Mapped[str] = mapped_column(Text)


class UsageRollup(Base):
    """A closed month's usage, summed in one pass over `usage_records` (BIL-03) at the grain each
    subscription's rating needs (`rating.grain`): per clock hour, per day, or the whole month, and per
    resource only for instance-hours. `hour` and `last_hour` are the first and last record start summed
    into the row, `records` how many records it sums (with `tier`, how many tier periods). `late` rows
    are records of an earlier, already closed period carried into this one. Per-buyer invoice jobs read
    their rows through the (period, buyer) index, so the month is scanned once, not once per buyer."""

    __tablename__ = "usage_rollups"
    __table_args__ = (Index("ix_usage_rollups_period_buyer", "period", "buyer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    buyer_id: Mapped[int] = mapped_column()
    subscription_id: Mapped[int] = mapped_column()
    hour: Mapped[int] = mapped_column(BigInteger)  # epoch seconds
    last_hour: Mapped[int] = mapped_column(BigInteger)  # epoch seconds
    dimension: Mapped[str] = mapped_column(String(160))
    resource: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    late: Mapped[bool] = mapped_column(default=False)
    tier: Mapped[int | None] = mapped_column()  # set: `quantity` is this tier's units (`rating.summed_tiers`)


class UsageDay(Base):
    """One ended day of usage, summed as `usage_rollups` sums a month (`billing.sum_day`), so that closing
    the month adds up these rows instead of reading its records again. Each row holds the grain and tier
    bounds its subscription's terms gave when it was summed (`terms`); the close uses a row only while its
    subscription's terms still give the same, and only for a day still `UsageDaySum.dirty` false. `bucket`
    is what rows of different days merge on: 0 for a month-grain or tier row, else its own first hour."""

    __tablename__ = "usage_days"
    __table_args__ = (Index("ix_usage_days_day", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[int] = mapped_column(BigInteger)  # epoch seconds of the day's UTC midnight
    subscription_id: Mapped[int] = mapped_column()
    terms: Mapped[str] = mapped_column(Text)
    bucket: Mapped[int] = mapped_column(BigInteger)
    hour: Mapped[int] = mapped_column(BigInteger)
    last_hour: Mapped[int] = mapped_column(BigInteger)
    dimension: Mapped[str] = mapped_column(String(160))
    resource: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    tier: Mapped[int | None] = mapped_column()


class UsageDaySum(Base):
    """That a day has been summed into `usage_days`, and whether it still may be used: `dirty` once a
    record of the day is stored, voided or carried after the day could have been summed (outside the
    metering window, MTR-04), which the close then sums again from the records."""

    __tablename__ = "usage_day_sums"

    day: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    dirty: Mapped[bool] = mapped_column(default=False)


class BillingPeriod(Base):
    """A closed month (BIL-03). Usage stored for a closed month afterwards is billed in the next open one
    (`usage_records.billed_in`)."""

    __tablename__ = "billing_periods"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column()


class Disbursement(Timestamped, Base):
    """What a seller is paid for a month (BIL-05): its software charges on that month's invoices, less the
    listing fee. One per seller and period: the unique constraint makes the payout run idempotent."""

    __tablename__ = "disbursements"
    __table_args__ = (UniqueConstraint("seller_id", "period", name="uq_disbursements_seller_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    gross_cents: Mapped[int] = mapped_column(BigInteger)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    net_cents: Mapped[int] = mapped_column(BigInteger)


class DisbursementLine(Base):
    """One invoice line a disbursement pays for; a line is paid out once, ever."""

    __tablename__ = "disbursement_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    disbursement_id: Mapped[int] = mapped_column(ForeignKey("disbursements.id", ondelete="CASCADE"), index=True)
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_lines.id"), unique=True)
    fee_percent: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)  # why a line is paid less than it billed (BIL-05 preview)


class Refund(Timestamped, Base):
    """Money given back on one invoice line, issued on a credit note (RFD-01…05). The sum of a line's
    refunds never exceeds the line (RFD-05); `kind` says which rule allowed it."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_lines.id"), index=True)
    credit_note_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # seller | annual_full | annual_prorata | annual_renewal | void | preview | trial_conversion | metering_error
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text)
