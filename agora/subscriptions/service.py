"""Subscribing and cancelling, SaaS fulfillment tokens (SUB-06), free trials (SUB-01/02), EULA acceptance
(LST-08) and enterprise-only listings (LST-09)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agora import audit, clock, jobs
from agora.auth import Principal
from agora.billing import automatic
from agora.config import fernet_key
from agora.errors import AgoraError, Conflict, Forbidden, Invalid, NotFound
from agora.metering import platform
from agora.models import Buyer, Product, ProductAsset, RegistrationTokenUse, Role, Subscription, TrialUse
from agora.notifications.service import notify
from agora.pricing.schema import PricingDocument
from agora.webhooks import service as webhooks

# A registration token is good for one resolution within an hour of its issue (the redirect is immediate);
# after that, or once resolved, it is stale: ExpiredTokenException (api-surface §1.5.10).
REGISTRATION_TTL = timedelta(hours=1)
UNSUBSCRIBE_GRACE = timedelta(hours=1)
TRIAL_REMINDER_BEFORE = timedelta(days=3)  # SUB-02
STANDARD_EULA = "standard:v1"
# Agreement ids look like AWS's: `agmt-` and 25 lower-case letters and digits (the Agreement API's `agreementId`).
AGREEMENT_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
AGREEMENT_ID_LENGTH = 25


class InvalidRegistrationToken(AgoraError):
    status_code = 400
    code = "invalid_token"


class ExpiredRegistrationToken(AgoraError):
    status_code = 400
    code = "expired_token"


@dataclass(frozen=True)
class Fulfillment:
    registration_token: str
    redirect_url: str | None


# --- looking subscriptions up ------------------------------------------------------------------------------


def visible(session: Session, principal: Principal, subscription_id: int) -> Subscription:
    """A subscription its buyer, the product's seller or an operator may see; anyone else gets 404."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or not _may_see(session, principal, subscription):
        raise NotFound(f"no subscription {subscription_id}")
    return subscription


def _may_see(session: Session, principal: Principal, subscription: Subscription) -> bool:
    if principal.role is Role.OPERATOR:
        return True
    if principal.role is Role.BUYER:
        return subscription.buyer_id == principal.id
    return session.get_one(Product, subscription.product_id).seller_id == principal.id


def listing(principal: Principal) -> Select[Subscription]:
    """The subscriptions a caller may list: a buyer's own, a seller's subscribers, every one (operators)."""
    query = select(Subscription)
    if principal.role is Role.BUYER:
        query = query.where(Subscription.buyer_id == principal.id)
    elif principal.role is Role.SELLER:
        query = query.join(Product, Product.id == Subscription.product_id).where(Product.seller_id == principal.id)
    return query


# --- subscribing -------------------------------------------------------------------------------------------


def eula_of(session: Session, product: Product) -> str:
    """Which EULA the buyer accepts: the standard template, or the custom PDF identified by its digest."""
    digest = session.scalar(
        select(ProductAsset.digest).where(ProductAsset.product_id == product.id, ProductAsset.kind == "eula")
    )
    return f"custom:{digest}" if digest else STANDARD_EULA


def subscribe(
    session: Session,
    principal: Principal,
    code: str,
    *,
    accept_eula: bool,
    license_reference: str | None = None,
    customer_identifier: str | None = None,
) -> tuple[Subscription, Fulfillment | None]:
    """A buyer subscribes now. `customer_identifier` (else a random one) is for callers that name their
    customers, as `agora simulate` events do."""
    if principal.role is not Role.BUYER:
        raise Forbidden("only buyer accounts subscribe")
    product = session.scalar(select(Product).where(Product.code == code))
    if product is None or product.state != "public":
        raise NotFound(f"no product {code!r}")
    buyer = session.get_one(Buyer, principal.id)
    if product.enterprise_only and not buyer.enterprise:
        raise Forbidden(f"{product.title} is sold to enterprise buyers only [LST-09]")
    if not accept_eula:
        raise Invalid.at(
            "accept_eula", "the buyer must accept the product's EULA before subscribing [LST-08]", "must be true"
        )
    document = PricingDocument.model_validate(product.pricing or {})
    if document.byol and license_reference is None and _byol_only(document):
        raise Invalid.at(
            "license_reference", "this product is bring-your-own-license; name the license you bring", "required"
        )
    if license_reference is not None and not document.byol:
        raise Invalid.at("license_reference", "this product is not sold with your own license", "not allowed")
    active = session.scalar(
        select(Subscription).where(
            Subscription.buyer_id == buyer.id, Subscription.product_id == product.id, Subscription.ended_at.is_(None)
        )
    )
    if active is not None:
        raise Conflict(f"account {buyer.account} already subscribes to {code!r} (subscription {active.id})")
    if customer_identifier is not None and session.scalar(
        select(Subscription.id).where(
            Subscription.product_id == product.id, Subscription.customer_identifier == customer_identifier
        )
    ):
        raise Conflict(f"customer identifier {customer_identifier!r} is already used on {code!r}")
    subscription = begin(
        session,
        buyer,
        product,
        actor=principal.actor,
        eula=eula_of(session, product),
        license_reference=license_reference,
        customer_identifier=customer_identifier,
    )
    fulfillment = None
    if product.kind == "saas":
        token = registration_token(subscription)
        url = product.listing.get("fulfillment_url")
        redirect = f"{url}{'&' if '?' in url else '?'}{urlencode({'x-amzn-marketplace-token': token})}" if url else None
        fulfillment = Fulfillment(token, redirect)
    return subscription, fulfillment


