"""The event timeline of a manifest (DESIGN "Event types"): one closed model per event type, so a typo or a
missing field is a located problem before anything runs, like everywhere else in the manifest.

What the marketplace decides (an unknown product, a second trial, an expired offer …) is not checked here:
`agora simulate` lists such events under `refused`, as the live service would have answered them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agora.catalog.schemas import Code
from agora.manifest.fields import (
    Account,
    AnnualQuantity,
    Closed,
    ContractMonths,
    ContractQuantities,
    Instant,
    SubscriptionTerms,
)
from agora.pricing.schema import Price, PricingDocument, Rule

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Count = Annotated[int, Field(gt=0)]
Period = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]


class Subscribe(SubscriptionTerms):
    """The buyer subscribes at the event's `at`, buying what a manifest subscription may buy with it."""

    license_reference: Name | None = Field(None, description="the license a BYOL buyer brings")


class Unsubscribe(Closed):
    buyer: Account
    product: Code


class InstanceStart(Closed):
    buyer: Account
    product: Code
    instance: Name
    instance_type: Name
    region: str | None = Field(None, description="where it runs; the marketplace's region by default")


class InstanceStop(Closed):
    instance: Name


class AnnualPurchase(Closed):
    buyer: Account
    product: Code
    instance_type: Name
    quantity: AnnualQuantity = 1
    auto_renew: bool = False


class ContractPurchase(Closed):
    buyer: Account
    product: Code
    duration_months: ContractMonths
    quantities: ContractQuantities


class Meter(Closed):
    """A usage record the seller sends for the hour of `at`, naming the customer by identifier or account."""

    product: Code
    dimension: Name
    quantity: int
    customer_identifier: Name | None = None
    buyer: Account | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> Meter:
        if (self.customer_identifier is None) == (self.buyer is None):
            both = ", not both" if self.buyer is not None else ""
            raise ValueError(f"needs customer_identifier or buyer{both}")
        return self


class MlJob(Closed):
    buyer: Account
    product: Code
    use: Annotated[Literal["training", "batch_inference"], Rule("PRC-12")]
    instance_type: Name
    instances: Count = 1
    seconds: Count
    job_id: Name | None = None


class EndpointStart(Closed):
    """A real-time inference endpoint starts."""

    buyer: Account
    product: Code
    endpoint: Name
    instance_type: Name
    instances: Count = 1


class EndpointStop(Closed):
    endpoint: Name


class PriceChange(Closed):
    """The seller changes the product's prices; the notice is sent at `at` (CHG-01/02)."""

    product: Code
    pricing: PricingDocument


class Instalment(Closed):
    at: Instant
    amount: Price


class OfferCreate(Closed):
    """A private offer created and extended at `at`; `id` is the file's name for it (OFR-01)."""

    id: Name
    product: Code
    buyer: Account
    pricing: PricingDocument
    duration_days: Count
    accept_by: Instant
    schedule: list[Instalment] | None = None
    total: Price | None = Field(None, description="the offer's total; the sum of the schedule by default")


class OfferAccept(Closed):
    id: Name
    buyer: Account


class Refund(Closed):
    """The product's seller approves a refund of the buyer's charges (RFD-01)."""

    product: Code
    buyer: Account
    periods: list[Period] | None = Field(None, description="billing months; the month of `at` by default")
    amount: Price | None = Field(None, description="at most what was charged; everything by default")
    reason: str | None = None


EVENT_MODELS: dict[str, type[BaseModel]] = {
    "subscribe": Subscribe,
    "unsubscribe": Unsubscribe,
    "instance_start": InstanceStart,
    "instance_stop": InstanceStop,
    "annual_purchase": AnnualPurchase,
    "contract_purchase": ContractPurchase,
    "meter": Meter,
    "ml_job": MlJob,
    "endpoint_start": EndpointStart,
    "endpoint_stop": EndpointStop,
    "price_change": PriceChange,
    "offer_create": OfferCreate,
    "offer_accept": OfferAccept,
    "refund": Refund,
}
EVENT_TYPES = tuple(EVENT_MODELS)


class EventIn(Closed):
    """`{at: <instant>, <event type>: {fields}}`: exactly one event per entry."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})

    at: Instant
    subscribe: Subscribe | None = None
    unsubscribe: Unsubscribe | None = None
    instance_start: InstanceStart | None = None
    instance_stop: InstanceStop | None = None
    annual_purchase: AnnualPurchase | None = None
    contract_purchase: ContractPurchase | None = None
    meter: Meter | None = None
    ml_job: MlJob | None = None
    endpoint_start: EndpointStart | None = None
    endpoint_stop: EndpointStop | None = None
    price_change: PriceChange | None = None
    offer_create: OfferCreate | None = None
    offer_accept: OfferAccept | None = None
    refund: Refund | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EventIn:
        if len([name for name in EVENT_TYPES if getattr(self, name) is not None]) != 1:
            raise ValueError(f"must name exactly one event of: {', '.join(EVENT_TYPES)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in EVENT_TYPES if getattr(self, name) is not None)

    @property
    def body(self) -> Any:
        return getattr(self, self.kind)
