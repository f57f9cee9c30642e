from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import jobs
from agora.catalog import service
from agora.catalog.storage import LocalAssetStorage
from agora.models import Product, ProductAsset


@jobs.handler("catalog.publish")
def publish(session: Session, payload: dict[str, Any]) -> None:
    """LST-06: copy every artifact to every listed region, then the listing becomes limited."""
    product = session.get(Product, payload["product_id"])
    if product is None or product.state != "publishing":
        return  # withdrawn or already published: nothing to do, and running again is harmless
    storage = LocalAssetStorage()
    regions = list(product.listing.get("regions") or [])
    for digest in session.scalars(select(ProductAsset.digest).where(ProductAsset.product_id == product.id)):
        for region in regions:
            storage.replicate(digest, region)
    service.finish_publishing(session, product, regions)
