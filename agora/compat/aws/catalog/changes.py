"""Each change type of a change set, done through Agora's own services (agora.catalog.service for products,
agora.offers.service for private offers, the product's pricing for its public offer), so every rule and review
of the native API applies. A refusal is an `AgoraError` or a `CatalogError`; the change set reports it on the
change that caused it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.catalog import service as catalog
from agora.catalog.entity_ids import new_offer_id, new_product_id
from agora.catalog.schemas import ProductCreate
from agora.compat.aws.catalog import entities
from agora.compat.aws.catalog.entities import OFFER, PRODUCT_TYPES, Entity
from agora.compat.aws.catalog.errors import CatalogError, validation
from agora.compat.aws.catalog.terms import PRICE_TERMS, check_terms, days, to_pricing
from agora.config import get_settings
from agora.errors import Invalid
from agora.models import Buyer, Product, Seller, Subscription
from agora.offers import service as offers
from agora.pricing import service as pricing_service
from agora.pricing.rules import PricingContext, validate_pricing
from agora.pricing.schema import PricingDocument

DIMENSION_KEY = re.compile(r"[A-Za-z0-9_]{1,15}")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
MAX_DIMENSION_DESCRIPTION = 70
UNTITLED = "Untitled product"


@dataclass
class Context:
    session: Session
    principal: Principal
    created: dict[str, str] = field(default_factory=dict)  # ChangeName → entity id made in this set


Apply = Callable[[Context, Entity | None, str, Any], str]


def _doc(details: Any, *names: str) -> dict[str, Any]:
    if not isinstance(details, dict):
        raise validation("Details must be a JSON object for this change type")
    return details


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise validation(f"{where} must be a list of strings")
    return value


def _patch(ctx: Context, product: Product, changes: dict[str, Any]) -> None:
    """Listing changes through the catalog service: in place on a draft, a change request the operator
    decides on once published (LST-05), refused where the API refuses them."""
    patch = catalog.validate_patch(changes)
    catalog.update_product(ctx.session, ctx.principal, product.code, patch)


def _product(entity: Entity | None) -> Product:
    assert entity is not None and entity.product is not None
    return entity.product


# --- products -----------------------------------------------------------------------------------------------


def create_product(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    doc = _doc(details)
    entity_id = new_product_id()
    title = doc.get("ProductTitle") or UNTITLED
    try:
        # Offered in the marketplace's own region until AddRegions/RestrictRegions say otherwise.
        data = ProductCreate(
            code=entity_id, kind=PRODUCT_TYPES[entity_type], title=title, regions=[get_settings().region]
        )
    except ValidationError as exc:
        raise validation("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    product = catalog.create_product(ctx.session, ctx.principal, data, entity_id=entity_id)
    ctx.session.flush()
    entities.update_details(
        ctx.session, Entity(entity_id, entity_type, ctx.principal.id, product=product), ProductId=entity_id
    )
    return entity_id


INFORMATION = {
    "ProductTitle": "title",
    "ShortDescription": "short_description",
    "LongDescription": "long_description",
    "Highlights": "highlights",
    "SearchKeywords": "seo_keywords",
    "SupportDescription": "support",
}
INFORMATION_EXTRAS = ("LogoUrl", "VideoUrls", "AdditionalResources", "Sku", "Manufacturer")


def update_product_information(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    doc = _doc(details)
    product = _product(entity)
    changes = {INFORMATION[k]: v for k, v in doc.items() if k in INFORMATION}
    if "Categories" in doc:
        categories = _strings(doc["Categories"], "Categories")
        if len(categories) > 1:
            raise validation("Categories: Agora lists a product in one category")
        changes["category"] = categories[0] if categories else None
    unknown = set(doc) - set(INFORMATION) - set(INFORMATION_EXTRAS) - {"Categories"}
    if unknown:
        raise validation(f"UpdateInformation does not take {', '.join(sorted(unknown))}")
    if changes:
        _patch(ctx, product, changes)
    extras = {k: doc[k] for k in INFORMATION_EXTRAS if k in doc}
    if "VideoUrls" in extras:
        extras["Videos"] = [{"Type": "Link", "Url": u} for u in _strings(extras.pop("VideoUrls"), "VideoUrls")]
    if extras:
        entities.update_details(ctx.session, entity, **extras)  # type: ignore[arg-type]
    return product.entity_id or ""


def _targeting(doc: dict[str, Any]) -> list[str]:
    positive = doc.get("PositiveTargeting")
    if not isinstance(positive, dict):
        raise validation("UpdateTargeting needs PositiveTargeting")
    other = sorted(set(positive) - {"BuyerAccounts"})
    if other:
        raise validation(
            f"PositiveTargeting.{other[0]}: Agora targets buyer accounts only; a private offer names one buyer "
            "account [OFR-01]"
        )
    accounts = _strings(positive.get("BuyerAccounts"), "PositiveTargeting.BuyerAccounts")
    for account in accounts:
        if not re.fullmatch(r"[0-9]{12}", account):
            raise validation(f"PositiveTargeting.BuyerAccounts: {account!r} is not a 12-digit account")
    return accounts


def update_product_targeting(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    accounts = _targeting(_doc(details))
    entities.update_details(ctx.session, entity, Targeting={"PositiveTargeting": {"BuyerAccounts": accounts}})  # type: ignore[arg-type]
    return _product(entity).entity_id or ""


VISIBILITY_ACTIONS = {
    "Limited": ("draft", catalog.submit, "submitted for category review"),
    "Public": ("limited", catalog.sign_off, "signed off"),
    "Restricted": ("public", None, "restricted"),
}


def update_visibility(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    """Limited submits a draft for Agora's category review (the operator's approval publishes it, limited);
    Public is the seller's sign-off of a limited product; Restricted withdraws a public one (LST-05)."""
    target = _doc(details).get("TargetVisibility")
    product = _product(entity)
    if target not in VISIBILITY_ACTIONS:
        raise validation("TargetVisibility must be Limited, Public or Restricted")
    if target == "Limited":
        if product.state == "limited":
            return product.entity_id or ""
        if product.state != "draft":
            raise validation(
                f"product {product.entity_id} is {product.state}: only a draft is submitted for review [LST-05]"
            )
        catalog.submit(ctx.session, ctx.principal, product.code)
    elif target == "Public":
        if product.state != "limited":
            raise validation(
                f"product {product.entity_id} is {product.state}: it becomes public when its seller signs off a "
                "limited listing, after category review [LST-05]"
            )
        catalog.sign_off(ctx.session, ctx.principal, product.code)
    else:
        catalog.restrict(ctx.session, ctx.principal, product.code, "restricted through the Catalog API")
    return product.entity_id or ""


