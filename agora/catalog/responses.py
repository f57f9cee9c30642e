"""What the catalog's routes answer, for the OpenAPI document (issue 15, item 12).

The shapes are built as dicts by `agora.catalog.views`; these models only describe them. They allow extra
keys: a listing carries every listing field it was given (`highlights`, `support`, `eula` …), and describing
a field here must never be able to drop one from an answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MissingOut(BaseModel):
    field: str = Field(description="what is missing or wrong, e.g. `short_description` or `assets.logo`")
    message: str
    rule: str | None = Field(None, description="the rule that asks for it, e.g. `LST-01`")


class AssetOut(BaseModel):
    kind: str
    digest: str
    content_type: str
    size: int
    filename: str
    url: str


class ChangeRequestRef(Open):
    id: int
    state: str
    changes: dict[str, Any]


class ProductOut(Open):
    """The seller's and operator's view of a listing: its state, every listing field, what blocks
    submission (a draft's `missing`) and, after a PATCH of a published listing, the change request made."""

    code: str
    seller: str
    kind: str
    title: str
    state: str
    pricing_family: str | None
    updated_at: str
    pricing: dict[str, Any] | None = None
    enterprise_only: bool | None = None
    rejection_reason: str | None = None
    submitted_at: str | None = None
    published_at: str | None = None
    assets: list[AssetOut] | None = None
    missing: list[MissingOut] | None = None
    change_request: ChangeRequestRef | None = None


class WizardStep(BaseModel):
    step: str = Field(description="access, general, category, pricing or agreement")
    fields: dict[str, Any]
    missing: list[MissingOut]


class WizardOut(BaseModel):
    code: str
    state: str
    steps: list[WizardStep]
    ready_to_submit: bool


class QueuedProduct(BaseModel):
    code: str
    title: str
    kind: str
    enterprise_only: bool
    submitted_at: str | None
    age_hours: float | None


class QueuedChange(BaseModel):
    id: int
    product: str
    changes: dict[str, Any]
    created_at: str
    age_hours: float


class ReviewQueueOut(BaseModel):
    submitted: list[QueuedProduct]
    change_requests: list[QueuedChange]


class ChangeRequestOut(BaseModel):
    id: int
    state: str
    changes: dict[str, Any]
    reason: str | None


class SellerRef(BaseModel):
    handle: str
    name: str


class CatalogProduct(Open):
    """A storefront's product: the brief form in search results, everything in `GET /catalog/{code}`."""

    code: str
    title: str
    kind: str
    seller: SellerRef
    short_description: str | None
    category: str | None
    pricing_family: str | None
    free_trial: bool
    enterprise_only: bool
    logo_url: str | None


class CatalogPage(BaseModel):
    total: int
    limit: int
    offset: int
    results: list[CatalogProduct]
