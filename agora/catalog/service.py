"""Listings: create, edit, submit, review, publish, sign off (LST-05/06/07), and edits after publishing.

Transition table (LST-05): draft → submitted → publishing → limited → public; reject returns a submitted
product to draft with the reviewer's reason; public → restricted when withdrawn; restricted → public when
reinstated (only a signed-off product can be withdrawn, so reinstating never skips the seller's
sign-off). Anything else is an `InvalidTransition` (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.catalog import search
from agora.catalog.assets import AssetKind
from agora.catalog.entity_ids import new_offer_id, new_product_id
from agora.catalog.schemas import ListingFields, ProductCreate, ProductState, preview_problem
from agora.decisions import decide
from agora.errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound
from agora.models import ChangeRequest, Operator, Product, ProductAsset, ProductRegion, Role, Seller
from agora.notifications.service import notify
from agora.pricing import service as pricing_service
from agora.pricing.rules import PricingContext, is_paid, pricing_family, validate_pricing
from agora.pricing.schema import PricingDocument

S = ProductState
TRANSITIONS: dict[str, tuple[frozenset[S], S]] = {
    "submit": (frozenset({S.DRAFT}), S.SUBMITTED),
    "approve": (frozenset({S.SUBMITTED}), S.PUBLISHING),
    "reject": (frozenset({S.SUBMITTED}), S.DRAFT),
    "published": (frozenset({S.PUBLISHING}), S.LIMITED),
    "sign_off": (frozenset({S.LIMITED}), S.PUBLIC),
    "restrict": (frozenset({S.PUBLIC}), S.RESTRICTED),
    "reinstate": (frozenset({S.RESTRICTED}), S.PUBLIC),
}
EDITABLE = frozenset({S.DRAFT})
CHANGE_REQUESTED = frozenset({S.LIMITED, S.PUBLIC, S.RESTRICTED})
LISTING_COLUMNS = ("title", "pricing")


@dataclass(frozen=True)
class Missing:
    field: str
    message: str
    rule: str | None = None

    def located(self) -> tuple[str, str]:
        return self.field, self.message + (f" [{self.rule}]" if self.rule else "")

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "message": self.message, "rule": self.rule}


def _transition(product: Product, action: str) -> S:
    sources, target = TRANSITIONS[action]
    if S(product.state) not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise InvalidTransition(
            f"cannot {action.replace('_', ' ')} product {product.code!r}: it is {product.state} (needs {allowed})"
        )
    return target


def _set_state(session: Session, product: Product, target: S, *, actor: str, action: str, **extra: Any) -> None:
    before = {"state": product.state}
    product.state = target.value
    product.updated_at = clock.now()
    audit.record(
        session,
        actor=actor,
        action=f"product.{action}",
        target_type="product",
        target_id=product.code,
        before=before,
        after={"state": target.value, **extra},
    )


# --- looking products up -----------------------------------------------------------------------------------


def get_by_code(session: Session, code: str) -> Product | None:
    return session.scalar(select(Product).where(Product.code == code))


def get_managed(session: Session, principal: Principal, code: str) -> Product:
    """A product its seller or an operator manages; anyone else gets 404, as if it did not exist."""
    product = get_by_code(session, code)
    if product is None or (principal.role is Role.SELLER and product.seller_id != principal.id):
        raise NotFound(f"no product {code!r}")
    if principal.role is Role.BUYER:
        raise Forbidden("buyers do not manage products")
    return product


def visible_to(product: Product, viewer: Principal | None) -> bool:
    """LST-06: public is public; while publishing nobody sees the page; otherwise only its seller and
    operators see it."""
    if product.state == S.PUBLIC:
        return True
    if product.state == S.PUBLISHING or viewer is None:
        return False
    if viewer.role is Role.OPERATOR:
        return True
    return viewer.role is Role.SELLER and viewer.id == product.seller_id


# --- creating and editing -----------------------------------------------------------------------------------


def _listing_of(fields: ListingFields) -> dict[str, Any]:
    return fields.model_dump(mode="json", exclude_none=True, exclude={"code", "kind", *LISTING_COLUMNS})


def create_product(
    session: Session, principal: Principal, data: ProductCreate, *, entity_id: str | None = None
) -> Product:
    """SEL-01: only a registered seller creates products; it starts as a draft, with its Catalog API ids."""
    if principal.role is not Role.SELLER:
        raise Forbidden("only sellers create products [SEL-01]")
    if get_by_code(session, data.code) is not None:
        raise Conflict(f"product code {data.code!r} is taken")
    if problem := preview_problem(data.kind, data.ml):
        raise Invalid.at("ml.preview", problem)
    now = clock.now()
    product = Product(
        code=data.code,
        entity_id=entity_id or new_product_id(),
        public_offer_entity_id=new_offer_id(),
        seller_id=principal.id,
        kind=data.kind.value,
        title=data.title,
        state=S.DRAFT.value,
        listing=_listing_of(data),
        pricing=data.pricing.stored() if data.pricing else None,
        updated_at=now,
    )
    session.add(product)
    sync_facets(session, product)
    audit.record(
        session,
        actor=principal.actor,
        action="product.create",
        target_type="product",
        target_id=product.code,
        after={"state": product.state, "kind": product.kind, "title": product.title},
    )
    return product


def _flush_unique(session: Session, product: Product) -> None:
    """Flush, turning a unique-constraint violation into the 409 it means. The unit of work is rolled back
    by the caller's error path, so no savepoint is needed (and `begin_nested` would flush outside it)."""
    code, service_id = product.code, product.managed_service_id  # the failed flush expires the object
    try:
        session.flush()
    except IntegrityError as exc:
        if "managed_service" in str(exc.orig).lower():
            raise Conflict(
                f"managed service {service_id!r} is already associated with another product [LST-04]"
            ) from None
        raise Conflict(f"product code {code!r} is taken") from None


