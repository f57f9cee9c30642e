"""What billing's routes answer, for the OpenAPI document (issue 15, item 12). The dicts are built in
`agora.billing.service`, `payouts` and `metering_errors`; these models describe them (amounts are decimal
strings with two places; quantities and unit prices are decimal strings as rated)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InvoiceLineOut(BaseModel):
    product: str
    charge: str = Field(description="hourly, monthly, annual, usage, contract, training, … or refund")
    category: str = Field(description="software or infrastructure (LST-10)")
    instance_type: str | None
    dimension: str | None
    quantity: str
    unit_price: str
    amount: str
    explain: str


class InvoiceOut(BaseModel):
    id: int
    buyer: str = Field(description="the buyer's account id")
    period: str = Field(description="YYYY-MM")
    kind: str = Field(description="monthly, upfront or credit_note")
    state: str
    issued_at: str
    currency: str
    total: str
    subtotals: dict[str, str] = Field(description="software and infrastructure, each summed apart (LST-10)")
    corrects: int | None = Field(description="a credit note: the invoice it corrects")
    lines: list[InvoiceLineOut]


class DisbursementLineOut(BaseModel):
    invoice: int
    invoice_kind: str
    product: str
    charge: str
    billed: str
    amount: str
    fee_percent: str
    fee: str
    note: str | None


class DisbursementOut(BaseModel):
    id: int
    seller: str
    period: str
    gross: str
    listing_fee: str
    net: str
    infrastructure_passed_through: str
    notes: list[str]
    lines: list[DisbursementLineOut]


class Disbursements(BaseModel):
    disbursements: list[DisbursementOut]


class RevenueRow(BaseModel):
    product: str
    charge: str
    category: str
    amount: str


class SubscriberCount(BaseModel):
    product: str
    active: int


class UsageTotal(BaseModel):
    product: str
    dimension: str
    quantity: int


class SellerReport(BaseModel):
    period: str
    revenue: list[RevenueRow]
    subscribers: list[SubscriberCount]
    usage: list[UsageTotal]


class MeteringErrorOut(BaseModel):
    id: int | None
    reason: str | None
    confirmed_at: str | None
    records: list[int] = Field(description="the records confirmed as metering errors by this request")
    already_confirmed: list[int]
    excluded_from_billing: list[int]
    credit_notes: list[InvoiceOut]