def _published(product: Product) -> bool:
    return product.state != "draft"


def instance_type_dimension(product: Product, item: Any) -> bool:
    """An AMI's or container's hourly dimension is an instance type (`t2.micro`, Types Metered): it names where
    the software runs, priced per hour (PRC-04), not a usage dimension PRC-08 constrains."""
    key = item.get("Key") if isinstance(item, dict) else None
    return product.kind in ("ami", "container") and isinstance(key, str) and INSTANCE_TYPE.fullmatch(key) is not None


def _dimension(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise validation(f"{where} must be an object")
    key = item.get("Key")
    if isinstance(key, str) and INSTANCE_TYPE.fullmatch(key) and "Metered" in (item.get("Types") or []):
        return {
            "Key": key,
            "Name": str(item.get("Name") or key),
            "Description": str(item.get("Description") or key),
            "Unit": "Hrs",
            "Types": ["Metered"],
        }
    if not isinstance(key, str) or not DIMENSION_KEY.fullmatch(key):
        raise validation(f"{where}.Key must be 1–15 characters of A-Z, a-z, 0-9 and _ [PRC-08]")
    description = item.get("Description")
    if not isinstance(description, str) or not description.strip():
        raise validation(f"{where}.Description is required [PRC-08]")
    if len(description) > MAX_DIMENSION_DESCRIPTION:
        raise validation(f"{where}.Description may have at most {MAX_DIMENSION_DESCRIPTION} characters [PRC-08]")
    types = _strings(item.get("Types"), f"{where}.Types") or ["ExternallyMetered"]
    return {
        "Key": key,
        "Name": str(item.get("Name") or key),
        "Description": description,
        "Unit": str(item.get("Unit") or "Units"),
        "Types": types,
    }


def _dimension_list(details: Any) -> list[Any]:
    if isinstance(details, dict) and isinstance(details.get("Dimensions"), list):
        return list(details["Dimensions"])
    if isinstance(details, list):
        return details
    raise validation("Details must be a list of dimensions")


def add_dimensions(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    assert entity is not None
    items = _dimension_list(details)
    if _published(product) and not all(instance_type_dimension(product, item) for item in items):
        raise validation(
            f"product {product.entity_id} is {product.state}: its dimensions are fixed after listing [PRC-08]"
        )
    current = entities.dimensions(entity, product)
    keys = {d["Key"] for d in current}
    added = []
    for i, item in enumerate(items):
        dimension = _dimension(item, f"Dimensions[{i}]")
        if dimension["Key"] in keys:
            raise validation(f"Dimensions[{i}].Key {dimension['Key']!r} already exists on {product.entity_id}")
        keys.add(dimension["Key"])
        added.append(dimension)
    entities.update_details(ctx.session, entity, Dimensions=[*(entity.details.get("Dimensions") or []), *added])
    return product.entity_id or ""


def update_dimensions(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    assert entity is not None
    if _published(product):
        raise validation(
            f"product {product.entity_id} is {product.state}: a dimension's name and description cannot change "
            "once published [PRC-08]"
        )
    stored = {d["Key"]: d for d in entity.details.get("Dimensions") or []}
    for i, item in enumerate(_dimension_list(details)):
        key = item.get("Key") if isinstance(item, dict) else None
        if key not in stored:
            raise validation(f"Dimensions[{i}].Key {key!r} is not a dimension of {product.entity_id}")
        merged = {**stored[key], **{k: v for k, v in item.items() if k in ("Name", "Description", "Unit", "Types")}}
        stored[key] = _dimension(merged, f"Dimensions[{i}]")
    entities.update_details(ctx.session, entity, Dimensions=list(stored.values()))
    _repriced(ctx, entity, product)
    return product.entity_id or ""


def restrict_dimensions(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    assert entity is not None
    if _published(product):
        raise validation(
            f"product {product.entity_id} is {product.state}: the set of dimensions is fixed after listing [PRC-08]"
        )
    doomed = {item.get("Key") if isinstance(item, dict) else item for item in _dimension_list(details)}
    stored = [d for d in entity.details.get("Dimensions") or [] if d["Key"] not in doomed]
    entities.update_details(ctx.session, entity, Dimensions=stored)
    return product.entity_id or ""


def _repriced(ctx: Context, entity: Entity, product: Product) -> None:
    """A draft product's prices carry its dimensions' descriptions and units: keep them in step."""
    public = entities.find(ctx.session, product.seller_id, product.public_offer_entity_id or "")
    terms = public.details.get("Terms") if public else None
    if product.pricing and terms:
        _price_public(ctx, product, [t for t in terms if t["Type"] in PRICE_TERMS])


def add_delivery_options(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    options = _doc(details).get("DeliveryOptions")
    if not isinstance(options, list) or not options:
        raise validation("DeliveryOptions must list at least one delivery option")
    if product.kind == "saas":
        for i, option in enumerate(options):
            saas = ((option or {}).get("Details") or {}).get("SaaSUrlDeliveryOptionDetails") or {}
            url = saas.get("FulfillmentUrl")
            if not isinstance(url, str):
                raise validation(
                    f"DeliveryOptions[{i}].Details.SaaSUrlDeliveryOptionDetails.FulfillmentUrl is required"
                )
            _patch(ctx, product, {"fulfillment_url": url})
    else:
        versions = list(entity.details.get("Versions") or []) if entity else []
        version = _doc(details).get("Version") or {}
        versions.append(
            {
                "VersionTitle": version.get("VersionTitle"),
                "ReleaseNotes": version.get("ReleaseNotes"),
                "DeliveryOptions": options,
            }
        )
        entities.update_details(ctx.session, entity, Versions=versions)  # type: ignore[arg-type]
    return product.entity_id or ""


def release_product(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    """AWS releases a draft straight to Limited; Agora's products reach limited through category review
    (LST-05), so a draft is refused — submit it with UpdateVisibility Limited instead."""
    product = _product(entity)
    if product.state in ("limited", "public", "restricted"):
        return product.entity_id or ""
    raise validation(
        f"product {product.entity_id} is {product.state}: a product is released (limited) only after Agora's "
        "category review; submit it with UpdateVisibility TargetVisibility=Limited and wait for the review [LST-05]"
    )


def _regions(details: Any, name: str = "Regions") -> list[str]:
    regions = _strings(_doc(details).get(name), name)
    if not regions:
        raise validation(f"{name} must list at least one region")
    return regions


def add_regions(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    current = list(product.listing.get("regions") or [])
    _patch(ctx, product, {"regions": current + [r for r in _regions(details) if r not in current]})
    return product.entity_id or ""


def restrict_regions(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    product = _product(entity)
    doomed = set(_regions(details))
    _patch(ctx, product, {"regions": [r for r in product.listing.get("regions") or [] if r not in doomed]})
    return product.entity_id or ""


def update_future_region_support(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    support = _doc(details).get("FutureRegionSupport")
    if not isinstance(support, dict):
        raise validation("FutureRegionSupport must be an object with SupportedRegions")
    entities.update_details(ctx.session, entity, FutureRegionSupport=support)  # type: ignore[arg-type]
    return _product(entity).entity_id or ""


def _instance_types(details: Any) -> list[str]:
    types = _strings(_doc(details).get("InstanceTypes"), "InstanceTypes")
    if not types:
        raise validation("InstanceTypes must list at least one instance type")
    return types


def add_instance_types(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    assert entity is not None
    current = list(entity.details.get("InstanceTypes") or [])
    current += [t for t in _instance_types(details) if t not in current]
    entities.update_details(ctx.session, entity, InstanceTypes=current)
    return _product(entity).entity_id or ""


def restrict_instance_types(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    assert entity is not None
    doomed = set(_instance_types(details))
    current = [t for t in entity.details.get("InstanceTypes") or [] if t not in doomed]
    entities.update_details(ctx.session, entity, InstanceTypes=current)
    return _product(entity).entity_id or ""


def add_repositories(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    assert entity is not None
    repositories = _doc(details).get("Repositories")
    if not isinstance(repositories, list) or not repositories:
        raise validation("Repositories must list at least one {RepositoryName, RepositoryType}")
    current = list(entity.details.get("Repositories") or [])
    for i, repository in enumerate(repositories):
        if not isinstance(repository, dict) or not isinstance(repository.get("RepositoryName"), str):
            raise validation(f"Repositories[{i}].RepositoryName is required")
        current.append(
            {
                "RepositoryName": repository["RepositoryName"],
                "RepositoryType": repository.get("RepositoryType") or "ECR",
                "RepositoryUrl": f"{entity.entity_id}.registry.agora/{repository['RepositoryName']}",
            }
        )
    entities.update_details(ctx.session, entity, Repositories=current)
    return _product(entity).entity_id or ""


# --- offers -------------------------------------------------------------------------------------------------


def _resolve(ctx: Context, value: Any) -> str:
    if isinstance(value, str) and value.startswith("$"):
        return _reference(ctx, value)
    if not isinstance(value, str):
        raise validation("ProductId is required")
    return value


def _reference(ctx: Context, value: str) -> str:
    found = re.fullmatch(r"\$([A-Za-z0-9_-]+)\.Entity\.Identifier", value)
    if found is None or found.group(1) not in ctx.created:
        raise validation(f"{value} does not name a change earlier in this change set that created an entity")
    return ctx.created[found.group(1)]


def create_offer(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    """A draft offer of one of the seller's products. A draft product without prices gets it as its public
    pricing (its `public_offer_entity_id`); otherwise it is a private offer, made when it is released."""
    doc = _doc(details)
    product_entity = entities.find(ctx.session, ctx.principal.id, _resolve(ctx, doc.get("ProductId")))
    if product_entity is None or product_entity.product is None:
        raise CatalogError("ResourceNotFoundException", f"ProductId {doc.get('ProductId')} is not one of your products")
    product = product_entity.product
    entity_id = new_offer_id()
    offer = Entity(entity_id, OFFER, ctx.principal.id)
    if product.state == "draft" and not product.pricing:
        product.public_offer_entity_id = entity_id
        offer.public_of = product
        ctx.session.flush()
    entities.ensure_extra(ctx.session, offer).product_id = product.id
    name = doc.get("Name")
    if name is not None and (not isinstance(name, str) or len(name) > 150):
        raise validation("Name must be a string of at most 150 characters")
    entities.update_details(ctx.session, offer, ProductId=product.entity_id, **({"Name": name} if name else {}))
    return entity_id


def create_replacement_offer(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    """A draft private offer that, once accepted, replaces an agreement: for the agreement's product and its
    buyer only (OFR-01). Accepting it ends the buyer's current subscription, whose agreement is then REPLACED."""
    doc = _doc(details)
    agreement_id = doc.get("AgreementId")
    if not isinstance(agreement_id, str) or not agreement_id:
        raise validation("AgreementId is required: the agreement this offer replaces")
    subscription = ctx.session.scalar(select(Subscription).where(Subscription.agreement_id == agreement_id))
    product = ctx.session.get(Product, subscription.product_id) if subscription is not None else None
    if subscription is None or product is None or product.seller_id != ctx.principal.id:
        message = f"AgreementId {agreement_id} is not an agreement on your products"
        raise CatalogError("ResourceNotFoundException", message)
    if subscription.ended_at is not None:
        raise validation(f"agreement {agreement_id} has ended: only an active agreement can be replaced")
    buyer = ctx.session.get_one(Buyer, subscription.buyer_id)
    offer_id = create_offer(ctx, None, entity_type, {"ProductId": product.entity_id, "Name": doc.get("Name")})
    offer = entities.find(ctx.session, ctx.principal.id, offer_id)
    assert offer is not None
    entities.update_details(
        ctx.session,
        offer,
        Targeting={"PositiveTargeting": {"BuyerAccounts": [buyer.account]}},
        ReplacesAgreementId=agreement_id,
    )
    return offer_id


def _draft_offer(entity: Entity | None) -> Entity:
    assert entity is not None
    if entity.offer is not None:
        raise validation(
            f"offer {entity.entity_id} is released (extended to its buyer): it cannot be edited; "
            "make a new offer [OFR-02]"
        )
    return entity


def update_offer_information(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    doc = _doc(details)
    offer = _draft_offer(entity)
    values = {k: doc[k] for k in ("Name", "Description") if k in doc}
    for name, value in values.items():
        if not isinstance(value, str) or len(value) > (150 if name == "Name" else 255):
            raise validation(f"{name} must be a string of at most {150 if name == 'Name' else 255} characters")
    entities.update_details(ctx.session, offer, **values)
    return offer.entity_id


def update_offer_targeting(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    offer = _draft_offer(entity)
    accounts = _targeting(_doc(details))
    if offer.public_of is not None:
        raise validation(
            f"offer {offer.entity_id} is the public pricing of {offer.public_of.entity_id}: every buyer sees it. "
            "A private offer names one buyer account [OFR-01]"
        )
    if len(accounts) != 1:
        raise validation(
            f"a private offer names exactly one buyer account; this one names {len(accounts)} — make one offer per "
            "buyer [OFR-01]"
        )
    entities.update_details(ctx.session, offer, Targeting={"PositiveTargeting": {"BuyerAccounts": accounts}})
    return offer.entity_id


def _offer_product(ctx: Context, offer: Entity) -> Product:
    product_id = offer.offer_product_id
    if product_id is None:
        raise validation(f"offer {offer.entity_id} names no product")
    return ctx.session.get_one(Product, product_id)


def _check_document(ctx: Context, product: Product, raw: dict[str, Any]) -> PricingDocument:
    try:
        document = PricingDocument.model_validate(raw)
    except ValidationError as exc:
        raise validation("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    seller = ctx.session.get_one(Seller, product.seller_id)
    result = validate_pricing(document, PricingContext(product.kind, seller.tax_form, as_of=clock.now().date()))
    if result.violations:
        raise Invalid.of(
            [(f"pricing.{v.path}" if v.path else "pricing", f"{v.message} [{v.rule}]") for v in result.violations]
        )
    return document


def _merge_terms(offer: Entity, terms: list[dict[str, Any]], kinds: frozenset[str]) -> list[dict[str, Any]]:
    kept = [t for t in offer.details.get("Terms") or [] if t["Type"] not in kinds]
    return kept + terms


def _price_public(ctx: Context, product: Product, terms: list[dict[str, Any]]) -> None:
    """A draft's prices change in place; a published product's become its next price version, noticed to its
    subscribers (CHG-01/02), within its pricing model (PRC-16) — the native pricing endpoint's path."""
    raw = to_pricing(product.kind, terms, entities.dimensions_by_key(ctx.session, product))
    document = _check_document(ctx, product, raw)
    if pricing_service.versions(ctx.session, product):
        pricing_service.change_price(ctx.session, ctx.principal, product, document)
        return
    _patch(ctx, product, {"pricing": document.model_dump(mode="json", exclude_none=True)})


def update_pricing_terms(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    doc = _doc(details)
    offer = _draft_offer(entity)
    terms = check_terms(doc.get("Terms"), PRICE_TERMS)
    product = _offer_product(ctx, offer)
    if offer.public_of is not None:
        _price_public(ctx, product, terms)
    else:
        raw = to_pricing(product.kind, terms, entities.dimensions_by_key(ctx.session, product))
        _check_document(ctx, product, raw)
    entities.update_details(
        ctx.session, offer, PricingModel=doc.get("PricingModel"), Terms=_merge_terms(offer, terms, PRICE_TERMS)
    )
    return offer.entity_id


def _date(value: Any, where: str) -> date:
    if not isinstance(value, str):
        raise validation(f"{where} must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise validation(f"{where} must be a date, YYYY-MM-DD") from None


def _future(day: date, where: str, rule: str) -> None:
    if day < clock.now().date():
        raise validation(f"{where} {day.isoformat()} is already past [{rule}]")


def _other_term(kind: str, check: Callable[[Context, Entity, dict[str, Any]], None] | None = None) -> Apply:
    def apply(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
        offer = _draft_offer(entity)
        terms = check_terms(_doc(details).get("Terms"), frozenset({kind}))
        for term in terms:
            if check is not None:
                check(ctx, offer, term)
        entities.update_details(ctx.session, offer, Terms=_merge_terms(offer, terms, frozenset({kind})))
        return offer.entity_id

    return apply


def _check_support(ctx: Context, offer: Entity, term: dict[str, Any]) -> None:
    policy = term.get("RefundPolicy")
    if not isinstance(policy, str) or not policy.strip():
        raise validation("SupportTerm.RefundPolicy is required [LST-07]")
    if offer.public_of is not None:
        _patch(ctx, offer.public_of, {"refund_policy": policy})


def _check_validity(ctx: Context, offer: Entity, term: dict[str, Any]) -> None:
    if "AgreementDuration" in term:
        n = days(term["AgreementDuration"], "ValidityTerm.AgreementDuration")
        if not 1 <= n <= offers.MAX_DURATION_DAYS:
            raise validation(f"ValidityTerm.AgreementDuration must be 1 to {offers.MAX_DURATION_DAYS} days [OFR-01]")
    elif "AgreementEndDate" in term:
        _future(
            _date(term["AgreementEndDate"], "ValidityTerm.AgreementEndDate"), "ValidityTerm.AgreementEndDate", "OFR-01"
        )
    else:
        raise validation("ValidityTerm needs AgreementDuration or AgreementEndDate")
    if "AgreementStartDate" in term:
        _future(
            _date(term["AgreementStartDate"], "ValidityTerm.AgreementStartDate"),
            "ValidityTerm.AgreementStartDate",
            "OFR-01",
        )


def _check_schedule(ctx: Context, offer: Entity, term: dict[str, Any]) -> None:
    schedule = term.get("Schedule")
    if not isinstance(schedule, list) or not schedule:
        raise validation("PaymentScheduleTerm.Schedule must list at least one charge")
    for i, charge in enumerate(schedule):
        where = f"PaymentScheduleTerm.Schedule[{i}]"
        when = _date((charge or {}).get("ChargeDate"), f"{where}.ChargeDate")
        _future(when, f"{where}.ChargeDate", "BIL-02")
        amount = (charge or {}).get("ChargeAmount")
        try:
            if Decimal(str(amount)) <= 0:
                raise ValueError
        except (ValueError, ArithmeticError):
            raise validation(f"{where}.ChargeAmount must be a positive amount") from None


def _check_legal(ctx: Context, offer: Entity, term: dict[str, Any]) -> None:
    documents = term.get("Documents")
    if not isinstance(documents, list) or not documents:
        raise validation("LegalTerm.Documents must name the EULA: StandardEula or CustomEula [LST-08]")
    for i, document in enumerate(documents):
        if (document or {}).get("Type") not in ("StandardEula", "CustomEula", "StandardDsa", "CustomDsa"):
            raise validation(f"LegalTerm.Documents[{i}].Type must be StandardEula or CustomEula [LST-08]")


update_legal_terms = _other_term("LegalTerm", _check_legal)
update_support_terms = _other_term("SupportTerm", _check_support)
update_validity_terms = _other_term("ValidityTerm", _check_validity)
update_payment_schedule_terms = _other_term("PaymentScheduleTerm", _check_schedule)
update_renewal_terms = _other_term("RenewalTerm")


def update_availability(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    offer = _draft_offer(entity)
    end = _date(_doc(details).get("AvailabilityEndDate"), "AvailabilityEndDate")
    _future(end, "AvailabilityEndDate", "OFR-03")
    entities.update_details(ctx.session, offer, AvailabilityEndDate=end.isoformat())
    return offer.entity_id


def release_offer(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
    """A private offer becomes an Agora offer, extended to its buyer (OFR-01…03); a product's public offer is
    released with its product, through review (LST-05)."""
    offer = _draft_offer(entity)
    product = _offer_product(ctx, offer)
    if offer.public_of is not None:
        if not product.pricing:
            raise validation(f"offer {offer.entity_id} has no pricing terms yet: set them with UpdatePricingTerms")
        return offer.entity_id
    accounts = entities.buyer_accounts(ctx.session, offer)
    if len(accounts) != 1:
        raise validation(
            f"offer {offer.entity_id} names {len(accounts)} buyer accounts: a private offer names exactly one; set it "
            "with UpdateTargeting [OFR-01]"
        )
    terms = offer.details.get("Terms") or []
    price_terms = [t for t in terms if t["Type"] in PRICE_TERMS]
    if not price_terms:
        raise validation(f"offer {offer.entity_id} has no pricing terms: set them with UpdatePricingTerms [OFR-01]")
    document = _check_document(
        ctx, product, to_pricing(product.kind, price_terms, entities.dimensions_by_key(ctx.session, product))
    )
    by_type = {t["Type"]: t for t in terms}
    validity = by_type.get("ValidityTerm")
    if validity is None:
        raise validation(f"offer {offer.entity_id} needs a ValidityTerm (its duration once accepted) [OFR-01]")
    if "AgreementDuration" in validity:
        duration = days(validity["AgreementDuration"], "ValidityTerm.AgreementDuration")
    else:
        end = _date(validity.get("AgreementEndDate"), "ValidityTerm.AgreementEndDate")
        duration = (end - clock.now().date()).days
    availability = offer.details.get("AvailabilityEndDate")
    if availability is None:
        raise validation(
            f"offer {offer.entity_id} needs an AvailabilityEndDate (its acceptance deadline): set it with "
            "UpdateAvailability [OFR-01]"
        )
    accept_by = datetime.combine(date.fromisoformat(availability), time(23, 59, 59), UTC)
    data: dict[str, Any] = {
        "product": product.code,
        "buyer": accounts[0],
        "pricing": document,
        "duration_days": duration,
        "accept_by": accept_by,
    }
    schedule = by_type.get("PaymentScheduleTerm")
    if schedule is not None:
        instalments = [
            {
                "at": datetime.combine(_date(c["ChargeDate"], "ChargeDate"), time(0), UTC).isoformat(),
                "amount": str(c["ChargeAmount"]),
            }
            for c in schedule["Schedule"]
        ]
        data["schedule"] = instalments
        # The offer's total is its upfront price; the instalments must add up to it (OFR-01).
        upfront = by_type.get("FixedUpfrontPricingTerm")
        data["total"] = (
            Decimal(str(upfront["Price"]))
            if upfront is not None
            else sum((Decimal(i["amount"]) for i in instalments), Decimal(0))
        )
    made = offers.create(ctx.session, ctx.principal, data, entity_id=offer.entity_id)
    offers.extend(ctx.session, ctx.principal, made.public_id)
    extra = entities.ensure_extra(ctx.session, offer)
    extra.offer_id = made.id
    extra.updated_at = clock.now()
    return offer.entity_id


def not_yet(name: str) -> Apply:
    def apply(ctx: Context, entity: Entity | None, entity_type: str, details: Any) -> str:
        raise validation(f"{name} is not supported by Agora yet")

    return apply


PRODUCT_CHANGES: dict[str, Apply] = {
    "CreateProduct": create_product,
    "UpdateInformation": update_product_information,
    "UpdateTargeting": update_product_targeting,
    "UpdateVisibility": update_visibility,
    "AddDimensions": add_dimensions,
    "UpdateDimensions": update_dimensions,
    "RestrictDimensions": restrict_dimensions,
    "AddDeliveryOptions": add_delivery_options,
    "ReleaseProduct": release_product,
}
AMI_CHANGES: dict[str, Apply] = {
    "AddRegions": add_regions,
    "RestrictRegions": restrict_regions,
    "AddInstanceTypes": add_instance_types,
    "RestrictInstanceTypes": restrict_instance_types,
    "UpdateFutureRegionSupport": update_future_region_support,
}
CONTAINER_CHANGES: dict[str, Apply] = {
    "AddRegions": add_regions,
    "RestrictRegions": restrict_regions,
    "UpdateFutureRegionSupport": update_future_region_support,
    "AddRepositories": add_repositories,
}
OFFER_CHANGES: dict[str, Apply] = {
    "CreateOffer": create_offer,
    "CreateReplacementOffer": create_replacement_offer,
    "UpdateInformation": update_offer_information,
    "UpdateTargeting": update_offer_targeting,
    "UpdatePricingTerms": update_pricing_terms,
    "UpdateLegalTerms": update_legal_terms,
    "UpdateSupportTerms": update_support_terms,
    "UpdateValidityTerms": update_validity_terms,
    "UpdatePaymentScheduleTerms": update_payment_schedule_terms,
    "UpdateAvailability": update_availability,
    "UpdateRenewalTerms": update_renewal_terms,
    "ReleaseOffer": release_offer,
}
CHANGES: dict[str, dict[str, Apply]] = {
    "SaaSProduct": PRODUCT_CHANGES,
    "AmiProduct": {**PRODUCT_CHANGES, **AMI_CHANGES},
    "ContainerProduct": {**PRODUCT_CHANGES, **CONTAINER_CHANGES},
    "Offer": OFFER_CHANGES,
}
CREATES = frozenset({"CreateProduct", "CreateOffer", "CreateReplacementOffer"})
