"""`agora load`: check the whole manifest, then apply it in one transaction, idempotently.

Every problem is reported (not only the first), and nothing is written unless there are none.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from agora import audit, clock
from agora.auth import hash_token
from agora.catalog import search
from agora.catalog.entity_ids import new_offer_id, new_product_id
from agora.catalog.schemas import ProductState, preview_problem
from agora.catalog.service import sync_facets
from agora.config import get_settings
from agora.errors import AgoraError, Invalid
from agora.identities import passwords
from agora.identities import service as identities
from agora.manifest.errors import problems_from
from agora.manifest.parse import ManifestError, Problem, read_file
from agora.manifest.schema import BuyerIn, Manifest, OfferIn, OperatorIn, ProductIn, SellerIn, SubscriptionIn
from agora.models import (
    AccessKey,
    ApiToken,
    Buyer,
    Offer,
    Operator,
    PriceVersion,
    Product,
    Role,
    Seller,
    Subscription,
)
from agora.offers import service as offers
from agora.pricing import service as pricing_service
from agora.pricing.rules import PricingContext, is_paid, validate_pricing
from agora.pricing.rules_change import change_violations
from agora.pricing.schema import PricingDocument
from agora.subscriptions import annual, contracts
from agora.subscriptions import service as subscriptions

MANIFEST_ACTOR = "operator:manifest"
PUBLISHED = (ProductState.PUBLIC, ProductState.LIMITED)  # loaded as if reviewed and published (LST-05/06)
LISTING_EXCLUDE = {"code", "seller", "kind", "title", "state", "pricing", "entity_id", "public_offer_entity_id"}


@dataclass
class LoadReport:
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, entity: str, outcome: str) -> None:
        self.counts.setdefault(entity, Counter())[outcome] += 1

    @property
    def changed(self) -> bool:
        return any(c["created"] or c["updated"] for c in self.counts.values())

    def summary(self) -> str:
        parts = []
        for entity, c in self.counts.items():
            detail = ", ".join(f"{n} {k}" for k, n in sorted(c.items()) if n)
            parts.append(f"{sum(c.values())} {entity} ({detail})")
        return "; ".join(parts) if parts else "nothing in the manifest"


def parse_manifest(data: Any) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(problems_from(exc, Manifest)) from None


def load_file(path: Path) -> Manifest:
    return parse_manifest(read_file(path))


def load_data(
    data: Any,
    session: Session,
    *,
    actor: str = MANIFEST_ACTOR,
    subscriptions: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Parse, check and apply a manifest read from a file. Every problem — shape and references — is
    reported together, and nothing is written unless there is none. With `subscriptions=False` the
    subscriptions are checked but left for the caller to apply, each at its `at` (`agora simulate`)."""
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        problems = list(exc.problems)
        partial = parse_partial(data)
        if partial is not None:
            problems += check_partial(partial, session)
        raise ManifestError(problems) from None
    return apply(manifest, session, actor=actor, subscriptions=subscriptions, progress=progress)


def default_customer_identifier(sub: SubscriptionIn) -> str:
    return sub.customer_identifier or f"{sub.product}-{sub.buyer}"


# --- checks that need the whole manifest and the database ------------------------------------------------


def _duplicates(items: Iterable[tuple[str, str]], what: str, *, show: bool = True) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for path, key in items:
        if key in seen:
            named = f"{what} {key!r}" if show else what
            problems.append(Problem(path, f"duplicate {named} (first at {seen[key]})"))
        else:
            seen[key] = path
    return problems


@dataclass
class Partial:
    """What could be read of a manifest with shape problems: the valid entries (so references can still be
    checked), where each came from in the file, and the ids named by entries that were refused."""

    manifest: Manifest
    positions: dict[str, list[int]]
    unresolved: dict[str, set[str]]


SECTIONS: dict[str, tuple[type[SellerIn | BuyerIn | OperatorIn | ProductIn | SubscriptionIn | OfferIn], str | None]] = {
    "sellers": (SellerIn, "id"),
    "buyers": (BuyerIn, "account"),
    "operators": (OperatorIn, "id"),
    "products": (ProductIn, "code"),
    "subscriptions": (SubscriptionIn, None),
    "offers": (OfferIn, None),
}


