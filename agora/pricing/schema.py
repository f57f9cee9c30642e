"""The shape of a pricing document (DESIGN.md manifest `pricing:`), checked field by field.

This is structure only: types, unknown fields, decimals that parse exactly, no negative prices. Which
combinations are legal (PRC-02…17) is `agora.pricing.rules`. Where a structural constraint is a rule's
(the periods of PRC-13, the categories of PRC-07 …), the field carries a `Rule` marker, so the problem line
names it like the rules' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from agora.money import decimal_places, parse_decimal

MAX_INTEGER_DIGITS = 12  # up to $999,999,999,999: beyond that a price is a typo, not a price
MAX_PLACES = 8


@dataclass(frozen=True)
class Rule:
    """`Annotated[T, Rule("PRC-13")]`: a value the field refuses breaks that RULES.md rule. Read by
    `agora.manifest.errors`; Pydantic ignores it."""

    id: str


def _price(value: Any) -> Decimal:
    try:
        result = parse_decimal(value)
    except ValueError as exc:  # PRC-01: prices are exact decimals, never floats
        raise ValueError(f"{exc} [PRC-01]") from None
    if result < 0:
        raise ValueError("must not be negative")
    if result and result.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"is too large (at most {MAX_INTEGER_DIGITS} digits before the decimal point)")
    if decimal_places(result) > MAX_PLACES:
        raise ValueError(f"has more than {MAX_PLACES} decimal places [PRC-01]")
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
    category: Annotated[Literal["users", "hosts", "bandwidth", "data", "requests", "tiers", "units"], Rule("PRC-07")]
    dimensions: Annotated[list[UsageDimension], Field(min_length=1), Rule("PRC-07")]


class ContractDimension(Strict):
    name: str
    description: str
    unit: str | None = None
    prices: Annotated[
        dict[str, Price],
        Field(min_length=1, description="months ('1', '12', '24', '36') → price per unit"),
        Rule("PRC-10"),
    ]


class Contract(Strict):
    dimensions: Annotated[list[ContractDimension], Field(min_length=1), Rule("PRC-10")]


class MLPrices(Strict):
    training: dict[str, Price] | None = None
    realtime_inference: dict[str, Price] | None = None
    batch_inference: dict[str, Price] | None = None


class Tier(Strict):
    up_to: Annotated[int | None, Field(gt=0), Rule("PRC-13")] = (
        None  # None (or absent, as `stored()` writes it) = open-ended
    )
    price: Price


class TieredItem(Strict):
    name: str
    description: str | None = None
    unit: str | None = None
    reporting: Annotated[Literal["seller", "time", "bill", "prometheus"], Rule("PRC-14")]
    metric: str | None = Field(default=None, description="PromQL/metric name when reporting is prometheus")
    plans: list[str] | None = Field(default=None, description="plans/templates the item is associated with")
    tiers: Annotated[list[Tier], Field(min_length=1), Rule("PRC-13")]


class Tiered(Strict):
    period: Annotated[Literal["hour", "day"], Rule("PRC-13")]
    items: Annotated[list[TieredItem], Field(min_length=1), Rule("PRC-13")]


class PricingDocument(Strict):
    currency: str | None = Field(default=None, description="optional; prices are USD and only USD is accepted (PRC-01)")
    hourly: dict[str, Price] | None = None
    annual: dict[str, Price] | None = None
    monthly: Price | None = None
    free_trial_days: Annotated[int | None, Rule("PRC-06")] = None
    free: bool | None = None
    byol: bool | None = None
    usage: Usage | None = None
    contract: Contract | None = None
    ml: MLPrices | None = None
    tiered: Tiered | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in the database: decimals as strings, absent components left out."""
        return self.model_dump(mode="json", exclude_none=True)
