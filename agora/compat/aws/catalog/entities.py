"""Agora's products and offers as Catalog API entities: looking them up for a seller, describing them, and
summarising them for ListEntities. A seller sees only its own entities; anyone else's id is not found."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.compat.aws.catalog.errors import CatalogError, not_found, validation
from agora.compat.aws.catalog.terms import from_pricing, pricing_model
from agora.config import get_settings
from agora.models import Buyer, CatalogEntity, Offer, Product, ProductAsset

CATALOG = "AWSMarketplace"
PRODUCT_TYPES = {"SaaSProduct": "saas", "AmiProduct": "ami", "ContainerProduct": "container"}
KIND_TYPES = {kind: name for name, kind in PRODUCT_TYPES.items()}
OFFER = "Offer"
VERSION = "@1.0"
ENTITY_TYPES = (*PRODUCT_TYPES, OFFER)
VISIBILITY = {
    "draft": "Draft",
    "submitted": "Draft",
    "publishing": "Draft",
    "limited": "Limited",
    "public": "Public",
    "restricted": "Restricted",
}


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def account_id(seller_id: int) -> str:
    """The 12-digit account number an ARN names for a seller."""
    return f"{seller_id:012d}"


def arn(seller_id: int, entity_type: str, entity_id: str) -> str:
    region = get_settings().region
    return f"arn:aws:aws-marketplace:{region}:{account_id(seller_id)}:{CATALOG}/{entity_type}/{entity_id}"


def base_type(entity_type: str) -> str:
    """`SaaSProduct@1.0` → `SaaSProduct`; an unknown type is refused."""
    name, _, version = entity_type.partition("@")
    if name not in ENTITY_TYPES or version not in ("", "1.0"):
        raise validation(
            f"entity type {entity_type!r} is not one Agora serves; use one of "
            + ", ".join(f"{t}@1.0" for t in ENTITY_TYPES)
        )
    return name


@dataclass
class Entity:
    """One entity as the Catalog API sees it. Exactly one of: a product; a product's public pricing
    (`public_of`); a released private offer (`offer`); a draft offer (only `extra`)."""

    entity_id: str
    entity_type: str  # without the version
    seller_id: int
    product: Product | None = None
    public_of: Product | None = None
    offer: Offer | None = None
    extra: CatalogEntity | None = None

    @property
    def arn(self) -> str:
        return arn(self.seller_id, self.entity_type, self.entity_id)

    @property
    def details(self) -> dict[str, Any]:
        return dict(self.extra.details) if self.extra else {}

    @property
    def modified(self) -> datetime:
        moments = [m for m in (self.extra.updated_at if self.extra else None,) if m]
        for owner in (self.product, self.public_of):
            if owner is not None:
                moments.append(owner.updated_at)
        if self.offer is not None:
            moments.append(self.offer.accepted_at or self.offer.extended_at or self.offer.created_at)
        return max(moments) if moments else clock.now()

    @property
    def offer_product_id(self) -> int | None:
        if self.public_of is not None:
            return self.public_of.id
        if self.offer is not None:
            return self.offer.product_id
        return self.extra.product_id if self.extra else None


def extra_of(session: Session, entity_id: str) -> CatalogEntity | None:
    return session.get(CatalogEntity, entity_id)


def ensure_extra(session: Session, entity: Entity) -> CatalogEntity:
    if entity.extra is None:
        product = entity.product or entity.public_of
        entity.extra = CatalogEntity(
            entity_id=entity.entity_id,
            entity_type=entity.entity_type + VERSION,
            seller_id=entity.seller_id,
            product_id=product.id if product else (entity.offer.product_id if entity.offer else None),
            offer_id=entity.offer.id if entity.offer else None,
            details={},
            updated_at=clock.now(),
        )
        session.add(entity.extra)
    return entity.extra


def update_details(session: Session, entity: Entity, **values: Any) -> None:
    extra = ensure_extra(session, entity)
    extra.details = {**extra.details, **values}
    extra.updated_at = clock.now()


def find(session: Session, seller_id: int, entity_id: str) -> Entity | None:
    """The seller's entity with this id, or None (another seller's is None too)."""
    extra = extra_of(session, entity_id)
    if entity_id.startswith("prod-"):
        product = session.scalar(select(Product).where(Product.entity_id == entity_id))
        if product is None or product.seller_id != seller_id or product.kind not in KIND_TYPES:
            return None  # ML products and managed services are not Catalog API entity types Agora serves
        return Entity(entity_id, KIND_TYPES[product.kind], seller_id, product=product, extra=extra)
    public_of = session.scalar(select(Product).where(Product.public_offer_entity_id == entity_id))
    if public_of is not None:
        if public_of.seller_id != seller_id:
            return None
        return Entity(entity_id, OFFER, seller_id, public_of=public_of, extra=extra)
    offer = session.scalar(select(Offer).where(Offer.entity_id == entity_id))
    if offer is not None:
        if session.get_one(Product, offer.product_id).seller_id != seller_id:
            return None
        return Entity(entity_id, OFFER, seller_id, offer=offer, extra=extra)
    if extra is not None and extra.seller_id == seller_id and extra.entity_type.startswith(OFFER):
        return Entity(entity_id, OFFER, seller_id, extra=extra)
    return None


def get(session: Session, seller_id: int, entity_id: str) -> Entity:
    entity = find(session, seller_id, entity_id)
    if entity is None:
        raise not_found(f"Entity {entity_id} not found in catalog {CATALOG}")
    return entity


# --- describing -----------------------------------------------------------------------------------------


def describe(session: Session, entity: Entity) -> dict[str, Any]:
    if entity.product is not None:
        return _product_document(session, entity, entity.product)
    return _offer_document(session, entity)


def _product_document(session: Session, entity: Entity, product: Product) -> dict[str, Any]:
    listing = product.listing
    details = entity.details
    logo = session.scalar(
        select(ProductAsset.digest).where(ProductAsset.product_id == product.id, ProductAsset.kind == "logo")
    )
    document: dict[str, Any] = {
        "Description": {
            "ProductTitle": product.title,
            "ProductCode": product.code,
            "ShortDescription": listing.get("short_description"),
            "LongDescription": listing.get("long_description"),
            "Highlights": listing.get("highlights") or [],
            "SearchKeywords": listing.get("seo_keywords") or [],
            "Categories": [listing["category"]] if listing.get("category") else [],
            "Manufacturer": details.get("Manufacturer"),
            "Sku": details.get("Sku"),
            "ProductState": "Active",
            "Visibility": VISIBILITY[product.state],
            "AssociatedProducts": None,
        },
        "PromotionalResources": {
            "LogoUrl": details.get("LogoUrl") or (f"/api/v1/assets/{logo}" if logo else None),
            "Videos": details.get("Videos") or [],
            "AdditionalResources": details.get("AdditionalResources") or [],
            "PromotionalMedia": None,
        },
        "SupportInformation": {"Description": listing.get("support")},
        "Dimensions": dimensions(entity, product),
        "Targeting": details.get("Targeting") or {"PositiveTargeting": {"BuyerAccounts": []}},
        "PublicOfferId": product.public_offer_entity_id,
    }
    if product.kind == "saas":
        fulfillment = listing.get("fulfillment_url")
        document["Versions"] = (
            [{"DeliveryOptions": [{"Type": "SaaSUrl", "FulfillmentUrl": fulfillment}]}] if fulfillment else []
        )
    else:
        document["Versions"] = details.get("Versions") or [
            {"VersionTitle": v.get("version"), "ReleaseNotes": v.get("release_notes")}
            for v in listing.get("versions") or []
        ]
        document["RegionAvailability"] = {
            "Regions": listing.get("regions") or [],
            "FutureRegionSupport": details.get("FutureRegionSupport") or {"SupportedRegions": []},
        }
    if product.kind == "ami":
        document["InstanceTypes"] = details.get("InstanceTypes") or sorted((product.pricing or {}).get("hourly") or {})
    if product.kind == "container":
        document["Repositories"] = details.get("Repositories") or []
    return document


def dimensions(entity: Entity, product: Product) -> list[dict[str, Any]]:
    """The product's dimensions: those added through the Catalog API, then any its pricing names besides."""
    added = list(entity.details.get("Dimensions") or [])
    keys = {d["Key"] for d in added}
    pricing = product.pricing or {}
    for d in (pricing.get("usage") or {}).get("dimensions", []):
        if d["name"] not in keys:
            added.append(
                {
                    "Key": d["name"],
                    "Name": d["name"],
                    "Description": d["description"],
                    "Unit": d.get("unit") or "Units",
                    "Types": ["ExternallyMetered"],
                }
            )
    for d in (pricing.get("contract") or {}).get("dimensions", []):
        if d["name"] not in keys:
            added.append(
                {
                    "Key": d["name"],
                    "Name": d["name"],
                    "Description": d["description"],
                    "Unit": d.get("unit") or "Units",
                    "Types": ["Entitled"],
                }
            )
    return added


