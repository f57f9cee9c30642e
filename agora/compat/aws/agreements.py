"""The AWS Marketplace Agreement API on `POST /` (`X-Amz-Target: AWSMPCommerceService_v20200301.*`, JSON 1.0):
SearchAgreements, DescribeAgreement and GetAgreementTerms over Agora's subscriptions (api-surface.md §4).

Every subscription is one agreement, whatever it was bought with: pay-as-you-go, a free trial, a contract, annual
purchases, or an accepted private offer (then the offer's terms are the agreement's). Its id is the subscription's
`agreement_id` (`agmt-…`, assigned when the subscription is created). A seller sees the agreements on its own
products (it is their proposer), a buyer its own (their acceptor); an agreement the caller may not see is not
found, never forbidden.

Choices where AWS's documentation is silent or Agora differs:

* A seller has no AWS account; its proposer `accountId` is 12 digits derived from its handle (`seller_account`),
  the same for every request and every database.
* An offer id is the offer's Catalog entity id (`offer-…`) when it has one, else its public id; a public
  subscription's offer is the product's public offer entity id, else `<product code>@public`. A resource id is
  the product's entity id, else its code.
* `status`: ACTIVE; CANCELLED once the buyer cancelled; REPLACED when a private offer the buyer accepted ended it;
  EXPIRED once an agreement with an end (an offer's duration, a contract's or annual purchase's term) is past it.
* `endTime` is absent for pay-as-you-go agreements (as AWS answers them); SearchAgreements sorts those last when
  ascending and first when descending (they end later than any dated one).
* `BeforeEndTime`/`AfterEndTime` take an ISO 8601 instant; an agreement without an end is after every instant.
* Paging tokens are offsets into the sorted result, good for the same filters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.compat.aws import protocol
from agora.compat.aws.protocol import Reply
from agora.db import Database
from agora.models import (
    AnnualPurchase,
    Buyer,
    Contract,
    ContractCharge,
    Entitlement,
    Offer,
    Product,
    Role,
    Seller,
    Subscription,
)
from agora.money import format_price, from_cents
from agora.pricing import service as pricing
from agora.pricing.schema import PricingDocument
from agora.subscriptions.contracts import add_months
from agora.validation import bad_text

log = logging.getLogger("agora.compat.aws.agreements")

TARGET_PREFIX = "AWSMPCommerceService_v20200301."
CONTENT_TYPE = "application/x-amz-json-1.0"
CATALOG = "AWSMarketplace"
AGREEMENT_TYPE = "PurchaseAgreement"
CURRENCY = "USD"
MAX_RESULTS = 50
MAX_FILTERS = 10
AGREEMENT_ID = re.compile(r"[A-Za-z0-9_/-]{1,64}")
FILTER_NAME = re.compile(r"[A-Za-z_]{1,32}")
NEXT_TOKEN = re.compile(r"o([0-9]{1,9})")
STATUSES = (
    "ACTIVE",
    "ARCHIVED",
    "CANCELLED",
    "EXPIRED",
    "RENEWED",
    "REPLACED",
    "ROLLED_BACK",
    "SUPERSEDED",
    "TERMINATED",
)
# Agora's product kinds as agreement resource types; the managed services (Alibaba Compute Nest's kind) have no
# AWS name and keep one of their own.
RESOURCE_TYPES = {
    "saas": "SaaSProduct",
    "ami": "AmiProduct",
    "container": "ContainerProduct",
    "ml_algorithm": "MachineLearningProduct",
    "ml_model": "MachineLearningProduct",
    "managed_service": "ManagedServiceProduct",
}
# Which filters a party may combine with AgreementType (which every search names, as on AWS).
PROPOSER_FILTERS = frozenset(
    {
        "PartyType",
        "AgreementType",
        "AcceptorAccountId",
        "ResourceIdentifier",
        "ResourceType",
        "OfferId",
        "OfferSetId",
        "Status",
        "BeforeEndTime",
        "AfterEndTime",
    }
)
ACCEPTOR_FILTERS = frozenset(
    {
        "PartyType",
        "AgreementType",
        "ResourceIdentifier",
        "ResourceType",
        "OfferId",
        "Status",
        "BeforeEndTime",
        "AfterEndTime",
    }
)
FILTERS = PROPOSER_FILTERS | ACCEPTOR_FILTERS


class AgreementError(Exception):
    """An error in the Agreement API's shape: `message`, and `reason`/`fields` (ValidationException) or
    `resourceId`/`resourceType` (ResourceNotFoundException)."""

    def __init__(self, code: str, message: str, status: int, **members: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members


def invalid(reason: str, field: str, message: str) -> AgreementError:
    return AgreementError(
        "ValidationException", message, 400, reason=reason, fields=[{"name": field, "message": message}]
    )


def handle(db: Database, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """One Agreement API request, start to finish; always a reply (errors included)."""
    request_id = str(uuid.uuid4())
    try:
        target = headers.get("x-amz-target", "")
        operation = OPERATIONS.get(target)
        if operation is None:
            raise AgreementError(
                "UnknownOperationException",
                f"unknown operation {target!r}; this endpoint serves {', '.join(sorted(OPERATIONS))}",
                400,
            )
        if method != "POST":
            raise AgreementError("UnknownOperationException", "AWS JSON operations are POST requests", 400)
        _, principal = protocol.verify(db, method, path, query, headers, body)
        if principal.role not in (Role.SELLER, Role.BUYER):
            raise AgreementError(
                "AccessDeniedException",
                "agreements are read with a seller's (proposer's) or a buyer's (acceptor's) access keys",
                403,
                reason="INVALID_ACCESS",
            )
        payload = _json(body)
        with db.reader() as session:
            result = operation(session, principal, payload)
        return _reply(200, result, request_id)
    except AgreementError as error:
        return _reply(
            error.status,
            {"__type": error.code, "message": error.message, "requestId": request_id, **error.members},
            request_id,
        )
    except protocol.sigv4.SignatureError as error:
        return _reply(error.status, {"__type": error.code, "message": error.message}, request_id)
    except Exception:  # a fault of Agora's: botocore reads only this shape; the log has the cause
        log.exception("Agreement API request %s failed", request_id)
        message = f"An internal error occurred. RequestId {request_id}."
        return _reply(500, {"__type": "InternalServerException", "message": message}, request_id)


def _reply(status: int, body: dict[str, Any], request_id: str) -> Reply:
    return Reply(
        status,
        json.dumps(body, separators=(",", ":")).encode(),
        {"content-type": CONTENT_TYPE, "x-amzn-RequestId": request_id},
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AgreementError("SerializationException", "the request body is not valid JSON", 400) from None
    if not isinstance(payload, dict):
        raise AgreementError("SerializationException", "the request body must be a JSON object", 400)
    problems = bad_text(payload, brackets=True)
    if problems:
        loc, problem = problems[0]
        raise invalid("OTHER", loc or "body", f"{loc or 'the request body'} {problem}")
    return payload


# --- agreements -------------------------------------------------------------------------------------------


def seller_account(handle: str) -> str:
    """A seller's proposer account id: 12 digits of a digest of its handle (sellers have no AWS account)."""
    return f"{int(hashlib.sha256(f'agora-seller:{handle}'.encode()).hexdigest(), 16) % 10**12:012d}"