def begin(
    session: Session,
    buyer: Buyer,
    product: Product,
    *,
    actor: str,
    eula: str,
    license_reference: str | None = None,
    at: datetime | None = None,
    customer_identifier: str | None = None,
    agreement_id: str | None = None,
) -> Subscription:
    """Everything subscribing does once its checks have passed: the subscription, its free trial if the product
    has one (SUB-01/02) and the audit record. The API subscribes now; a manifest subscribes its buyer `at`
    the instant it names, with the identifier it names (DESIGN "as if the buyer subscribed at `at`")."""
    subscription = start(
        session,
        buyer,
        product,
        eula=eula,
        license_reference=license_reference,
        at=at,
        customer_identifier=customer_identifier,
        agreement_id=agreement_id,
    )
    document = PricingDocument.model_validate(product.pricing or {})
    if document.free_trial_days and license_reference is None:
        _start_trial(session, subscription, product, buyer, document.free_trial_days)
    audit.record(
        session,
        actor=actor,
        action="subscription.create",
        target_type="subscription",
        target_id=subscription.id,
        after={
            "product": product.code,
            "customer_identifier": subscription.customer_identifier,
            "agreement_id": subscription.agreement_id,
            "started_at": subscription.started_at.isoformat(),
            "eula": subscription.eula,
            "license_reference": license_reference,
            "trial_ends_at": subscription.trial_ends_at.isoformat() if subscription.trial_ends_at else None,
        },
    )
    return subscription


def start(
    session: Session,
    buyer: Buyer,
    product: Product,
    *,
    eula: str,
    license_reference: str | None = None,
    offer_id: int | None = None,
    at: datetime | None = None,
    customer_identifier: str | None = None,
    agreement_id: str | None = None,
) -> Subscription:
    """A new active subscription, with its EULA accepted when it starts (now unless `at` says otherwise); the
    seller hears subscribe-success (SUB-06). A second active subscription of the buyer to the product is
    refused by the database, even in a race. Its agreement id is `agreement_id` (a manifest's) or a new one."""
    started = at or clock.now()
    subscription = Subscription(
        buyer_id=buyer.id,
        product_id=product.id,
        customer_identifier=customer_identifier or f"cust-{secrets.token_hex(8)}",
        agreement_id=agreement_id or new_agreement_id(),
        started_at=started,
        eula=eula,
        eula_accepted_at=started,
        license_reference=license_reference,
        offer_id=offer_id,
        purchases={},
    )
    session.add(subscription)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"account {buyer.account} already subscribes to {product.code!r}") from None
    webhooks.emit(session, product, "subscribe-success", _event_data(subscription, product, buyer), at=started)
    return subscription


def new_agreement_id() -> str:
    """A random `agmt-…` id: 25 characters of 36 make a collision (refused by the unique column) improbable."""
    return "agmt-" + "".join(secrets.choice(AGREEMENT_ID_CHARS) for _ in range(AGREEMENT_ID_LENGTH))


def end(session: Session, subscription: Subscription) -> datetime:
    """End a subscription now; the seller hears unsubscribe-pending, and unsubscribe-success an hour later,
    the time it has to send the last usage records (SUB-06). Its instances, endpoints and service instances
    stop being metered at the same instant (MTR-06): nothing is metered after a subscription ends."""
    ended = subscription.ended_at = clock.now()
    platform.stop_runs_of(session, subscription, ended)
    automatic.enqueue_refund_after_trial(session, subscription)  # RFD-02 on months already invoiced
    product = session.get_one(Product, subscription.product_id)
    data = _event_data(subscription, product, session.get_one(Buyer, subscription.buyer_id))
    webhooks.emit(session, product, "unsubscribe-pending", data)
    webhooks.emit(session, product, "unsubscribe-success", data, at=ended + UNSUBSCRIBE_GRACE)
    return ended


def _event_data(subscription: Subscription, product: Product, buyer: Buyer) -> dict[str, Any]:
    return {
        "subscription_id": subscription.id,
        "product_code": product.code,
        "customer_identifier": subscription.customer_identifier,
        "customer_account": buyer.account,
    }


def _byol_only(document: PricingDocument) -> bool:
    paid = (document.hourly, document.annual, document.monthly, document.usage, document.contract)
    return not any(paid)