def dimensions_by_key(session: Session, product: Product) -> dict[str, dict[str, Any]]:
    entity = Entity(
        product.entity_id or "",
        "SaaSProduct",
        product.seller_id,
        product=product,
        extra=extra_of(session, product.entity_id or ""),
    )
    return {d["Key"]: d for d in dimensions(entity, product)}


def offer_state(entity: Entity) -> str:
    if entity.offer is not None:
        return "Released"
    if entity.public_of is not None:
        return "Released" if entity.public_of.state in ("limited", "public", "restricted") else "Draft"
    return "Draft"


def product_entity_id(session: Session, entity: Entity) -> str | None:
    product_id = entity.offer_product_id
    if product_id is None:
        return entity.details.get("ProductId")
    return session.get_one(Product, product_id).entity_id


def buyer_accounts(session: Session, entity: Entity) -> list[str]:
    if entity.offer is not None:
        return [session.get_one(Buyer, entity.offer.buyer_id).account]
    targeting = entity.details.get("Targeting") or {}
    return list((targeting.get("PositiveTargeting") or {}).get("BuyerAccounts") or [])


def _offer_document(session: Session, entity: Entity) -> dict[str, Any]:
    details = entity.details
    stored_terms = {t["Type"]: t for t in details.get("Terms") or []}
    if entity.public_of is not None:
        price_terms = from_pricing(entity.public_of.pricing)
        model = pricing_model(entity.public_of.pricing)
    elif entity.offer is not None:
        price_terms = from_pricing(entity.offer.pricing)
        model = pricing_model(entity.offer.pricing)
    else:
        price_terms = [t for t in details.get("Terms") or [] if t["Type"] in _PRICE_TYPES]
        model = details.get("PricingModel") or "Free"
    terms = price_terms + [t for kind, t in stored_terms.items() if kind not in _PRICE_TYPES]
    product = session.get(Product, entity.offer_product_id) if entity.offer_product_id else None
    if entity.public_of is not None and not any(t["Type"] == "SupportTerm" for t in terms):
        policy = entity.public_of.listing.get("refund_policy")
        if policy:
            terms.append({"Type": "SupportTerm", "RefundPolicy": policy})
    accounts = buyer_accounts(session, entity)
    availability = details.get("AvailabilityEndDate")
    if entity.offer is not None:
        availability = entity.offer.accept_by.date().isoformat()
    return {
        "Id": entity.entity_id,
        "ProductId": product_entity_id(session, entity),
        "Name": details.get("Name") or (f"{product.title} public offer" if entity.public_of and product else None),
        "Description": details.get("Description"),
        "State": offer_state(entity),
        "PricingModel": {"Type": model},
        "Targeting": {"PositiveTargeting": {"BuyerAccounts": accounts}} if accounts else {},
        "AvailabilityEndDate": availability,
        "Terms": terms,
        "AgoraOfferId": entity.offer.public_id if entity.offer is not None else None,
        "AgoraOfferState": entity.offer.state if entity.offer is not None else None,
    }


