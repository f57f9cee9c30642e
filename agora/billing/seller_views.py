"""Money as the seller portal reads it: billed revenue by month and product with refunds as negatives,
disbursement statements (BIL-05), refunds issued and the annual purchases still inside a refund window
(RFD-01, RFD-03), and the dashboard's subscribers and what needs the seller's attention. Every query is
restricted to the calling seller's products, lines and buyers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal
from agora.billing import payouts
from agora.billing.refunds import FULL_WINDOW, PRORATA_WINDOW, RENEWAL_WINDOW, refunded_cents
from agora.catalog import service as catalog
from agora.errors import Forbidden
from agora.models import (
    AnnualPurchase,
    Buyer,
    Disbursement,
    Invoice,
    InvoiceLine,
    Job,
    JobState,
    Offer,
    Product,
    Refund,
    Role,
    Subscription,
    WebhookDelivery,
)
from agora.money import from_cents

BILLED_STATES = ("finalized", "paid", "void")  # a voided invoice counts, and so does the credit note reversing it
REVENUE_CSV = ("period", "product", "category", "billed", "refunds", "net")
DISBURSEMENT_CSV = (
    "disbursement",
    "period",
    "invoice",
    "invoice_kind",
    "product",
    "charge",
    "billed",
    "amount",
    "fee_percent",
    "fee",
    "note",
)
OFFER_WARNING = timedelta(days=7)


def _seller(principal: Principal) -> int:
    if principal.role is not Role.SELLER:
        raise Forbidden("this is the seller's view")
    return principal.id


def _money(cents: int) -> str:
    return f"{from_cents(cents):.2f}"


# --- revenue ----------------------------------------------------------------------------------------------------


@dataclass
class Revenue:
    rows: list[dict[str, Any]]  # per period, product and category: billed, refunds (≤ 0), net — as text
    months: list[dict[str, Any]]  # per period: software billed, refunds, net
    chart: dict[str, Any]  # {"labels": periods, "series": [{"label": product, "values": [net software]}]}
    infrastructure: str  # passed through, never the seller's (LST-10)


def revenue(session: Session, principal: Principal) -> Revenue:
    """Billed revenue by month and product: the seller's lines on every issued invoice, credit notes (refunds)
    as negative amounts in the month they were issued."""
    seller_id = _seller(principal)
    refund = InvoiceLine.amount_cents < 0
    billed = func.sum(func.coalesce(InvoiceLine.amount_cents, 0)).filter(~refund)
    refunded = func.sum(InvoiceLine.amount_cents).filter(refund)
    rows = session.execute(
        select(Invoice.period, Product.code, InvoiceLine.category, billed, refunded)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .join(Product, Product.id == InvoiceLine.product_id)
        .where(InvoiceLine.seller_id == seller_id, Invoice.state.in_(BILLED_STATES))
        .group_by(Invoice.period, Product.code, InvoiceLine.category)
        .order_by(Invoice.period, Product.code, InvoiceLine.category)
    ).all()
    out: list[dict[str, Any]] = []
    months: dict[str, list[int]] = {}
    net_by: dict[str, dict[str, int]] = defaultdict(dict)
    infrastructure = 0
    for period, code, category, plus, minus in rows:
        plus, minus = int(plus or 0), int(minus or 0)
        out.append(
            {
                "period": period,
                "product": code,
                "category": category,
                "billed": _money(plus),
                "refunds": _money(minus),
                "net": _money(plus + minus),
            }
        )
        if category != "software":
            infrastructure += plus + minus
            continue
        month = months.setdefault(period, [0, 0])
        month[0] += plus
        month[1] += minus
        net_by[code][period] = net_by[code].get(period, 0) + plus + minus
    labels = sorted(months)
    chart = {
        "labels": labels,
        "money": True,
        "stacked": True,
        "series": [
            {"label": code, "values": [_money(net_by[code].get(p, 0)) for p in labels]} for code in sorted(net_by)
        ],
    }
    return Revenue(
        rows=out,
        months=[
            {"period": p, "billed": _money(b), "refunds": _money(r), "net": _money(b + r)}
            for p, (b, r) in sorted(months.items())
        ],
        chart=chart,
        infrastructure=_money(infrastructure),
    )


# --- disbursements ------------------------------------------------------------------------------------------------


def disbursements(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Each of the seller's statements with its lines and listing fee (BIL-05), newest month first."""
    found = session.scalars(
        select(Disbursement)
        .where(Disbursement.seller_id == _seller(principal))
        .order_by(Disbursement.period.desc(), Disbursement.id.desc())
    )
    return [payouts.statement(session, d) for d in found]


