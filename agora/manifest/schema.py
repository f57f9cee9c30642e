"""The manifest's shape. Unknown fields are refused (a typo is never silently ignored)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from agora.catalog.schemas import Code, ListingFields, ProductKind
from agora.manifest.events import EventIn, OfferCreate
from agora.manifest.fields import (
    HANDLE_PATTERN,
    Account,
    AgreementId,
    Closed,
    EntityId,
    Handle,
    Instant,
    OfferEntityId,
    SubscriptionTerms,
)
from agora.pricing.schema import Rule

__all__ = ["HANDLE_PATTERN", "Account", "Closed", "Handle", "Instant", "Manifest", "OfferIn", "SubscriptionIn"]

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Token = Annotated[str, StringConstraints(min_length=8, max_length=200)]


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
    tax_form: Annotated[Literal["W-9", "W-8", "none"], Rule("SEL-02")] = "none"
    data_sharing: bool = False


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
    kind: Annotated[ProductKind, Rule("LST-01")]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    state: Literal["draft", "limited", "public"] = Field(
        "draft", description="limited: published for the seller to test, as if reviewed, before sign-off (LST-05)"
    )
    entity_id: EntityId | None = Field(None, description="the Catalog API's `prod-…` id; assigned when absent")
    public_offer_entity_id: EntityId | None = Field(
        None, description="the `offer-…` id of the product's public pricing as an Offer@1.0 entity"
    )


class SubscriptionIn(SubscriptionTerms):
    """As if the buyer had subscribed at `at` (trial, purchases and all)."""

    at: Instant
    agreement_id: AgreementId | None = Field(
        None, description="the Agreement API's id of this subscription (`agmt-…`); a new one by default"
    )


class OfferIn(OfferCreate):
    """A private offer as it stands (OFR-01…03): `id` is the file's name for it. `at` is when it was created
    (and extended, unless it is a draft); an accepted offer names when (`accepted_at`) and may fix the id of the
    agreement its acceptance made."""

    at: Instant
    entity_id: OfferEntityId | None = Field(None, description="the Catalog API's id of the offer (`offer-…`)")
    state: Literal["draft", "extended", "accepted"] = "extended"
    accepted_at: Instant | None = Field(None, description="when the buyer accepted it; required when accepted")
    agreement_id: AgreementId | None = Field(
        None, description="the Agreement API's id of the accepted offer's subscription; a new one by default"
    )

    @model_validator(mode="after")
    def _acceptance(self) -> OfferIn:
        if (self.state == "accepted") != (self.accepted_at is not None):
            raise ValueError("accepted_at is given exactly when the state is accepted")
        if self.agreement_id is not None and self.state != "accepted":
            raise ValueError("only an accepted offer has an agreement_id")
        return self


class Manifest(Closed):
    region: str | None = None
    sellers: list[SellerIn] = []
    buyers: list[BuyerIn] = []
    operators: list[OperatorIn] = []
    products: list[ProductIn] = []
    subscriptions: list[SubscriptionIn] = []
    offers: list[OfferIn] = Field(default=[], description="private offers, after the subscriptions")
    events: list[EventIn] = Field(default=[], description="applied by `agora simulate` only, in time order")


def json_schema() -> dict[str, Any]:
    """The manifest as a JSON Schema (draft 2020-12) for editors to check files as they are typed
    (`agora schema manifest`). It says what each entry may contain; `agora load` checks more than a schema
    can: references between entries, the pricing rules, one customer per meter event."""
    schema = Manifest.model_json_schema(mode="validation")
    schema.update(
        title="Agora marketplace manifest",
        description="A marketplace for `agora load` and `agora simulate`; see docs/manifest.md.",
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