@dataclass(frozen=True)
class Agreement:
    subscription: Subscription
    product: Product
    seller: Seller
    buyer: Buyer
    offer: Offer | None
    contract: Contract | None  # the latest one
    annual: list[AnnualPurchase]  # those of the latest purchase date
    replaced: bool  # a private offer the buyer accepted ended it

    @property
    def id(self) -> str:
        return self.subscription.agreement_id or ""

    @property
    def offer_id(self) -> str:
        if self.offer is not None:
            return self.offer.entity_id or self.offer.public_id
        return self.product.public_offer_entity_id or f"{self.product.code}@public"

    @property
    def resource_id(self) -> str:
        return self.product.entity_id or self.product.code

    @property
    def resource_type(self) -> str:
        return RESOURCE_TYPES.get(self.product.kind, self.product.kind)

    @property
    def accepted_at(self) -> datetime:
        if self.offer is not None and self.offer.accepted_at is not None:
            return self.offer.accepted_at
        return self.subscription.started_at

    @property
    def ends_at(self) -> datetime | None:
        """When the agreement's term ends, if it has one; an ended subscription ended then."""
        if self.subscription.ended_at is not None:
            return self.subscription.ended_at
        if self.offer is not None:
            return self.accepted_at + timedelta(days=self.offer.duration_days)
        ends = [c.ends_at for c in [self.contract] if c is not None] + [a.ends_at for a in self.annual]
        return max(ends) if ends else None

    def status(self, now: datetime) -> str:
        if self.subscription.ended_at is not None:
            return "REPLACED" if self.replaced else "CANCELLED"
        end = self.ends_at
        return "EXPIRED" if end is not None and end <= now else "ACTIVE"