def disbursement_rows(statements: list[dict[str, Any]]) -> list[list[Any]]:
    return [[s["id"], s["period"]] + [line[k] for k in DISBURSEMENT_CSV[2:]] for s in statements for line in s["lines"]]


# --- refunds --------------------------------------------------------------------------------------------------------


def refunds_issued(session: Session, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """Refunds of the seller's lines, newest first: who, what, how much, which rule, why."""
    rows = session.execute(
        select(Refund, InvoiceLine, Product.code, Buyer.account, Invoice.period)
        .join(InvoiceLine, InvoiceLine.id == Refund.invoice_line_id)
        .join(Product, Product.id == InvoiceLine.product_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .join(Buyer, Buyer.id == Invoice.buyer_id)
        .where(InvoiceLine.seller_id == _seller(principal))
        .order_by(Refund.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": refund.created_at,
            "buyer": account,
            "product": code,
            "period": period,
            "charge": line.charge,
            "kind": refund.kind,
            "amount": _money(-refund.amount_cents),
            "reason": refund.reason,
            "credit_note": refund.credit_note_id,
        }
        for refund, line, code, account, period in rows
    ]


@dataclass(frozen=True)
class AnnualWindow:
    purchase_id: int
    buyer: str
    product: str
    instance_type: str
    quantity: int
    paid: str
    left: str
    starts_at: datetime
    renewal: bool
    full_until: datetime | None  # a full refund until then (48 h, or 14 days of an auto-renewal)
    prorata_until: datetime | None  # a pro-rata refund until then (14 days, the seller only)


def annual_windows(session: Session, principal: Principal) -> list[AnnualWindow]:
    """The seller's annual purchases still inside a refund window of RFD-03, soonest closing first."""
    now = clock.now()
    oldest = now - max(PRORATA_WINDOW, RENEWAL_WINDOW, FULL_WINDOW)
    rows = session.execute(
        select(AnnualPurchase, Product.code, Buyer.account)
        .join(Subscription, Subscription.id == AnnualPurchase.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
        .join(Buyer, Buyer.id == Subscription.buyer_id)
        .where(
            Product.seller_id == _seller(principal), AnnualPurchase.starts_at >= oldest, AnnualPurchase.ends_at > now
        )
        .order_by(AnnualPurchase.starts_at, AnnualPurchase.id)
    ).all()
    out = []
    for purchase, code, account in rows:
        line = session.scalar(
            select(InvoiceLine)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(Invoice.source == f"upfront:annual:{purchase.id}")
        )
        if line is None:
            continue
        left = line.amount_cents - refunded_cents(session, line.id)
        if left <= 0:
            continue
        renewal = purchase.renews_id is not None
        full_until = purchase.starts_at + (RENEWAL_WINDOW if renewal else FULL_WINDOW)
        prorata_until = purchase.starts_at + PRORATA_WINDOW
        out.append(
            AnnualWindow(
                purchase_id=purchase.id,
                buyer=account,
                product=code,
                instance_type=purchase.instance_type,
                quantity=purchase.quantity,
                paid=_money(line.amount_cents),
                left=_money(left),
                starts_at=purchase.starts_at,
                renewal=renewal,
                full_until=full_until if now <= full_until else None,
                prorata_until=prorata_until if now <= prorata_until else None,
            )
        )
    return [w for w in out if w.full_until or w.prorata_until]


def refund_choices(session: Session, principal: Principal) -> dict[str, list[str]]:
    """For the approval form: the seller's products and the periods it billed software in."""
    seller_id = _seller(principal)
    codes = session.scalars(select(Product.code).where(Product.seller_id == seller_id).order_by(Product.code))
    periods = session.scalars(
        select(Invoice.period)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(InvoiceLine.seller_id == seller_id, Invoice.kind != "credit_note")
        .distinct()
        .order_by(Invoice.period.desc())
    )
    return {"products": list(codes), "periods": list(periods)}


# --- dashboard -----------------------------------------------------------------------------------------------------


def subscribers(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Active subscribers per product (trials included), the seller's products with any."""
    rows = session.execute(
        select(Product.code, Product.title, func.count(Subscription.id))
        .join(Subscription, Subscription.product_id == Product.id)
        .where(Product.seller_id == _seller(principal), Subscription.ended_at.is_(None))
        .group_by(Product.code, Product.title)
        .order_by(Product.title)
    ).all()
    return [{"product": code, "title": title, "active": int(count)} for code, title, count in rows]


def attention(session: Session, principal: Principal) -> list[dict[str, str]]:
    """What waits for the seller, each with where to deal with it: rejected listings and drafts missing items,
    failed webhook deliveries, private offers about to expire unaccepted, annual refund windows closing."""
    seller_id = _seller(principal)
    now = clock.now()
    items: list[dict[str, str]] = []
    for product in session.scalars(
        select(Product).where(Product.seller_id == seller_id, Product.state == "draft").order_by(Product.title)
    ):
        url = f"/seller/products/{product.code}"
        if product.rejection_reason:
            items.append(
                {"kind": "rejected", "url": url, "text": f"{product.title} was rejected: {product.rejection_reason}"}
            )
            continue
        missing = catalog.missing_for_submission(session, product)
        if missing:
            fields = ", ".join(m.field for m in missing[:4]) + (" …" if len(missing) > 4 else "")
            items.append(
                {
                    "kind": "missing",
                    "url": url,
                    "text": f"{product.title} needs {len(missing)} more item(s) before review: {fields}",
                }
            )
    failed = session.scalar(
        select(func.count(WebhookDelivery.id))
        .join(Job, Job.id == WebhookDelivery.job_id)
        .where(
            WebhookDelivery.seller_id == seller_id, WebhookDelivery.state != "delivered", Job.state == JobState.FAILED
        )
    )
    if failed:
        items.append(
            {
                "kind": "webhooks",
                "url": "/seller/webhooks",
                "text": f"{failed} webhook deliver{'y' if failed == 1 else 'ies'} failed: replay once fixed",
            }
        )
    for offer, title, account in session.execute(
        select(Offer, Product.title, Buyer.account)
        .join(Product, Product.id == Offer.product_id)
        .join(Buyer, Buyer.id == Offer.buyer_id)
        .where(
            Product.seller_id == seller_id,
            Offer.state == "extended",
            Offer.accepted_at.is_(None),
            Offer.accept_by > now,
            Offer.accept_by <= now + OFFER_WARNING,
        )
        .order_by(Offer.accept_by)
    ):
        items.append(
            {
                "kind": "offer",
                "url": "/seller/offers",
                "text": f"Offer {offer.public_id} to {account} for {title} expires "
                f"{offer.accept_by:%d %b %Y %H:%M} UTC unaccepted",
            }
        )
    windows = annual_windows(session, principal)
    if windows:
        items.append(
            {
                "kind": "refunds",
                "url": "/seller/refunds",
                "text": f"{len(windows)} annual purchase{'' if len(windows) == 1 else 's'} still inside a refund "
                "window [RFD-03]",
            }
        )
    return items
