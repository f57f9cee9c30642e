"""What the subscription routes answer, for the OpenAPI document and the fuzzer that holds the API to it.
Instants are ISO 8601 strings with their offset, as the services write them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrialOut(BaseModel):
    starts_at: str
    ends_at: str


class FulfillmentOut(BaseModel):
    registration_token: str
    redirect_url: str | None = Field(description="the seller's fulfillment URL with the token, if it has one")


class SubscriptionOut(BaseModel):
    id: int
    product: str
    buyer: str = Field(description="the buyer's 12-digit account")
    customer_identifier: str
    state: str = Field(description="active or cancelled")
    started_at: str
    ended_at: str | None
    eula: str | None = Field(description="`standard`, or `custom:<digest>` of the product's own EULA")
    eula_accepted_at: str | None
    license_reference: str | None
    trial: TrialOut | None
    fulfillment: FulfillmentOut | None = Field(None, description="SaaS only, on subscribing (SUB-06)")


class ChargeOut(BaseModel):
    reason: str
    amount: str
    at: str


class ContractOut(BaseModel):
    id: int
    subscription_id: int
    duration_months: int
    starts_at: str
    ends_at: str
    license: str
    entitlements: dict[str, int] = Field(description="dimension → units")
    charges: list[ChargeOut]


class EntitlementOut(BaseModel):
    product_code: str
    dimension: str
    customer_identifier: str
    customer_account: str
    value: int
    expiration_date: str
    license: str


class LicenseOut(BaseModel):
    license: str
    product_code: str
    customer_identifier: str
    valid: bool
    starts_at: str
    expires_at: str
    entitlements: dict[str, int]


class AnnualPurchaseOut(BaseModel):
    id: int
    subscription_id: int
    instance_type: str
    quantity: int
    unit_price: str
    amount: str
    starts_at: str
    ends_at: str
    auto_renew: bool
    renews: int | None = Field(description="the purchase this one renews")