def _agreements(session: Session, principal: Principal, agreement_ids: Sequence[str]) -> list[Agreement]:
    """The agreements with these ids that the caller is party to, with everything their terms need."""
    query = (
        select(Subscription, Product, Seller, Buyer)
        .join(Product, Product.id == Subscription.product_id)
        .join(Seller, Seller.id == Product.seller_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(Subscription.agreement_id.is_not(None))
    )
    if principal.role is Role.SELLER:
        query = query.where(Product.seller_id == principal.id)
    else:
        query = query.where(Subscription.buyer_id == principal.id)
    rows = session.execute(query.where(Subscription.agreement_id.in_(agreement_ids)).order_by(Subscription.id)).all()
    ids = [row[0].id for row in rows]
    if not ids:
        return []
    offer_ids = [row[0].offer_id for row in rows if row[0].offer_id is not None]
    offers = {o.id: o for o in session.scalars(select(Offer).where(Offer.id.in_(offer_ids)))} if offer_ids else {}
    contracts: dict[int, Contract] = {}
    for contract in session.scalars(select(Contract).where(Contract.subscription_id.in_(ids)).order_by(Contract.id)):
        contracts[contract.subscription_id] = contract
    annual: dict[int, list[AnnualPurchase]] = {}
    for purchase in session.scalars(
        select(AnnualPurchase).where(AnnualPurchase.subscription_id.in_(ids)).order_by(AnnualPurchase.id)
    ):
        current = annual.setdefault(purchase.subscription_id, [])
        if current and current[0].starts_at != purchase.starts_at:
            current.clear()  # a later purchase (a renewal) is the term now
        current.append(purchase)
    successors = _successors(session, {row[0].product_id for row in rows})
    return [
        Agreement(
            subscription=sub,
            product=product,
            seller=seller,
            buyer=buyer,
            offer=offers.get(sub.offer_id) if sub.offer_id is not None else None,
            contract=contracts.get(sub.id),
            annual=annual.get(sub.id, []),
            replaced=sub.ended_at is not None and (sub.buyer_id, sub.product_id, _aware(sub.ended_at)) in successors,
        )
        for sub, product, seller, buyer in rows
    ]


def _one(session: Session, principal: Principal, payload: Mapping[str, Any]) -> Agreement:
    agreement_id = payload.get("agreementId")
    if agreement_id is None:
        raise invalid("MISSING_AGREEMENT_ID", "agreementId", "agreementId is required")
    if not isinstance(agreement_id, str) or not AGREEMENT_ID.fullmatch(agreement_id):
        raise invalid(
            "INVALID_AGREEMENT_ID", "agreementId", "agreementId must be 1 to 64 letters, digits, '_', '/' or '-'"
        )
    found = _agreements(session, principal, [agreement_id])
    if not found:
        raise AgreementError(
            "ResourceNotFoundException",
            f"Agreement {agreement_id} not found",
            404,
            resourceId=agreement_id,
            resourceType="Agreement",
        )
    return found[0]


def _time(instant: datetime | None) -> float | None:
    return instant.replace(tzinfo=instant.tzinfo or UTC).timestamp() if instant is not None else None


def _summary(agreement: Agreement, now: datetime) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "agreementId": agreement.id,
        "acceptanceTime": _time(agreement.accepted_at),
        "startTime": _time(agreement.subscription.started_at),
        "agreementType": AGREEMENT_TYPE,
        "acceptor": {"accountId": agreement.buyer.account},
        "proposer": {"accountId": seller_account(agreement.seller.handle)},
        "proposalSummary": {
            "resources": [{"id": agreement.resource_id, "type": agreement.resource_type}],
            "offerId": agreement.offer_id,
        },
        "status": agreement.status(now),
    }
    end = agreement.ends_at
    if end is not None:
        summary["endTime"] = _time(end)
    return summary