def _current(product: Product, fields: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(product, k) if k in LISTING_COLUMNS else product.listing.get(k) for k in fields}


def apply_changes(session: Session, product: Product, changes: dict[str, Any]) -> None:
    """Merge validated listing changes (API names → JSON values; None clears a field) into the product."""
    listing = dict(product.listing)
    for name, value in changes.items():
        if name == "title":
            product.title = value
        elif name == "pricing":
            product.pricing = value
        elif value is None:
            listing.pop(name, None)
        else:
            listing[name] = value
    product.listing = listing
    product.updated_at = clock.now()
    sync_facets(session, product)


def update_product(
    session: Session, principal: Principal, code: str, patch: ListingFields
) -> tuple[Product, ChangeRequest | None]:
    """A draft changes in place; a published listing gets a change request the operator decides on."""
    product = get_managed(session, principal, code)
    changes = patch.model_dump(mode="json", exclude_unset=True)
    if "title" in changes and changes["title"] is None:
        raise Invalid.at("title", "cannot be removed")
    if problem := preview_problem(product.kind, changes.get("ml")):
        raise Invalid.at("ml.preview", problem)
    if not changes:
        return product, None
    state = S(product.state)
    if state in EDITABLE:
        before = _current(product, changes)
        apply_changes(session, product, changes)
        audit.record(
            session,
            actor=principal.actor,
            action="product.update",
            target_type="product",
            target_id=code,
            before=before,
            after=changes,
        )
        return product, None
    if state in CHANGE_REQUESTED and "pricing" in changes and pricing_service.versions(session, product):
        raise Invalid.at(
            "pricing",
            f"prices of a published product change through PUT /api/v1/products/{code}/pricing, which versions"
            " them and notifies subscribers (CHG-02)",
            "use the pricing endpoint",
        )
    if state in CHANGE_REQUESTED:
        problems = _published_listing_problems(session, product, changes)
        if problems:
            raise Invalid.of([m.located() for m in problems])
        request = ChangeRequest(product_id=product.id, changes=changes, state="pending")
        session.add(request)
        session.flush()
        audit.record(
            session,
            actor=principal.actor,
            action="change_request.create",
            target_type="product",
            target_id=code,
            after={"change_request": request.id, "fields": sorted(changes)},
        )
        return product, request
    raise InvalidTransition(f"product {code!r} is {product.state}: it cannot be edited until the review ends")


def check_assets_editable(product: Product) -> None:
    """Files belong to what was reviewed: they change while the listing is a draft, or limited (the seller
    testing before sign-off). Under review they are frozen; a published listing's files are not yet
    replaceable through a change request, so that is refused rather than done without review."""
    if product.state not in (S.DRAFT, S.LIMITED):
        raise InvalidTransition(
            f"product {product.code!r} is {product.state}: its files can change only as a draft or while limited"
        )


def _published_listing_problems(session: Session, product: Product, changes: dict[str, Any]) -> list[Missing]:
    """A change to a published listing may not remove what submission required (LST-07 included)."""
    merged = {**product.listing, **{k: v for k, v in changes.items() if k not in LISTING_COLUMNS}}
    problems = [
        Missing(f, "required on a published listing") for f in ("short_description", "category") if not merged.get(f)
    ]
    if not merged.get("regions"):
        problems.append(Missing("regions", "a published listing needs at least one region"))
    document = _document(product)
    if document is not None and is_paid(document) and not (merged.get("refund_policy") or "").strip():
        problems.append(Missing("refund_policy", "a paid listing must state its refund policy and a contact", "LST-07"))
    return problems


