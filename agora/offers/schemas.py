"""What the offer routes answer (for the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OfferEula(BaseModel):
    kind: str = Field(description="standard, or custom (the offer's own PDF)")
    url: str | None


class OfferOut(BaseModel):
    id: str = Field(description="the offer's public id, `offer-…`")
    product: str
    buyer: str
    state: str
    pricing: dict[str, Any]
    duration_days: int
    accept_by: str
    total: str | None
    schedule: list[dict[str, Any]]
    eula: OfferEula
    extended_at: str | None
    accepted_at: str | None
    ends_at: str | None
    subscription_id: int | None
    link: str
