"""JSON shapes of listings: the seller's full record, the wizard, the public product page, the queue."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.catalog import service
from agora.models import InfrastructurePrice, Job, PricingModelRequest, Product, ProductAsset, ProductRegion, Seller
from agora.offers import service as offers

STEPS: dict[str, tuple[str, ...]] = {
    "access": ("title", "managed_service", "fulfillment_url", "webhook_url"),
    "general": (
        "short_description",
        "highlights",
        "long_description",
        "support",
        "regions",
        "case_studies",
        "versions",
        "ml",
    ),
    "category": ("category", "tags", "seo_keywords", "seo_description", "region_selection"),
    "pricing": ("pricing", "enterprise_only", "tax_code", "metering_failure_mode"),
    "agreement": ("eula", "icp_filing", "refund_policy"),
}
STEP_OF = {field: step for step, fields in STEPS.items() for field in fields}


def asset_out(asset: ProductAsset) -> dict[str, Any]:
    return {
        "kind": asset.kind,
        "digest": asset.digest,
        "content_type": asset.content_type,
        "size": asset.size,
        "filename": asset.filename,
        "url": f"/api/v1/assets/{asset.digest}",
    }


def _assets(session: Session, product: Product) -> list[dict[str, Any]]:
    rows = session.scalars(select(ProductAsset).where(ProductAsset.product_id == product.id).order_by(ProductAsset.id))
    return [asset_out(a) for a in rows]


def _regions(session: Session, product: Product) -> list[str]:
    return list(
        session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product.id).order_by("region"))
    )


def product_out(session: Session, product: Product, *, brief: bool = False) -> dict[str, Any]:
    """The seller's (and operator's) view: everything, including state and what blocks submission."""
    seller = session.get_one(Seller, product.seller_id)
    out: dict[str, Any] = {
        "code": product.code,
        "seller": seller.handle,
        "kind": product.kind,
        "title": product.title,
        "state": product.state,
        "pricing_family": product.pricing_family,
        "updated_at": product.updated_at.isoformat(),
    }
    if brief:
        return out
    out.update(
        {
            **product.listing,
            "pricing": product.pricing,
            "enterprise_only": product.enterprise_only,
            "rejection_reason": product.rejection_reason,
            "submitted_at": product.submitted_at.isoformat() if product.submitted_at else None,
            "published_at": product.published_at.isoformat() if product.published_at else None,
            "assets": _assets(session, product),
        }
    )
    if product.state == "draft":
        out["missing"] = [m.as_dict() for m in service.missing_for_submission(session, product)]
    return out


def wizard_out(session: Session, product: Product) -> dict[str, Any]:
    record = product_out(session, product)
    missing = service.missing_for_submission(session, product)
    steps: list[dict[str, Any]] = []
    for step, fields in STEPS.items():
        step_missing = [m.as_dict() for m in missing if STEP_OF.get(m.field.split(".")[0]) == step]
        steps.append({"step": step, "fields": {f: record.get(f) for f in fields}, "missing": step_missing})
    asset_missing = [m.as_dict() for m in missing if m.field.startswith("assets.")]
    steps[1]["missing"] += asset_missing  # logo and user guide belong to the General step (ALI)
    return {
        "code": product.code,
        "state": product.state,
        "steps": steps,
        "ready_to_submit": not missing and product.state == "draft",
    }


def catalog_page(session: Session, product: Product, who: Principal | None, *, brief: bool = False) -> dict[str, Any]:
    """What a storefront shows. Software charges only; infrastructure estimates are separate (LST-10)."""
    listing = product.listing
    seller = session.get_one(Seller, product.seller_id)
    assets = _assets(session, product)
    logo = next((a["url"] for a in assets if a["kind"] == "logo"), None)
    out: dict[str, Any] = {
        "code": product.code,
        "title": product.title,
        "kind": product.kind,
        "seller": {"handle": seller.handle, "name": seller.name},
        "short_description": listing.get("short_description"),
        "category": product.category,
        "pricing_family": product.pricing_family,
        "free_trial": product.free_trial,
        "enterprise_only": product.enterprise_only,
        "logo_url": logo,
    }
    if brief:
        return out
    versions = [v for v in listing.get("versions") or [] if not v.get("restricted")]
    out.update(
        {
            "state": product.state,
            "long_description": listing.get("long_description"),
            "highlights": listing.get("highlights") or [],
            "tags": listing.get("tags") or [],
            "regions": _regions(session, product),
            "support": listing.get("support"),
            "case_studies": listing.get("case_studies") or [],
            "versions": versions,
            "refund_policy": listing.get("refund_policy"),
            "eula": next(
                ({"kind": "custom", "url": a["url"]} for a in assets if a["kind"] == "eula"),
                {"kind": "standard", "url": None},
            ),
            "software_pricing": product.pricing,
            "infrastructure_pricing": infrastructure_estimates(session, product),
            "screenshots": [a["url"] for a in assets if a["kind"] == "screenshot"],
            "certifications": [a["url"] for a in assets if a["kind"] == "certification"],
            "user_guide_url": next((a["url"] for a in assets if a["kind"] == "user_guide"), None),
            "video_url": next((a["url"] for a in assets if a["kind"] == "video"), None),
        }
    )
    if listing.get("ml"):
        out["ml"] = listing["ml"]
    out["private_offers"] = offers.banners(session, who, product)
    return out


def _instance_types(pricing: dict[str, Any] | None) -> list[str]:
    if not pricing:
        return []
    types = set(pricing.get("hourly") or {}) | set(pricing.get("annual") or {})
    for prices in (pricing.get("ml") or {}).values():
        types |= set(prices or {})
    return sorted(types)


def infrastructure_estimates(session: Session, product: Product) -> list[dict[str, str]]:
    """LST-10: the estimated infrastructure price per instance type and region, from the operator's table,
    shown apart from (never added into) the software prices."""
    types = _instance_types(product.pricing)
    regions = _regions(session, product)
    if not types or not regions:
        return []
    rows = session.scalars(
        select(InfrastructurePrice)
        .where(InfrastructurePrice.instance_type.in_(types), InfrastructurePrice.region.in_(regions))
        .order_by(InfrastructurePrice.instance_type, InfrastructurePrice.region)
    )
    return [
        {"instance_type": r.instance_type, "region": r.region, "hourly_estimate": format(r.hourly.normalize(), "f")}
        for r in rows
    ]


def queue_out(session: Session) -> dict[str, Any]:
    now = clock.now()
    submitted = [
        {
            "code": p.code,
            "title": p.title,
            "kind": p.kind,
            "enterprise_only": p.enterprise_only,
            "submitted_at": p.submitted_at.isoformat() if p.submitted_at else None,
            "age_hours": round((now - p.submitted_at).total_seconds() / 3600, 1) if p.submitted_at else None,
        }
        for p in service.review_queue(session)
    ]
    changes = [
        {
            "id": r.id,
            "product": p.code,
            "changes": r.changes,
            "created_at": r.created_at.isoformat(),
            "age_hours": round((now - r.created_at).total_seconds() / 3600, 1),
        }
        for r, p in service.pending_changes(session)
    ]
    return {"submitted": submitted, "change_requests": changes}


# --- the operator console's review pages ---------------------------------------------------------------------


def review_out(session: Session, product: Product) -> dict[str, Any]:
    """A listing as its reviewer reads it: everything the seller entered, its files, its seller, its age, and
    the publishing job once approved."""
    record = product_out(session, product)
    seller = session.get_one(Seller, product.seller_id)
    record["seller_name"] = seller.name
    record["seller_tax_form"] = seller.tax_form
    record["regions"] = _regions(session, product)
    record["age_hours"] = (
        round((clock.now() - product.submitted_at).total_seconds() / 3600, 1) if product.submitted_at else None
    )
    record["publish_job"] = publish_job(session, product)
    return record


def publish_job(session: Session, product: Product) -> dict[str, Any] | None:
    """The newest `catalog.publish` job of the product: its state, attempts and last error."""
    rows = session.scalars(select(Job).where(Job.name == "catalog.publish").order_by(Job.id.desc()).limit(200))
    for job in rows:
        if job.payload.get("product_id") == product.id:
            return {"id": job.id, "state": job.state, "attempts": job.attempts, "last_error": job.last_error}
    return None


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(not set)"
    if isinstance(value, list):
        return ", ".join(_shown(v) if isinstance(v, dict) else str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def change_requests_out(session: Session) -> list[dict[str, Any]]:
    """Pending change requests, oldest first, field by field: what the listing says now, what it would say."""
    now = clock.now()
    out = []
    for request, product in service.pending_changes(session):
        rows = []
        for name, after in request.changes.items():
            before = getattr(product, name) if name in service.LISTING_COLUMNS else product.listing.get(name)
            rows.append({"field": name, "before": _shown(before), "after": _shown(after)})
        out.append(
            {
                "id": request.id,
                "code": product.code,
                "title": product.title,
                "state": product.state,
                "created_at": request.created_at,
                "age_hours": round((now - request.created_at).total_seconds() / 3600, 1),
                "fields": rows,
            }
        )
    return out


def model_requests_out(session: Session) -> list[dict[str, Any]]:
    """Pending pricing-model requests (PRC-16), oldest first, with the current and the requested pricing."""
    rows = session.execute(
        select(PricingModelRequest, Product)
        .join(Product, Product.id == PricingModelRequest.product_id)
        .where(PricingModelRequest.state == "pending")
        .order_by(PricingModelRequest.created_at, PricingModelRequest.id)
    )
    return [
        {
            "id": r.id,
            "code": p.code,
            "title": p.title,
            "kind": p.kind,
            "from_family": r.from_family,
            "to_family": r.to_family,
            "requested_by": r.requested_by,
            "created_at": r.created_at,
            "before": p.pricing,
            "after": r.pricing,
        }
        for r, p in rows
    ]


def asset_of(session: Session, product: Product, digest: str) -> ProductAsset | None:
    return session.scalar(
        select(ProductAsset).where(ProductAsset.product_id == product.id, ProductAsset.digest == digest)
    )