# --- operations -----------------------------------------------------------------------------------------


def describe_agreement(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    agreement = _one(session, principal, payload)
    described = _summary(agreement, clock.now())
    described["estimatedCharges"] = {"currencyCode": CURRENCY, "agreementValue": _value(session, agreement)}
    return described


def _value(session: Session, agreement: Agreement) -> str:
    """What the agreement commits the buyer to: an offer's total, or the upfront charges of its contracts
    and annual purchases; pay-as-you-go agreements commit to nothing upfront ("0.00")."""
    if agreement.offer is not None and agreement.offer.total_cents is not None:
        return str(from_cents(agreement.offer.total_cents))
    sub = agreement.subscription
    contract_cents = session.scalars(
        select(ContractCharge.amount_cents)
        .join(Contract, Contract.id == ContractCharge.contract_id)
        .where(Contract.subscription_id == sub.id)
    ).all()
    annual_cents = session.scalars(
        select(AnnualPurchase.amount_cents).where(AnnualPurchase.subscription_id == sub.id)
    ).all()
    return str(from_cents(sum(contract_cents) + sum(annual_cents)))


def search_agreements(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    catalog = payload.get("catalog")
    if catalog is not None and catalog != CATALOG:
        raise invalid("INVALID_CATALOG", "catalog", f"catalog must be {CATALOG}")
    filters = _filters(payload.get("filters"))
    party = filters.get("PartyType")
    if party is None:
        raise invalid("MISSING_PARTY_TYPE", "filters", "filters must name the PartyType: Proposer or Acceptor")
    if party not in ("Proposer", "Acceptor"):
        raise invalid("INVALID_PARTY_TYPE", "PartyType", "PartyType must be Proposer or Acceptor")
    if "AgreementType" not in filters:
        raise invalid("INVALID_FILTERS", "filters", "filters must name the AgreementType (PurchaseAgreement)")
    allowed = PROPOSER_FILTERS if party == "Proposer" else ACCEPTOR_FILTERS
    unsupported = sorted(set(filters) - allowed)
    if unsupported:
        raise invalid(
            "UNSUPPORTED_FILTERS",
            unsupported[0],
            f"{', '.join(unsupported)} cannot be combined with PartyType {party}",
        )
    descending = _sort(payload.get("sort"))
    limit = payload.get("maxResults", MAX_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise invalid("INVALID_MAX_RESULTS", "maxResults", f"maxResults must be 1 to {MAX_RESULTS}")
    offset = _offset(payload.get("nextToken"))
    # The caller is a proposer only as a seller and an acceptor only as a buyer.
    mine = (party == "Proposer") == (principal.role is Role.SELLER)
    now = clock.now()
    found = [a for a in _outlines(session, principal) if _matches(a, filters, now)] if mine else []
    never = datetime.max.replace(tzinfo=UTC)
    found.sort(key=lambda a: (_aware(a.ends_at) if a.ends_at else never, a.id), reverse=descending)
    page = [a.id for a in found[offset : offset + limit]]
    full = {a.id: a for a in _agreements(session, principal, page)}
    result: dict[str, Any] = {"agreementViewSummaries": [_summary(full[i], now) for i in page]}
    if offset + limit < len(found):
        result["nextToken"] = f"o{offset + limit}"
    return result


@dataclass(frozen=True)
class Outline:
    """What a search filters and sorts an agreement by, read without loading whole rows: a search of a seller
    with 10,000 agreements reads 10,000 of these and loads only the page's agreements whole."""

    id: str
    account: str
    resource_id: str
    product_code: str
    resource_type: str
    offer_id: str
    ends_at: datetime | None
    ended: bool
    replaced: bool

    def status(self, now: datetime) -> str:
        if self.ended:
            return "REPLACED" if self.replaced else "CANCELLED"
        return "EXPIRED" if self.ends_at is not None and _aware(self.ends_at) <= _aware(now) else "ACTIVE"


def _outlines(session: Session, principal: Principal) -> list[Outline]:
    contract_ends = (
        select(Contract.subscription_id, func.max(Contract.ends_at).label("ends_at"))
        .group_by(Contract.subscription_id)
        .subquery()
    )
    annual_ends = (
        select(AnnualPurchase.subscription_id, func.max(AnnualPurchase.ends_at).label("ends_at"))
        .group_by(AnnualPurchase.subscription_id)
        .subquery()
    )
    query = (
        select(
            Subscription.agreement_id,
            Subscription.buyer_id,
            Subscription.product_id,
            Subscription.ended_at,
            Buyer.account,
            Product.code,
            Product.entity_id,
            Product.public_offer_entity_id,
            Product.kind,
            Offer.entity_id,
            Offer.public_id,
            Offer.accepted_at,
            Offer.duration_days,
            contract_ends.c.ends_at,
            annual_ends.c.ends_at,
        )
        .join(Product, Product.id == Subscription.product_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .outerjoin(Offer, Offer.id == Subscription.offer_id)
        .outerjoin(contract_ends, contract_ends.c.subscription_id == Subscription.id)
        .outerjoin(annual_ends, annual_ends.c.subscription_id == Subscription.id)
        .where(Subscription.agreement_id.is_not(None))
    )
    if principal.role is Role.SELLER:
        query = query.where(Product.seller_id == principal.id)
    else:
        query = query.where(Subscription.buyer_id == principal.id)
    rows = session.execute(query).all()
    successors = _successors(session, {row[2] for row in rows})
    outlines = []
    for (
        agreement_id,
        buyer_id,
        product_id,
        ended_at,
        account,
        code,
        entity_id,
        public_offer,
        kind,
        offer_entity,
        offer_public,
        offer_accepted,
        offer_days,
        contract_end,
        annual_end,
    ) in rows:
        ends_at: datetime | None = None
        if ended_at is not None:
            ends_at = ended_at
        elif offer_public is not None and offer_accepted is not None:
            ends_at = offer_accepted + timedelta(days=offer_days)
        else:
            ends = [e for e in (contract_end, annual_end) if e is not None]
            ends_at = max(ends, key=_aware) if ends else None
        outlines.append(
            Outline(
                id=agreement_id or "",
                account=account,
                resource_id=entity_id or code,
                product_code=code,
                resource_type=RESOURCE_TYPES.get(kind, kind),
                offer_id=(offer_entity or offer_public) if offer_public else (public_offer or f"{code}@public"),
                ends_at=ends_at,
                ended=ended_at is not None,
                replaced=ended_at is not None and (buyer_id, product_id, _aware(ended_at)) in successors,
            )
        )
    return outlines


def _successors(session: Session, product_ids: set[int]) -> set[tuple[int, int, datetime]]:
    """(buyer, product, start) of every subscription made by accepting a private offer: its acceptance ended the
    buyer's subscription to the product at that instant (REPLACED)."""
    if not product_ids:
        return set()
    rows = session.execute(
        select(Subscription.buyer_id, Subscription.product_id, Subscription.started_at).where(
            Subscription.offer_id.is_not(None), Subscription.product_id.in_(product_ids)
        )
    )
    return {(buyer, product, _aware(started)) for buyer, product, started in rows}


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _filters(value: Any) -> dict[str, str]:
    if value is None:
        raise invalid("MISSING_PARTY_TYPE", "filters", "filters must name the PartyType and the AgreementType")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FILTERS:
        raise invalid("INVALID_FILTERS", "filters", f"filters must be a list of 1 to {MAX_FILTERS} filters")
    filters: dict[str, str] = {}
    for n, item in enumerate(value):
        where = f"filters[{n}]"
        if not isinstance(item, dict) or item.get("name") is None:
            raise invalid("MISSING_FILTER_NAME", f"{where}.name", f"{where} must have a name")
        name = item["name"]
        if not isinstance(name, str) or not FILTER_NAME.fullmatch(name) or name not in FILTERS:
            raise invalid(
                "INVALID_FILTER_NAME",
                f"{where}.name",
                f"{where}.name {name!r} is not one of {', '.join(sorted(FILTERS))}",
            )
        values = item.get("values")
        if not values:
            raise invalid("MISSING_FILTER_VALUES", f"{where}.values", f"filter {name} needs exactly one value")
        if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str) or not values[0]:
            raise invalid("INVALID_FILTER_VALUES", f"{where}.values", f"filter {name} takes exactly one string value")
        if name in filters:
            raise invalid("INVALID_FILTERS", f"{where}.name", f"filter {name} is given twice")
        filters[name] = values[0]
    _check_values(filters)
    return filters


def _check_values(filters: Mapping[str, str]) -> None:
    if "AgreementType" in filters and filters["AgreementType"] != AGREEMENT_TYPE:
        raise invalid("INVALID_FILTER_VALUES", "AgreementType", f"AgreementType must be {AGREEMENT_TYPE}")
    if "Status" in filters and filters["Status"] not in STATUSES:
        raise invalid("INVALID_FILTER_VALUES", "Status", f"Status must be one of {', '.join(STATUSES)}")
    account = filters.get("AcceptorAccountId")
    if account is not None and not re.fullmatch(r"[0-9]{12}", account):
        raise invalid("INVALID_FILTER_VALUES", "AcceptorAccountId", "AcceptorAccountId must be 12 digits")
    kinds = set(RESOURCE_TYPES.values()) | {"ProfessionalServicesProduct"}
    if "ResourceType" in filters and filters["ResourceType"] not in kinds:
        raise invalid(
            "INVALID_FILTER_VALUES", "ResourceType", f"ResourceType must be one of {', '.join(sorted(kinds))}"
        )
    for name in ("BeforeEndTime", "AfterEndTime"):
        if name in filters:
            _instant(filters[name], name)


def _instant(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(
            "INVALID_FILTER_VALUES", name, f"{name} must be an ISO 8601 instant, e.g. 2026-12-31T00:00:00Z"
        ) from None
    return _aware(parsed)


def _matches(agreement: Outline, filters: Mapping[str, str], now: datetime) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "AcceptorAccountId": lambda v: agreement.account == v,
        "ResourceIdentifier": lambda v: v in (agreement.resource_id, agreement.product_code),
        "ResourceType": lambda v: agreement.resource_type == v,
        "OfferId": lambda v: v == agreement.offer_id,
        "OfferSetId": lambda v: False,  # Agora has no offer sets
        "Status": lambda v: agreement.status(now) == v,
        "BeforeEndTime": lambda v: (
            agreement.ends_at is not None and _aware(agreement.ends_at) < _instant(v, "BeforeEndTime")
        ),
        "AfterEndTime": lambda v: agreement.ends_at is None or _aware(agreement.ends_at) > _instant(v, "AfterEndTime"),
    }
    return all(check(filters[name]) for name, check in checks.items() if name in filters)


def _sort(value: Any) -> bool:
    """Whether to sort descending (AWS's default: EndTime, DESCENDING)."""
    if value is None:
        return True
    if not isinstance(value, dict):
        raise invalid("INVALID_SORT_BY", "sort", "sort must be {sortBy, sortOrder}")
    if value.get("sortBy", "EndTime") != "EndTime":
        raise invalid("INVALID_SORT_BY", "sort.sortBy", "agreements sort by EndTime only")
    order = value.get("sortOrder", "DESCENDING")
    if order not in ("ASCENDING", "DESCENDING"):
        raise invalid("INVALID_SORT_ORDER", "sort.sortOrder", "sortOrder must be ASCENDING or DESCENDING")
    return bool(order == "DESCENDING")


def _offset(token: Any) -> int:
    if token is None or token == "":
        return 0
    found = NEXT_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if found is None:
        raise invalid("INVALID_NEXT_TOKEN", "nextToken", "nextToken is not one this service issued")
    return int(found.group(1))


def get_agreement_terms(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    agreement = _one(session, principal, payload)
    limit = payload.get("maxResults", MAX_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise invalid("INVALID_MAX_RESULTS", "maxResults", f"maxResults must be 1 to {MAX_RESULTS}")
    offset = _offset(payload.get("nextToken"))
    terms = accepted_terms(session, agreement)
    result: dict[str, Any] = {"acceptedTerms": terms[offset : offset + limit]}
    if offset + limit < len(terms):
        result["nextToken"] = f"o{offset + limit}"
    return result


# --- terms ------------------------------------------------------------------------------------------------


def accepted_terms(session: Session, agreement: Agreement) -> list[dict[str, Any]]:
    """The agreement's terms, one `AcceptedTerm` (a union: one key) each, in a stable order."""
    sub, product, offer = agreement.subscription, agreement.product, agreement.offer
    document = PricingDocument.model_validate(
        pricing.price_for(session, sub, min(_aware(clock.now()), _aware(agreement.ends_at or clock.now()))).pricing
        or {}
    )
    terms: list[tuple[str, dict[str, Any]]] = [("legalTerm", {"documents": [_eula(agreement)]})]
    refund = (product.listing or {}).get("refund_policy")
    if refund:
        terms.append(("supportTerm", {"refundPolicy": refund}))
    if document.byol or sub.license_reference is not None:
        terms.append(("byolPricingTerm", {}))
    rate_card = _rate_card(document)
    if rate_card:
        terms.append(("usageBasedPricingTerm", {"currencyCode": CURRENCY, "rateCards": [{"rateCard": rate_card}]}))
    if document.monthly is not None:
        terms.append(
            (
                "recurringPaymentTerm",
                {"currencyCode": CURRENCY, "billingPeriod": "Monthly", "price": format_price(document.monthly)},
            )
        )
    if document.contract is not None:
        terms.append(("configurableUpfrontPricingTerm", _contract_term(session, agreement, document)))
    if document.annual:
        terms.append(("configurableUpfrontPricingTerm", _annual_term(agreement, document)))
    if sub.trial_ends_at is not None:
        days = (_aware(sub.trial_ends_at) - _aware(sub.started_at)).days
        grants = [{"dimensionKey": name, "maxQuantity": 1} for name in sorted(document.hourly or {})]
        terms.append(("freeTrialPricingTerm", {"duration": f"P{days}D", "grants": grants}))
    if offer is not None and offer.schedule:
        schedule = [
            {"chargeDate": _time(_parse(item["at"])), "chargeAmount": format_price(Decimal(str(item["amount"])))}
            for item in offer.schedule
        ]
        terms.append(("paymentScheduleTerm", {"currencyCode": CURRENCY, "schedule": schedule}))
    elif offer is not None and offer.total_cents is not None:
        terms.append(
            (
                "fixedUpfrontPricingTerm",
                {
                    "currencyCode": CURRENCY,
                    "duration": f"P{offer.duration_days}D",
                    "price": str(from_cents(offer.total_cents)),
                },
            )
        )
    validity = _validity(agreement)
    if validity is not None:
        terms.append(("validityTerm", validity))
    renewal = _renewal(agreement)
    if renewal is not None:
        terms.append(("renewalTerm", {"configuration": {"enableAutoRenew": renewal}}))
    return [
        {key: {"type": key[0].upper() + key[1:], "id": _term_id(agreement, key, n), **body}}
        for n, (key, body) in enumerate(terms)
    ]


def _term_id(agreement: Agreement, key: str, n: int) -> str:
    return "term-" + hashlib.sha256(f"{agreement.id}:{key}:{n}".encode()).hexdigest()[:24]


def _parse(value: Any) -> datetime:
    return _aware(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _eula(agreement: Agreement) -> dict[str, str]:
    eula = agreement.subscription.eula or ""
    if eula.startswith("custom:"):
        digest = eula.removeprefix("custom:")
        url = (
            f"/api/v1/offers/{agreement.offer.public_id}/eula"
            if agreement.offer is not None and agreement.offer.eula_digest == digest
            else f"/products/{agreement.product.code}#eula"
        )
        return {"type": "CustomEula", "url": url, "version": digest[:16]}
    return {"type": "StandardEula", "url": f"/products/{agreement.product.code}#eula", "version": eula or "standard:v1"}


def _rate_card(document: PricingDocument) -> list[dict[str, str]]:
    """Every pay-as-you-go price, keyed as the buyer's usage is: instance types, dimensions, ML uses, tiers."""
    card = [
        {"dimensionKey": name, "price": format_price(price)} for name, price in sorted((document.hourly or {}).items())
    ]
    if document.usage is not None:
        card += [{"dimensionKey": d.name, "price": format_price(d.rate)} for d in document.usage.dimensions]
    if document.ml is not None:
        for use in ("training", "realtime_inference", "batch_inference"):
            prices = getattr(document.ml, use) or {}
            card += [{"dimensionKey": f"{use}:{t}", "price": format_price(p)} for t, p in sorted(prices.items())]
    if document.tiered is not None:
        for item in document.tiered.items:
            for k, tier in enumerate(item.tiers):
                key = item.name if len(item.tiers) == 1 else f"{item.name}:tier{k + 1}"
                card.append({"dimensionKey": key, "price": format_price(tier.price)})
    return card


def _contract_term(session: Session, agreement: Agreement, document: PricingDocument) -> dict[str, Any]:
    assert document.contract is not None
    durations = sorted({int(m) for d in document.contract.dimensions for m in d.prices})
    rate_cards = [
        {
            "selector": {"type": "Duration", "value": f"P{months}M"},
            "constraints": {"multipleDimensionSelection": "Allowed", "quantityConfiguration": "Allowed"},
            "rateCard": [
                {"dimensionKey": d.name, "price": format_price(d.prices[str(months)])}
                for d in document.contract.dimensions
                if str(months) in d.prices
            ],
        }
        for months in durations
    ]
    term: dict[str, Any] = {"currencyCode": CURRENCY, "rateCards": rate_cards}
    contract = agreement.contract
    if contract is not None:
        bought = session.execute(
            select(Entitlement.dimension, Entitlement.quantity)
            .where(Entitlement.contract_id == contract.id)
            .order_by(Entitlement.dimension)
        ).all()
        term["configuration"] = {
            "selectorValue": f"P{contract.duration_months}M",
            "dimensions": [{"dimensionKey": name, "dimensionValue": quantity} for name, quantity in bought],
        }
    return term


def _annual_term(agreement: Agreement, document: PricingDocument) -> dict[str, Any]:
    rate_card = [{"dimensionKey": t, "price": format_price(p)} for t, p in sorted((document.annual or {}).items())]
    term: dict[str, Any] = {
        "currencyCode": CURRENCY,
        "rateCards": [
            {
                "selector": {"type": "Duration", "value": "P365D"},
                "constraints": {"multipleDimensionSelection": "Allowed", "quantityConfiguration": "Allowed"},
                "rateCard": rate_card,
            }
        ],
    }
    if agreement.annual:
        term["configuration"] = {
            "selectorValue": "P365D",
            "dimensions": [
                {"dimensionKey": a.instance_type, "dimensionValue": a.quantity}
                for a in sorted(agreement.annual, key=lambda a: a.instance_type)
            ],
        }
    return term


def _validity(agreement: Agreement) -> dict[str, Any] | None:
    start = agreement.accepted_at
    if agreement.offer is not None:
        duration = f"P{agreement.offer.duration_days}D"
        end = start + timedelta(days=agreement.offer.duration_days)
    elif agreement.contract is not None:
        start = agreement.contract.starts_at
        duration = f"P{agreement.contract.duration_months}M"
        end = add_months(start, agreement.contract.duration_months)
    elif agreement.annual:
        start = agreement.annual[0].starts_at
        duration = "P365D"
        end = agreement.annual[0].ends_at
    else:
        return None
    return {"agreementDuration": duration, "agreementStartDate": _time(start), "agreementEndDate": _time(end)}


def _renewal(agreement: Agreement) -> bool | None:
    """Annual purchases renew when bought so (SUB-03); contracts and offers do not renew by themselves."""
    if agreement.annual:
        return any(a.auto_renew for a in agreement.annual)
    if agreement.contract is not None or agreement.offer is not None:
        return False
    return None


Operation = Callable[[Session, Principal, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {
    f"{TARGET_PREFIX}SearchAgreements": search_agreements,
    f"{TARGET_PREFIX}DescribeAgreement": describe_agreement,
    f"{TARGET_PREFIX}GetAgreementTerms": get_agreement_terms,
}
