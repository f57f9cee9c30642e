"""Field types the manifest's sections and its events share. Unknown fields are refused (a typo is never
silently ignored)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from agora.catalog.schemas import Code
from agora.pricing.schema import Rule

HANDLE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
CustomerIdentifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# A Catalog API entity id as AWS shapes them: `prod-…` or `offer-…` (agora.catalog.entity_ids).
EntityId = Annotated[str, StringConstraints(pattern=r"^(prod|offer)-[a-z0-9]{5,40}$")]
# The Agreement API's and the Catalog API's ids, as AWS spells them.
AgreementId = Annotated[str, StringConstraints(pattern=r"^agmt-[a-z0-9]{1,59}$")]
OfferEntityId = Annotated[str, StringConstraints(pattern=r"^offer-[a-z0-9]{1,58}$")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-03-01T00:00:00Z")
    return value


Instant = Annotated[datetime, AfterValidator(_aware)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _account(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("must be a quoted string of 12 digits (unquoted, YAML reads it as a number)")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{12}", value):
        raise ValueError(f"must be exactly 12 digits, got {value!r}")
    return value


Account = Annotated[str, BeforeValidator(_account)]


ContractMonths = Annotated[Literal[1, 12, 24, 36], Rule("PRC-10")]
ContractQuantities = Annotated[dict[str, Annotated[int, Field(gt=0)]], Field(min_length=1), Rule("PRC-10")]
AnnualQuantity = Annotated[int, Field(gt=0), Rule("SUB-03")]


class ContractPurchaseIn(Closed):
    duration_months: ContractMonths
    quantities: ContractQuantities


class SubscriptionTerms(Closed):
    """What a buyer subscribes to and buys with it: a manifest subscription, or a `subscribe` event."""

    buyer: Account
    product: Code
    customer_identifier: CustomerIdentifier | None = Field(
        None, description="how the seller names the customer when metering; `<product>-<buyer>` by default"
    )
    contract: ContractPurchaseIn | None = Field(None, description="a contract bought when subscribing")
    annual: dict[str, AnnualQuantity] | None = Field(
        None, description="annual subscriptions bought when subscribing: instance type → how many"
    )
    auto_renew: bool = Field(False, description="the annual subscriptions renew after 12 months")
