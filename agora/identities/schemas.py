from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Me(BaseModel):
    role: str
    handle: str


class SellerOut(BaseModel):
    handle: str
    name: str
    tax_form: str
    data_sharing: bool
    created_at: datetime


class BuyerOut(BaseModel):
    account: str
    email: str
    enterprise: bool
    created_at: datetime


class AccessKeyOut(BaseModel):
    access_key_id: str
    created_at: datetime
    revoked_at: datetime | None


class NewCredentialsOut(BaseModel):
    token: str
    access_key_id: str
    secret: str
    note: str = "Store the token and secret now: Agora keeps only a hash of the token and cannot show them again."