_PRICE_TYPES = frozenset(
    {
        "UsageBasedPricingTerm",
        "ConfigurableUpfrontPricingTerm",
        "FixedUpfrontPricingTerm",
        "FreeTrialPricingTerm",
        "RecurringPaymentTerm",
        "ByolPricingTerm",
    }
)


def described(session: Session, entity: Entity) -> dict[str, Any]:
    """DescribeEntity's answer: `Details` as a JSON string and the same as `DetailsDocument`."""
    document = describe(session, entity)
    return {
        "EntityType": entity.entity_type + VERSION,
        "EntityIdentifier": f"{entity.entity_id}@1",
        "EntityArn": entity.arn,
        "LastModifiedDate": iso(entity.modified),
        "Details": json.dumps(document),
        "DetailsDocument": document,
    }


# --- listing --------------------------------------------------------------------------------------------


def all_of(session: Session, seller_id: int, entity_type: str) -> list[Entity]:
    """Every entity of this type the seller owns."""
    products = list(session.scalars(select(Product).where(Product.seller_id == seller_id).order_by(Product.id)))
    extras = {
        e.entity_id: e for e in session.scalars(select(CatalogEntity).where(CatalogEntity.seller_id == seller_id))
    }
    if entity_type in PRODUCT_TYPES:
        kind = PRODUCT_TYPES[entity_type]
        return [
            Entity(p.entity_id, entity_type, seller_id, product=p, extra=extras.get(p.entity_id))
            for p in products
            if p.kind == kind and p.entity_id
        ]
    found: dict[str, Entity] = {}
    for p in products:
        if p.public_offer_entity_id:
            found[p.public_offer_entity_id] = Entity(
                p.public_offer_entity_id, OFFER, seller_id, public_of=p, extra=extras.get(p.public_offer_entity_id)
            )
    product_ids = [p.id for p in products]
    if product_ids:
        for offer in session.scalars(select(Offer).where(Offer.product_id.in_(product_ids)).order_by(Offer.id)):
            if offer.entity_id and offer.entity_id not in found:
                found[offer.entity_id] = Entity(
                    offer.entity_id, OFFER, seller_id, offer=offer, extra=extras.get(offer.entity_id)
                )
    for entity_id, extra in extras.items():
        if extra.entity_type.startswith(OFFER) and entity_id not in found:
            found[entity_id] = Entity(entity_id, OFFER, seller_id, extra=extra)
    return list(found.values())


