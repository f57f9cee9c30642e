"""The shape of a pricing document (DESIGN.md manifest `pricing:`), checked field by field.

This is structure only: types, unknown fields, decimals that parse exactly, no negative prices. Which
combinations are legal (PRC-02…17) is `agora.pricing.rules`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from agora.money import decimal_places, parse_decimal

MAX_INTEGER_DIGITS = 12  # up to $999,999,999,999: beyond that a price is a typo, not a price
MAX_PLACES = 8


def _price(value: Any) -> Decimal:
    result = parse_decimal(value)
    if result < 0:
        raise ValueError("must not be negative")
    if result and result.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"is too large (at most {MAX_INTEGER_DIGITS} digits before the decimal point)")
    if decimal_places(result) > MAX_PLACES:
        raise ValueError(f"has more than {MAX_PLACES} decimal places")
    return result


Price = Annotated[
    Decimal,
    BeforeValidator(_price),
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class UsageDimension(Strict):
    name: str
    description: str
    unit: str | None = None
    rate: Price


class Usage(Strict):
    category: Literal["users", "hosts", "bandwidth", "data", "requests", "tiers", "units"]
    dimensions: list[UsageDimension] = Field(min_length=1)


class ContractDimension(Strict):
    name: str
    description: str
    unit: str | None = None
    prices: dict[str, Price] = Field(min_length=1, description="months ('1', '12', '24', '36') → price per unit")


class Contract(Strict):
    dimensions: list[ContractDimension] = Field(min_length=1)


class MLPrices(Strict):
    training: dict[str, Price] | None = None
    realtime_inference: dict[str, Price] | None = None
    batch_inference: dict[str, Price] | None = None


class Tier(Strict):
    up_to: Annotated[int, Field(gt=0)] | None = None  # None (or absent, as `stored()` writes it) = open-ended
    price: Price


class TieredItem(Strict):
    name: str
    description: str | None = None
    unit: str | None = None
    reporting: Literal["seller", "time", "bill", "prometheus"]
    metric: str | None = Field(default=None, description="PromQL/metric name when reporting is prometheus")
    plans: list[str] | None = Field(default=None, description="plans/templates the item is associated with")
    tiers: list[Tier] = Field(min_length=1)


class Tiered(Strict):
    period: Literal["hour", "day"]
    items: list[TieredItem] = Field(min_length=1)


class PricingDocument(Strict):
    currency: str | None = Field(default=None, description="optional; prices are USD and only USD is accepted (PRC-01)")
    hourly: dict[str, Price] | None = None
    annual: dict[str, Price] | None = None
    monthly: Price | None = None
    free_trial_days: int | None = None
    free: bool | None = None
    byol: bool | None = None
    usage: Usage | None = None
    contract: Contract | None = None
    ml: MLPrices | None = None
    tiered: Tiered | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in the database: decimals as strings, absent components left out."""
        return self.model_dump(mode="json", exclude_none=True)