def parse_partial(data: Any) -> Partial | None:
    """The valid part of a manifest whose whole did not validate, or None if even that cannot be read."""
    if not isinstance(data, dict):
        return None
    kept: dict[str, Any] = {k: v for k, v in data.items() if k not in SECTIONS}
    positions: dict[str, list[int]] = {}
    unresolved: dict[str, set[str]] = {}
    for section, (model, key) in SECTIONS.items():
        items = data.get(section) or []
        if not isinstance(items, list):
            return None
        kept[section], positions[section], unresolved[section] = [], [], set()
        for i, item in enumerate(items):
            try:
                model.model_validate(item)
            except ValidationError:
                if key and isinstance(item, dict) and isinstance(item.get(key), str):
                    unresolved[section].add(item[key])
                continue
            kept[section].append(item)
            positions[section].append(i)
    try:
        manifest = Manifest.model_validate(kept)
    except ValidationError:
        return None
    return Partial(manifest, positions, unresolved)


_POSITION_RE = re.compile(r"^(sellers|buyers|operators|products|subscriptions|offers)\[(\d+)\]")


def _at_positions(problems: list[Problem], positions: dict[str, list[int]]) -> list[Problem]:
    def remap(path: str) -> str:
        found = _POSITION_RE.match(path)
        if not found:
            return path
        original = positions[found.group(1)][int(found.group(2))]
        return f"{found.group(1)}[{original}]" + path[found.end() :]

    return [Problem(remap(p.path), p.message, p.rule) for p in problems]


def check_partial(partial: Partial, session: Session) -> list[Problem]:
    """Reference problems of the valid entries, located in the original file; references to refused
    entries are not reported again."""
    problems = check(partial.manifest, session, unresolved=partial.unresolved)
    return _at_positions(problems, partial.positions)