def name_of(session: Session, entity: Entity) -> str | None:
    if entity.product is not None:
        return entity.product.title
    return _offer_document(session, entity)["Name"]


def visibility_of(entity: Entity) -> str:
    if entity.product is not None:
        return VISIBILITY[entity.product.state]
    if entity.public_of is not None:
        return "Public" if entity.public_of.state == "public" else VISIBILITY[entity.public_of.state]
    return "Public" if offer_state(entity) == "Released" else "Draft"


def summary(session: Session, entity: Entity) -> dict[str, Any]:
    item: dict[str, Any] = {
        "Name": name_of(session, entity),
        "EntityType": entity.entity_type,
        "EntityId": entity.entity_id,
        "EntityArn": entity.arn,
        "LastModifiedDate": iso(entity.modified),
        "Visibility": visibility_of(entity),
    }
    if entity.product is not None:
        item[f"{entity.entity_type}Summary"] = {
            "ProductTitle": entity.product.title,
            "Visibility": visibility_of(entity),
        }
    else:
        document = _offer_document(session, entity)
        item["OfferSummary"] = {
            "Name": document["Name"],
            "ProductId": document["ProductId"],
            "AvailabilityEndDate": document["AvailabilityEndDate"],
            "BuyerAccounts": buyer_accounts(session, entity),
            "State": document["State"],
            "Targeting": ["BuyerAccounts"] if buyer_accounts(session, entity) else ["None"],
        }
    return item


def require_catalog(value: Any) -> None:
    if value != CATALOG:
        raise CatalogError("ValidationException", f"Catalog must be {CATALOG}")
