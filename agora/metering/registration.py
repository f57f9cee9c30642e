"""RegisterUsage: a paid container checks, when it starts, that its buyer is entitled to run it.

The answer is a JWT signed with the marketplace's Ed25519 key (derived from `AGORA_SECRET_KEY`), so the
software can verify it offline with the public key from `GET /api/v1/metering/public-key`. Version 1 is
the only key version.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.config import get_settings, secret_key_material
from agora.models import Product, ProductRegion, Subscription

KEY_VERSION = 1
ISSUER = "agora-marketplace"


class RegistrationRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=4)
def _private_key(material: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"agora:register-usage:" + material).digest())


def public_key_pem() -> str:
    key = _private_key(secret_key_material()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def register(
    session: Session, principal: Principal, product_code: str, *, region: str, key_version: int, nonce: str | None
) -> str:
    product = session.scalar(select(Product).where(Product.code == product_code))
    if product is None:
        raise RegistrationRefused("InvalidProductCodeException", f"no product with code {product_code!r}")
    if product.kind != "container":
        raise RegistrationRefused(
            "PlatformNotSupportedException",
            f"RegisterUsage is for container products; {product.code} is {product.kind}",
        )
    regions = set(session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product.id)))
    if region != get_settings().region or (regions and region not in regions):
        raise RegistrationRefused(
            "InvalidRegionException", f"call RegisterUsage in the region the task runs in, not {region}"
        )
    if key_version != KEY_VERSION:
        raise RegistrationRefused(
            "InvalidPublicKeyVersionException", f"public key version {key_version} does not exist; use 1"
        )
    now = clock.now()
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.product_id == product.id,
            Subscription.buyer_id == principal.id,
            Subscription.started_at <= now,
            Subscription.ended_at.is_(None),
        )
    )
    if subscription is None:
        raise RegistrationRefused(
            "CustomerNotEntitledException", f"account {principal.handle} is not subscribed to {product.code}"
        )
    claims = {
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "productCode": product.code,
        "customerIdentifier": subscription.customer_identifier,
        "customerAWSAccountId": principal.handle,
        "publicKeyVersion": key_version,
        "nonce": nonce,
    }
    return jwt.encode(claims, _private_key(secret_key_material()), algorithm="EdDSA")