def _start_trial(session: Session, subscription: Subscription, product: Product, buyer: Buyer, days: int) -> None:
    """SUB-01/02: one trial per buyer per product, from the subscription's start; welcome then, reminder 3 days
    before the end, and the conversion to paid at the end. A subscription recorded after it started (`agora
    load` of a past `at`) keeps its window, and only the messages still to come are sent."""
    try:
        with session.begin_nested():
            session.add(TrialUse(buyer_id=buyer.id, product_id=product.id, subscription_id=subscription.id))
    except IntegrityError:
        return  # the buyer had this product's trial before: the subscription is paid from its start
    now = clock.now()
    ends = subscription.started_at + timedelta(days=days)
    subscription.trial_ends_at = ends
    if subscription.started_at >= now:
        notify(
            session,
            to=buyer.email,
            kind="trial_welcome",
            subject=f"Your {days}-day free trial of {product.title} has started",
            body=(
                f"Your free trial of {product.title} ({product.code}) lasts {days} days and ends on "
                f"{ends:%Y-%m-%d %H:%M} UTC. The trial covers the software charge of one running instance; "
                f"infrastructure charges still apply. After the trial, hourly software charges begin.\n\n"
                f"To stop before then, cancel subscription {subscription.id} "
                f"(POST /api/v1/subscriptions/{subscription.id}/cancel) or in the buyer console."
            ),
        )
    payload = {"subscription_id": subscription.id}
    if ends - TRIAL_REMINDER_BEFORE >= now:
        jobs.enqueue(session, "subscriptions.trial_reminder", payload, run_at=ends - TRIAL_REMINDER_BEFORE)
    if ends >= now:
        jobs.enqueue(session, "subscriptions.trial_end", payload, run_at=ends)


def cancel(session: Session, principal: Principal, subscription_id: int) -> Subscription:
    subscription = visible(session, principal, subscription_id)
    if principal.role is not Role.BUYER:
        raise Forbidden("a subscription is cancelled by its buyer")
    if subscription.ended_at is not None:
        raise Conflict(f"subscription {subscription_id} was already cancelled at {subscription.ended_at.isoformat()}")
    ended = end(session, subscription)
    audit.record(
        session,
        actor=principal.actor,
        action="subscription.cancel",
        target_type="subscription",
        target_id=subscription.id,
        before={"ended_at": None},
        after={"ended_at": ended.isoformat()},
    )
    return subscription


# --- SaaS fulfillment (SUB-06) ----------------------------------------------------------------------------


def _fernet() -> Fernet:
    return Fernet(fernet_key("registration-tokens"))


def registration_token(subscription: Subscription) -> str:
    """Signed and encrypted, so it names the subscription without revealing or trusting anything."""
    data = json.dumps({"s": subscription.id, "c": subscription.customer_identifier}).encode()
    return _fernet().encrypt_at_time(data, int(clock.now().timestamp())).decode()


def resolve(session: Session, principal: Principal, token: str) -> dict[str, Any]:
    """The seller's side of the SaaS redirect: who the token stands for. Only the product's seller may ask,
    within `REGISTRATION_TTL` of the token's issue, and once: the use is recorded in the caller's unit of work."""
    try:
        data = _fernet().decrypt_at_time(
            token.encode(), int(REGISTRATION_TTL.total_seconds()), int(clock.now().timestamp())
        )
    except InvalidToken:
        if _is_genuine(token):
            raise ExpiredRegistrationToken("the registration token has expired; ask the buyer to start again") from None
        raise InvalidRegistrationToken("not a registration token this marketplace issued") from None
    claims = json.loads(data)
    subscription = session.get(Subscription, claims["s"])
    if subscription is None or subscription.customer_identifier != claims["c"]:
        raise InvalidRegistrationToken("the registration token names no subscription")
    product = session.get_one(Product, subscription.product_id)
    if principal.role is not Role.SELLER or product.seller_id != principal.id:
        raise InvalidRegistrationToken("the registration token is not for one of your products")
    _record_use(session, token, subscription)
    buyer = session.get_one(Buyer, subscription.buyer_id)
    return {
        "customer_identifier": subscription.customer_identifier,
        "product_code": product.code,
        "customer_account": buyer.account,
    }


def _record_use(session: Session, token: str, subscription: Subscription) -> None:
    """Keyed by the token's decoded bytes, so another base64 spelling of the same token is the same token."""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):  # cannot happen for a token Fernet accepted; kept total
        raw = token.encode()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        with session.begin_nested():
            session.add(RegistrationTokenUse(digest=digest, subscription_id=subscription.id))
    except IntegrityError:
        raise ExpiredRegistrationToken(
            "the registration token was already resolved, and a token resolves once: the customer is the one its "
            "first resolution answered"
        ) from None


def _is_genuine(token: str) -> bool:
    """A token whose signature is good but whose time is up (Fernet checks both at once)."""
    try:
        _fernet().decrypt(token.encode())
    except InvalidToken:
        return False
    return True