# --- facets, used by search filters -------------------------------------------------------------------------


def _document(product: Product) -> PricingDocument | None:
    return PricingDocument.model_validate(product.pricing) if product.pricing else None


def set_facets(product: Product) -> None:
    """The columns search filters and LST-04 use, derived from the listing (no I/O)."""
    listing = product.listing
    document = _document(product)
    product.category = listing.get("category")
    product.pricing_family = pricing_family(document) if document else None
    product.free_trial = bool(document and document.free_trial_days)
    product.enterprise_only = bool(listing.get("enterprise_only"))
    managed = listing.get("managed_service")
    product.managed_service_id = managed.get("service_id") if managed else None


def sync_facets(session: Session, product: Product) -> None:
    set_facets(product)
    _flush_unique(session, product)
    listing = product.listing
    wanted = set(listing.get("regions") or [])
    have = set(session.scalars(select(ProductRegion.region).where(ProductRegion.product_id == product.id)))
    if wanted != have:
        session.execute(delete(ProductRegion).where(ProductRegion.product_id == product.id))
        session.add_all(ProductRegion(product_id=product.id, region=r) for r in sorted(wanted))


# --- review ---------------------------------------------------------------------------------------------


def seller_of(session: Session, product: Product) -> Seller:
    return session.get_one(Seller, product.seller_id)


def missing_for_submission(session: Session, product: Product) -> list[Missing]:
    """Everything that stands between this listing and submission, each with its field."""
    listing = product.listing
    missing = [Missing(f, "required to submit") for f in ("short_description", "category") if not listing.get(f)]
    if not listing.get("regions"):
        missing.append(Missing("regions", "list at least one region"))
    kinds = set(session.scalars(select(ProductAsset.kind).where(ProductAsset.product_id == product.id)))
    if AssetKind.LOGO not in kinds:
        missing.append(Missing("assets.logo", "upload a PNG logo", "LST-03"))
    if AssetKind.USER_GUIDE not in kinds:
        missing.append(Missing("assets.user_guide", "upload the user guide as a PDF", "LST-03"))
    if product.kind == "managed_service" and not listing.get("managed_service"):
        missing.append(Missing("managed_service", "name the managed service this product sells", "LST-04"))
    document = _document(product)
    if document is None:
        missing.append(Missing("pricing", "required to submit"))
        return missing
    seller = seller_of(session, product)
    launched = product.published_at.date() if product.published_at else None
    result = validate_pricing(
        document, PricingContext(product.kind, seller.tax_form, launched_on=launched, as_of=clock.now().date())
    )
    missing += [Missing(f"pricing.{v.path}", v.message, v.rule) for v in result.violations]
    if is_paid(document) and not (listing.get("refund_policy") or "").strip():
        missing.append(Missing("refund_policy", "a paid listing must state its refund policy and a contact", "LST-07"))
    return missing


def _operators_emails(session: Session) -> list[str]:
    """Where review requests go: each operator's e-mail, or its outbox address when it has none."""
    return [email or f"operator:{handle}" for handle, email in session.execute(select(Operator.handle, Operator.email))]


def _seller_email(seller: Seller) -> str:
    return seller.email or f"seller:{seller.handle}"


def submit(session: Session, principal: Principal, code: str) -> Product:
    product = get_managed(session, principal, code)
    target = _transition(product, "submit")
    missing = missing_for_submission(session, product)
    if missing:
        raise Invalid.of([m.located() for m in missing], prefix="the listing is not ready to submit: ")
    product.submitted_at = clock.now()
    product.rejection_reason = None
    _set_state(session, product, target, actor=principal.actor, action="submit")
    for address in _operators_emails(session):
        notify(
            session,
            to=address,
            kind="review_requested",
            subject=f"Review requested: {product.title}",
            body=f"{seller_of(session, product).name} submitted {product.code} for category review.",
        )
    return product


def approve(session: Session, principal: Principal, code: str, reason: str | None) -> Product:
    product = get_managed(session, principal, code)
    target = _transition(product, "approve")
    _set_state(session, product, target, actor=principal.actor, action="approve", reason=reason)
    jobs.enqueue(
        session,
        "catalog.publish",
        {"product_id": product.id},
    )
    seller = seller_of(session, product)
    notify(
        session,
        to=_seller_email(seller),
        kind="listing_approved",
        subject=f"Approved: {product.title}",
        body=f"{product.code} passed category review and is being published." + (f"\n\n{reason}" if reason else ""),
    )
    return product