def check(manifest: Manifest, session: Session, *, unresolved: dict[str, set[str]] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    region = get_settings().region
    if manifest.region and manifest.region != region:
        problems.append(
            Problem("region", f"the manifest is for {manifest.region} but this marketplace runs in {region}")
        )
    problems += _duplicates(((f"sellers[{i}].id", s.id) for i, s in enumerate(manifest.sellers)), "seller id")
    problems += _duplicates(
        ((f"buyers[{i}].account", b.account) for i, b in enumerate(manifest.buyers)), "buyer account"
    )
    problems += _duplicates(((f"operators[{i}].id", o.id) for i, o in enumerate(manifest.operators)), "operator id")
    problems += _duplicates(((f"products[{i}].code", p.code) for i, p in enumerate(manifest.products)), "product code")
    problems += _check_entity_ids(manifest, session)
    problems += _duplicates(
        (
            (f"subscriptions[{i}].customer_identifier", f"{s.product}/{default_customer_identifier(s)}")
            for i, s in enumerate(manifest.subscriptions)
        ),
        "customer identifier for product",
    )
    problems += _duplicates(
        ((f"subscriptions[{i}].product", f"{s.buyer}/{s.product}") for i, s in enumerate(manifest.subscriptions)),
        "subscription of buyer/product",
    )
    problems += _check_credentials(manifest, session)

    refused = unresolved or {}
    sellers = {s.id for s in manifest.sellers} | set(session.scalars(select(Seller.handle)))
    sellers |= refused.get("sellers", set())
    buyers: dict[str, bool | None] = {b.account: b.enterprise for b in manifest.buyers}
    buyers |= dict.fromkeys(refused.get("buyers", set()))
    for account, enterprise in session.execute(select(Buyer.account, Buyer.enterprise)):
        buyers.setdefault(account, enterprise)
    products: dict[str, ProductIn | Product] = {p.code: p for p in manifest.products}
    owners = {code: handle for code, handle in session.execute(select(Product.code, Seller.handle).join(Seller))}
    for product in session.scalars(select(Product)):
        products.setdefault(product.code, product)

    tax_forms: dict[str, str] = {s.id: s.tax_form for s in manifest.sellers}
    for handle, tax_form in session.execute(select(Seller.handle, Seller.tax_form)):
        tax_forms.setdefault(handle, tax_form)
    launched = {
        code: published.date()
        for code, published in session.execute(select(Product.code, Product.published_at))
        if published is not None
    }
    published_pricing = _published_pricing(session)
    for i, product_in in enumerate(manifest.products):
        if product_in.seller in tax_forms:
            problems += _check_listing(f"products[{i}]", product_in, tax_forms[product_in.seller], launched)
        if product_in.seller not in sellers:
            problems.append(Problem(f"products[{i}].seller", f"unknown seller {product_in.seller!r}", "SEL-01"))
        published = published_pricing.get(product_in.code)
        if published is not None and product_in.pricing is not None:
            problems += [
                Problem(f"products[{i}].pricing" + (f".{v.path}" if v.path else ""), v.message, v.rule)
                for v in change_violations(PricingDocument.model_validate(published), product_in.pricing)
            ]
        owner = owners.get(product_in.code)
        if owner is not None and owner != product_in.seller:
            problems.append(Problem(f"products[{i}].code", f"{product_in.code!r} belongs to seller {owner!r}"))

    holders = {
        (code, identifier): account
        for code, identifier, account in session.execute(
            select(Product.code, Subscription.customer_identifier, Buyer.account)
            .join(Product, Product.id == Subscription.product_id)
            .join(Buyer, Buyer.id == Subscription.buyer_id)
        )
    }
    active = {
        (account, code): identifier
        for account, code, identifier in session.execute(
            select(Buyer.account, Product.code, Subscription.customer_identifier)
            .join(Product, Product.id == Subscription.product_id)
            .join(Buyer, Buyer.id == Subscription.buyer_id)
            .where(Subscription.ended_at.is_(None))
        )
    }
    for i, sub in enumerate(manifest.subscriptions):
        path = f"subscriptions[{i}]"
        holder = holders.get((sub.product, default_customer_identifier(sub)))
        other = active.get((sub.buyer, sub.product))
        if other is not None and other != default_customer_identifier(sub):
            problems.append(
                Problem(
                    f"{path}.product",
                    f"buyer {sub.buyer} already subscribes to {sub.product!r} as {other!r}; one active subscription"
                    " per buyer and product",
                )
            )
        if holder is not None and holder != sub.buyer and sub.buyer in buyers:
            problems.append(
                Problem(
                    f"{path}.customer_identifier",
                    f"{default_customer_identifier(sub)!r} already identifies buyer {holder} on {sub.product!r}",
                )
            )
        if sub.buyer not in buyers:
            problems.append(Problem(f"{path}.buyer", f"unknown buyer account {sub.buyer!r}"))
        target = products.get(sub.product)
        if target is None and sub.product in refused.get("products", set()):
            continue
        if target is None:
            problems.append(Problem(f"{path}.product", f"unknown product {sub.product!r}"))
            continue
        problems += _check_purchase(path, sub, target, buyers.get(sub.buyer))
    problems += _check_offers(manifest, session, buyers, products, refused)
    return problems


def offer_public_id(offer_in: OfferIn) -> str:
    """The marketplace's id of a manifest offer: the same for every load of the file, so a reload finds it."""
    return "offer-" + hashlib.sha256(f"manifest:{offer_in.id}".encode()).hexdigest()[:16]


def _check_offers(
    manifest: Manifest,
    session: Session,
    buyers: dict[str, bool | None],
    products: dict[str, ProductIn | Product],
    refused: dict[str, set[str]],
) -> list[Problem]:
    """References and ids of the offers; their terms are checked by the offers service as they are applied."""
    problems = _duplicates(((f"offers[{i}].id", o.id) for i, o in enumerate(manifest.offers)), "offer id")
    problems += _duplicates(
        ((f"offers[{i}].entity_id", o.entity_id) for i, o in enumerate(manifest.offers) if o.entity_id),
        "offer entity id",
    )
    agreements = [
        (f"subscriptions[{i}].agreement_id", s.agreement_id, (s.product, default_customer_identifier(s)))
        for i, s in enumerate(manifest.subscriptions)
        if s.agreement_id
    ] + [
        (f"offers[{i}].agreement_id", o.agreement_id, (o.product, offer_public_id(o)))
        for i, o in enumerate(manifest.offers)
        if o.agreement_id
    ]
    problems += _duplicates(((path, agreement_id) for path, agreement_id, _ in agreements), "agreement id")
    holders = {
        agreement_id: (code, identifier, offer_public)
        for agreement_id, code, identifier, offer_public in session.execute(
            select(Subscription.agreement_id, Product.code, Subscription.customer_identifier, Offer.public_id)
            .join(Product, Product.id == Subscription.product_id)
            .outerjoin(Offer, Offer.id == Subscription.offer_id)
            .where(Subscription.agreement_id.in_([a for _, a, _ in agreements]))
        )
    }
    for path, agreement_id, (code, name) in agreements:
        held = holders.get(agreement_id)
        if held is not None and (held[0], held[1]) != (code, name) and (held[0], held[2]) != (code, name):
            problems.append(Problem(path, f"{agreement_id!r} is already the agreement id of another subscription"))
    entity_holders: dict[str | None, str] = {
        entity_id: public_id
        for entity_id, public_id in session.execute(
            select(Offer.entity_id, Offer.public_id).where(
                Offer.entity_id.in_([o.entity_id for o in manifest.offers if o.entity_id])
            )
        )
    }
    subscribed = {(s.buyer, s.product) for s in manifest.subscriptions}
    for i, offer_in in enumerate(manifest.offers):
        path = f"offers[{i}]"
        holder = entity_holders.get(offer_in.entity_id) if offer_in.entity_id else None
        if holder is not None and holder != offer_public_id(offer_in):
            problems.append(Problem(f"{path}.entity_id", f"{offer_in.entity_id!r} is already another offer's id"))
        if offer_in.buyer not in buyers:
            problems.append(Problem(f"{path}.buyer", f"unknown buyer account {offer_in.buyer!r}"))
        if offer_in.product not in products and offer_in.product not in refused.get("products", set()):
            problems.append(Problem(f"{path}.product", f"unknown product {offer_in.product!r}"))
        if offer_in.state == "accepted" and (offer_in.buyer, offer_in.product) in subscribed:
            problems.append(
                Problem(
                    f"{path}.state",
                    f"buyer {offer_in.buyer} also has a subscription to {offer_in.product!r} in this file; an "
                    "accepted offer is the buyer's subscription (one active subscription per buyer and product)",
                )
            )
    return problems


def _published_pricing(session: Session) -> dict[str, dict[str, Any]]:
    """The current version's pricing of every product that has price versions (i.e. was published)."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    rows = session.execute(select(Product.code, PriceVersion.number, PriceVersion.pricing).join(PriceVersion))
    for code, number, pricing in rows:
        if code not in latest or number > latest[code][0]:
            latest[code] = (number, pricing)
    return {code: pricing for code, (_, pricing) in latest.items()}


def _check_entity_ids(manifest: Manifest, session: Session) -> list[Problem]:
    """A product's Catalog API ids are unique across the file and the marketplace: a fixed id may be one the
    product already has, never another product's."""
    fixed = [
        (f"products[{i}].{column}", getattr(p, column), p.code)
        for i, p in enumerate(manifest.products)
        for column in ("entity_id", "public_offer_entity_id")
        if getattr(p, column)
    ]
    problems = _duplicates(((path, value) for path, value, _ in fixed), "entity id")
    for path, value, code in fixed:
        owner = session.scalar(
            select(Product.code).where(or_(Product.entity_id == value, Product.public_offer_entity_id == value))
        )
        if owner is not None and owner != code:
            problems.append(Problem(path, f"entity id {value!r} is product {owner!r}'s"))
    return problems


def _check_listing(path: str, product: ProductIn, tax_form: str, launched: dict[str, date]) -> list[Problem]:
    """The rules a listing must meet to be stored: its pricing (PRC-*, SEL-02), and for a product loaded
    straight to public or limited (as if reviewed, LST-05/06), what submission would have required (LST-07)."""
    problems: list[Problem] = []
    if message := preview_problem(product.kind, product.ml):
        problems.append(Problem(f"{path}.ml.preview", message.removesuffix(" [BIL-05]"), "BIL-05"))
    if product.pricing is not None:
        today = clock.now().date()
        launched_on = launched.get(product.code) or (today if product.state == ProductState.PUBLIC else None)
        context = PricingContext(product.kind.value, tax_form, launched_on=launched_on, as_of=today)
        result = validate_pricing(product.pricing, context)
        # SEL-02 is about publishing a paid model: a draft may wait for its seller's tax form.
        violations = [v for v in result.violations if v.rule != "SEL-02" or product.state in PUBLISHED]
        problems += [Problem(f"{path}.pricing.{v.path}", v.message, v.rule) for v in violations]
    elif product.state in PUBLISHED:
        problems.append(Problem(f"{path}.pricing", f"a {product.state} product needs pricing"))
    if (
        product.state in PUBLISHED
        and product.pricing is not None
        and is_paid(product.pricing)
        and not (product.refund_policy or "").strip()
    ):
        problems.append(
            Problem(f"{path}.refund_policy", "a paid listing must state its refund policy and a contact", "LST-07")
        )
    return problems


def _product_facts(target: ProductIn | Product) -> tuple[str, bool, dict[str, Any]]:
    if isinstance(target, ProductIn):
        pricing = target.pricing.stored() if target.pricing else {}
        return target.state, bool(target.enterprise_only), pricing
    return target.state, bool(target.listing.get("enterprise_only")), target.pricing or {}


def _check_purchase(
    path: str, sub: SubscriptionIn, target: ProductIn | Product, enterprise: bool | None
) -> list[Problem]:
    problems = []
    state, enterprise_only, pricing = _product_facts(target)
    if state != ProductState.PUBLIC:
        problems.append(Problem(f"{path}.product", f"{sub.product!r} is {state}; only public products can be bought"))
    if enterprise_only and enterprise is False:
        problems.append(Problem(f"{path}.buyer", f"{sub.product!r} is sold to enterprise buyers only", "LST-09"))
    if sub.contract:
        dims = {d["name"]: d for d in pricing.get("contract", {}).get("dimensions", [])}
        if not dims:
            problems.append(Problem(f"{path}.contract", f"{sub.product!r} has no contract pricing", "PRC-10"))
        for name in sub.contract.quantities:
            dim = dims.get(name)
            if dims and dim is None:
                problems.append(
                    Problem(f"{path}.contract.quantities.{name}", f"not a contract dimension of {sub.product!r}")
                )
            elif dim and str(sub.contract.duration_months) not in dim["prices"]:
                problems.append(
                    Problem(
                        f"{path}.contract.duration_months",
                        f"{name} has no {sub.contract.duration_months}-month price",
                        "PRC-10",
                    )
                )
    for instance_type in sub.annual or {}:
        if instance_type not in pricing.get("annual", {}):
            problems.append(
                Problem(f"{path}.annual.{instance_type}", f"{sub.product!r} has no annual price for it", "SUB-03")
            )
    return problems


def _owners(manifest: Manifest) -> Iterable[tuple[str, Role, str, SellerIn | BuyerIn | OperatorIn]]:
    for i, s in enumerate(manifest.sellers):
        yield f"sellers[{i}]", Role.SELLER, s.id, s
    for i, b in enumerate(manifest.buyers):
        yield f"buyers[{i}]", Role.BUYER, b.account, b
    for i, o in enumerate(manifest.operators):
        yield f"operators[{i}]", Role.OPERATOR, o.id, o


def _check_credentials(manifest: Manifest, session: Session) -> list[Problem]:
    tokens: list[tuple[str, str]] = []
    keys: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path, role, handle, owner in _owners(manifest):
        for j, token in enumerate(owner.api_tokens):
            tokens.append((f"{path}.api_tokens[{j}]", token))
            existing = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
            if existing is not None and not _same_owner(session, existing, role, handle):
                problems.append(Problem(f"{path}.api_tokens[{j}]", "this token already belongs to another account"))
        for j, key in enumerate(owner.access_keys):
            keys.append((f"{path}.access_keys[{j}].id", key.id))
            found = session.get(AccessKey, key.id)
            if found is not None and not _same_owner(session, found, role, handle):
                problems.append(
                    Problem(f"{path}.access_keys[{j}].id", f"access key {key.id} belongs to another account")
                )
    problems += _duplicates(tokens, "API token", show=False)
    problems += _duplicates(keys, "access key id")
    return problems


def _same_owner(session: Session, cred: ApiToken | AccessKey, role: Role, handle: str) -> bool:
    if Role(cred.role) is not role:
        return False
    subject: Operator | Seller | Buyer | None
    if cred.operator_id is not None:
        subject = session.get(Operator, cred.operator_id)
        return subject is not None and subject.handle == handle
    if cred.seller_id is not None:
        subject = session.get(Seller, cred.seller_id)
        return subject is not None and subject.handle == handle
    subject = session.get(Buyer, cred.buyer_id)
    return subject is not None and subject.account == handle


# --- applying ---------------------------------------------------------------------------------------------


def apply(
    manifest: Manifest,
    session: Session,
    *,
    actor: str = MANIFEST_ACTOR,
    subscriptions: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Check, then write everything. Raises ManifestError (and writes nothing) if anything is wrong.
    `progress(done, total)` hears each seller, buyer, operator, product and subscription applied."""
    problems = check(manifest, session)
    if manifest.offers and not subscriptions:
        problems.append(
            Problem("offers", "`agora simulate` plays private offers as offer_create and offer_accept events")
        )
    if problems:
        raise ManifestError(problems)
    report = LoadReport()
    entries = (manifest.sellers, manifest.buyers, manifest.operators, manifest.products)
    total = sum(len(entry) for entry in entries) + len(manifest.offers)
    total += len(manifest.subscriptions) if subscriptions else 0
    step = _Steps(progress, total)
    for seller_in in manifest.sellers:
        seller = _upsert(
            session,
            report,
            actor,
            "seller",
            Seller,
            {"handle": seller_in.id},
            {
                "name": seller_in.name,
                "email": seller_in.email,
                "tax_form": seller_in.tax_form,
                "data_sharing": seller_in.data_sharing,
            },
        )
        _credentials(session, report, Role.SELLER, seller.id, seller_in)
        step()
    for buyer_in in manifest.buyers:
        buyer = _upsert(
            session,
            report,
            actor,
            "buyer",
            Buyer,
            {"account": buyer_in.account},
            {"email": buyer_in.email, "enterprise": buyer_in.enterprise},
        )
        _credentials(session, report, Role.BUYER, buyer.id, buyer_in)
        step()
    for operator_in in manifest.operators:
        operator = _upsert(
            session,
            report,
            actor,
            "operator",
            Operator,
            {"handle": operator_in.id},
            {"name": operator_in.name, "email": operator_in.email},
        )
        _credentials(session, report, Role.OPERATOR, operator.id, operator_in)
        step()
    for product_in in manifest.products:
        _apply_product(session, report, actor, product_in)
        step()
    for sub_in in manifest.subscriptions if subscriptions else ():
        apply_subscription(session, sub_in, actor=actor, report=report)
        step()
    for i, offer_in in enumerate(manifest.offers):
        apply_offer(session, offer_in, f"offers[{i}]", actor=actor, report=report)
        step()
    session.flush()
    return report


@dataclass
class _Steps:
    tell: Callable[[int, int], None] | None
    total: int
    done: int = 0

    def __call__(self) -> None:
        self.done += 1
        if self.tell is not None:
            self.tell(self.done, self.total)


def _upsert(
    session: Session,
    report: LoadReport,
    actor: str,
    entity: str,
    model: Any,
    key: dict[str, Any],
    values: dict[str, Any],
) -> Any:
    ((column, value),) = key.items()
    row = session.scalar(select(model).where(getattr(model, column) == value))
    if row is None:
        row = model(**key, **values)
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=f"{entity}.create",
            target_type=entity,
            target_id=value,
            after=_jsonable(values),
        )
        report.count(entity + "s", "created")
        return row
    before = {k: getattr(row, k) for k in values}
    if before == values:
        report.count(entity + "s", "unchanged")
        return row
    for k, v in values.items():
        setattr(row, k, v)
    audit.record(
        session,
        actor=actor,
        action=f"{entity}.update",
        target_type=entity,
        target_id=value,
        before=_jsonable(before),
        after=_jsonable(values),
    )
    report.count(entity + "s", "updated")
    return row


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}


def _credentials(
    session: Session, report: LoadReport, role: Role, subject_id: int, owner: SellerIn | BuyerIn | OperatorIn
) -> None:
    if owner.password is not None:
        changed = passwords.set_password(session, role, subject_id, owner.password, actor=MANIFEST_ACTOR)
        report.count("passwords", "updated" if changed else "unchanged")
    for token in owner.api_tokens:
        cred, created = identities.add_token(session, role, subject_id, token)
        report.count("api tokens", "created" if created else "unchanged")
        if created:
            audit.record(
                session,
                actor=MANIFEST_ACTOR,
                action="api_token.create",
                target_type=role.value,
                target_id=subject_id,
                after={"token_hint": cred.hint},
            )
    for key in owner.access_keys:
        _, outcome = identities.add_access_key(session, role, subject_id, key.id, key.secret)
        report.count("access keys", outcome)
        if outcome != "unchanged":
            audit.record(
                session,
                actor=MANIFEST_ACTOR,
                action=f"access_key.{'create' if outcome == 'created' else 'rotate'}",
                target_type=role.value,
                target_id=subject_id,
                after={"access_key_id": key.id},
            )


def _apply_product(session: Session, report: LoadReport, actor: str, product_in: ProductIn) -> None:
    seller = session.scalars(select(Seller).where(Seller.handle == product_in.seller)).one()
    now = clock.now()
    values: dict[str, Any] = {
        "seller_id": seller.id,
        "kind": product_in.kind.value,
        "title": product_in.title,
        "state": product_in.state,
        "listing": _listing(product_in),
        "pricing": product_in.pricing.stored() if product_in.pricing else None,
    }
    product = session.scalar(select(Product).where(Product.code == product_in.code))
    if product is None:
        product = Product(
            code=product_in.code,
            updated_at=now,
            entity_id=product_in.entity_id or new_product_id(),
            public_offer_entity_id=product_in.public_offer_entity_id or new_offer_id(),
            **values,
        )
        product.published_at = now if product_in.state == ProductState.PUBLIC else None
        session.add(product)
        session.flush()
        _sync_catalog(session, product)
        audit.record(
            session,
            actor=actor,
            action="product.create",
            target_type="product",
            target_id=product.code,
            after=_summary(values),
        )
        report.count("products", "created")
        return
    for column in ("entity_id", "public_offer_entity_id"):  # a manifest may fix an existing product's ids
        fixed = getattr(product_in, column)
        if fixed and getattr(product, column) != fixed:
            setattr(product, column, fixed)
    before = {k: getattr(product, k) for k in values}
    if before == values:
        report.count("products", "unchanged")
        return
    versioned = bool(pricing_service.versions(session, product))
    new_pricing = values["pricing"]
    for k, v in values.items():
        if k != "pricing" or not versioned:
            setattr(product, k, v)
    product.updated_at = now
    if product_in.state == ProductState.PUBLIC and product.published_at is None:
        product.published_at = now
    _sync_catalog(session, product)
    if versioned and new_pricing != before["pricing"] and product_in.pricing is not None:
        # Prices are never overwritten: the new ones become the next version, noticed now (CHG-01/02).
        pricing_service.add_version(session, product, product_in.pricing, actor=actor)
    audit.record(
        session,
        actor=actor,
        action="product.update",
        target_type="product",
        target_id=product.code,
        before=_summary(before),
        after=_summary(values),
    )
    report.count("products", "updated")


def _listing(product_in: ProductIn) -> dict[str, Any]:
    listing = product_in.model_dump(mode="json", exclude_none=True, exclude=LISTING_EXCLUDE)
    if product_in.state == ProductState.LIMITED:  # as publishing leaves it (LST-06)
        listing["published_regions"] = list(product_in.regions or [])
    return listing


def _sync_catalog(session: Session, product: Product) -> None:
    sync_facets(session, product)
    if product.state == ProductState.PUBLIC:
        search.index(session, product)
        pricing_service.launch_price(session, product, actor=MANIFEST_ACTOR)
    else:
        search.unindex(session, product)


def _summary(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in ("kind", "title", "state", "pricing") if k in values}


def apply_offer(
    session: Session, offer_in: OfferIn, path: str, *, actor: str = MANIFEST_ACTOR, report: LoadReport
) -> None:
    """Create one checked manifest offer as it stands; one loaded before is left as it is (an extended offer
    never changes, OFR-02)."""
    public_id = offer_public_id(offer_in)
    if session.scalar(select(Offer.id).where(Offer.public_id == public_id)) is not None:
        report.count("offers", "unchanged")
        return
    product = session.scalars(select(Product).where(Product.code == offer_in.product)).one()
    buyer = session.scalars(select(Buyer).where(Buyer.account == offer_in.buyer)).one()
    instalments = [(i.at.astimezone(UTC), i.amount) for i in offer_in.schedule or []]
    total = offer_in.total
    if total is None and instalments:
        total = sum((amount for _, amount in instalments), Decimal(0))
    data = {
        "pricing": offer_in.pricing,
        "duration_days": offer_in.duration_days,
        "accept_by": offer_in.accept_by.astimezone(UTC),
        "total": total,
        "schedule": [{"at": due.isoformat().replace("+00:00", "Z"), "amount": amount} for due, amount in instalments],
    }
    try:
        offers.load(
            session,
            product,
            buyer,
            data,
            public_id=public_id,
            state=offer_in.state,
            at=offer_in.at.astimezone(UTC),
            accepted_at=offer_in.accepted_at.astimezone(UTC) if offer_in.accepted_at else None,
            entity_id=offer_in.entity_id,
            agreement_id=offer_in.agreement_id,
            actor=actor,
        )
    except Invalid as error:
        raise ManifestError(
            [Problem(f"{path}.{p['loc']}", p["msg"]) for p in error.problems] or [Problem(path, error.detail)]
        ) from None
    except AgoraError as error:
        raise ManifestError([Problem(path, error.detail)]) from None
    report.count("offers", "created")


def apply_subscription(
    session: Session, sub_in: SubscriptionIn, *, actor: str = MANIFEST_ACTOR, report: LoadReport | None = None
) -> None:
    """Create (as the buyer subscribing at `at` would) or update one checked manifest subscription."""
    report = report or LoadReport()
    product = session.scalars(select(Product).where(Product.code == sub_in.product)).one()
    buyer = session.scalars(select(Buyer).where(Buyer.account == sub_in.buyer)).one()
    identifier = default_customer_identifier(sub_in)
    purchases = sub_in.model_dump(mode="json", include={"contract", "annual", "auto_renew"}, exclude_none=True)
    values: dict[str, Any] = {"buyer_id": buyer.id, "started_at": sub_in.at, "purchases": purchases}
    if sub_in.agreement_id is not None:
        values["agreement_id"] = sub_in.agreement_id
    sub = session.scalar(
        select(Subscription).where(
            Subscription.product_id == product.id, Subscription.customer_identifier == identifier
        )
    )
    target = f"{product.code}/{identifier}"
    if sub is None:
        # As if the buyer had subscribed at `at`: the same code as the API's subscribe, trial and all (SUB-01/02).
        sub = subscriptions.begin(
            session,
            buyer,
            product,
            actor=actor,
            eula=subscriptions.eula_of(session, product),
            at=sub_in.at,
            customer_identifier=identifier,
            agreement_id=sub_in.agreement_id,
        )
        sub.purchases = purchases
        if sub_in.contract is not None:
            contracts.record(
                session,
                sub,
                sub_in.contract.duration_months,
                dict(sub_in.contract.quantities),
                actor=actor,
                at=sub_in.at,
            )
        annual_prices = (product.pricing or {}).get("annual") or {}
        for instance_type, quantity in sorted((sub_in.annual or {}).items()):
            annual.record(
                session,
                sub,
                instance_type,
                quantity,
                Decimal(annual_prices[instance_type]),
                auto_renew=sub_in.auto_renew,
                actor=actor,
                at=sub_in.at,
            )
        report.count("subscriptions", "created")
        return
    before = {k: getattr(sub, k) for k in values}
    if before == values:
        report.count("subscriptions", "unchanged")
        return
    for k, v in values.items():
        setattr(sub, k, v)
    audit.record(
        session,
        actor=actor,
        action="subscription.update",
        target_type="subscription",
        target_id=target,
        before=_jsonable(before),
        after=_jsonable(values),
    )
    report.count("subscriptions", "updated")
