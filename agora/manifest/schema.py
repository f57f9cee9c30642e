"""The manifest's shape. Unknown fields are refused (a typo is never silently ignored)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from agora.catalog.schemas import Code, ListingFields, ProductKind

HANDLE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
Token = Annotated[str, StringConstraints(min_length=8, max_length=200)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-03-01T00:00:00Z")
    return value


Instant = Annotated[datetime, AfterValidator(_aware)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessKeyIn(Closed):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+/=.-]{8,128}$")]
    secret: Annotated[str, StringConstraints(min_length=8, max_length=200)]


class Credentials(Closed):
    access_keys: list[AccessKeyIn] = []
    api_tokens: list[Token] = []
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)] | None = Field(
        None, description="web sign-in with the account's e-mail; stored as an Argon2 hash"
    )


class SellerIn(Credentials):
    id: Handle
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    email: str | None = Field(None, description="where review results and reports go")
    tax_form: Literal["W-9", "W-8", "none"] = "none"
    data_sharing: bool = False


def _account(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("must be a quoted string of 12 digits (unquoted, YAML reads it as a number)")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{12}", value):
        raise ValueError(f"must be exactly 12 digits, got {value!r}")
    return value


Account = Annotated[str, BeforeValidator(_account)]


class BuyerIn(Credentials):
    account: Account
    email: str
    enterprise: bool = False

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL_RE.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class OperatorIn(Credentials):
    id: Handle
    name: str = ""
    email: str | None = None


class ProductIn(ListingFields):
    code: Code
    seller: Handle
    kind: ProductKind
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    state: Literal["draft", "public"] = "draft"


class ContractPurchaseIn(Closed):
    duration_months: Literal[1, 12, 24, 36]
    quantities: dict[str, Annotated[int, Field(gt=0)]] = Field(min_length=1)


class SubscriptionIn(Closed):
    buyer: Account
    product: Code
    at: Instant
    customer_identifier: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = None
    contract: ContractPurchaseIn | None = None
    annual: dict[str, Annotated[int, Field(gt=0)]] | None = None
    auto_renew: bool = False


class Manifest(Closed):
    region: str | None = None
    sellers: list[SellerIn] = []
    buyers: list[BuyerIn] = []
    operators: list[OperatorIn] = []
    products: list[ProductIn] = []
    subscriptions: list[SubscriptionIn] = []
    events: list[dict[str, Any]] = Field(default=[], description="applied by `agora simulate` only")