def reject(session: Session, principal: Principal, code: str, reason: str) -> Product:
    if not reason.strip():
        raise Invalid.at("reason", "a rejection must say what to fix", "required")
    product = get_managed(session, principal, code)
    target = _transition(product, "reject")
    product.rejection_reason = reason
    _set_state(session, product, target, actor=principal.actor, action="reject", reason=reason)
    seller = seller_of(session, product)
    notify(
        session,
        to=_seller_email(seller),
        kind="listing_rejected",
        subject=f"Changes needed: {product.title}",
        body=f"{product.code} was returned to draft by the category review:\n\n{reason}",
    )
    return product


def finish_publishing(session: Session, product: Product, regions: list[str]) -> None:
    target = _transition(product, "published")
    product.listing = {**product.listing, "published_regions": regions}
    _set_state(session, product, target, actor="system:publisher", action="published", regions=regions)
    notify(
        session,
        to=_seller_email(seller_of(session, product)),
        kind="listing_limited",
        subject=f"Ready to test: {product.title}",
        body=f"{product.code} is published in limited mode: only you can see it. Sign off to make it public.",
    )


def sign_off(session: Session, principal: Principal, code: str) -> Product:
    product = get_managed(session, principal, code)
    if principal.role is not Role.SELLER:
        raise Forbidden("only the product's seller signs off its listing")
    target = _transition(product, "sign_off")
    product.published_at = product.published_at or clock.now()
    _set_state(session, product, target, actor=principal.actor, action="sign_off")
    search.index(session, product)
    pricing_service.launch_price(session, product, actor=principal.actor)
    for address in _operators_emails(session):
        notify(
            session,
            to=address,
            kind="listing_public",
            subject=f"Now public: {product.title}",
            body=f"{product.code} was signed off by its seller and is public.",
        )
    return product


def restrict(session: Session, principal: Principal, code: str, reason: str | None) -> Product:
    product = get_managed(session, principal, code)
    target = _transition(product, "restrict")
    _set_state(session, product, target, actor=principal.actor, action="restrict", reason=reason)
    search.unindex(session, product)
    return product


def reinstate(session: Session, principal: Principal, code: str) -> Product:
    product = get_managed(session, principal, code)
    target = _transition(product, "reinstate")
    _set_state(session, product, target, actor=principal.actor, action="reinstate")
    search.index(session, product)
    return product


# --- change requests ------------------------------------------------------------------------------------


def decide_change(
    session: Session, principal: Principal, request_id: int, *, approve: bool, reason: str | None
) -> ChangeRequest:
    request = session.get(ChangeRequest, request_id)
    if request is None:
        raise NotFound(f"no change request {request_id}")
    decide(request, principal, approve=approve, reason=reason, what="change request")
    product = session.get_one(Product, request.product_id)
    if approve:
        before: dict[str, Any] | None = _current(product, request.changes)
        changes = dict(request.changes)
        if "pricing" in changes and pricing_service.versions(session, product):
            # Requested before launch, decided after: prices are versioned and noticed, never overwritten.
            new_prices = PricingDocument.model_validate(changes.pop("pricing"))
            if new_prices.stored() != product.pricing:
                pricing_service.add_version(session, product, new_prices, actor=principal.actor)
        apply_changes(session, product, changes)
        if product.state == S.PUBLIC:
            search.index(session, product)
    else:
        before = None
    audit.record(
        session,
        actor=principal.actor,
        action=f"change_request.{request.state[:-1] if approve else 'reject'}",
        target_type="product",
        target_id=product.code,
        before=before,
        after={"change_request": request.id, "state": request.state, "reason": reason},
    )
    seller = seller_of(session, product)
    notify(
        session,
        to=_seller_email(seller),
        kind=f"change_{request.state}",
        subject=f"Change {request.state}: {product.title}",
        body=f"Your change to {product.code} was {request.state}." + (f"\n\n{reason}" if reason else ""),
    )
    return request


def validate_patch(data: dict[str, Any]) -> ListingFields:
    try:
        return ListingFields.model_validate(data)
    except ValidationError as exc:
        raise Invalid.of([(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None


def pending_changes(session: Session) -> list[tuple[ChangeRequest, Product]]:
    rows = session.execute(
        select(ChangeRequest, Product)
        .join(Product, Product.id == ChangeRequest.product_id)
        .where(ChangeRequest.state == "pending")
        .order_by(ChangeRequest.created_at)
    )
    return [(r, p) for r, p in rows]


def review_queue(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).where(Product.state == S.SUBMITTED).order_by(Product.submitted_at)))


def count_assets(session: Session, product: Product, kind: AssetKind) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ProductAsset)
            .where(ProductAsset.product_id == product.id, ProductAsset.kind == kind.value)
        )
        or 0
    )
