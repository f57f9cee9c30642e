"""The storefront's reads: the front page, search with facets and pages, product cards. The web pages call
these; they hold the queries so no route or template does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.catalog import search, service
from agora.catalog.views import catalog_page
from agora.errors import NotFound
from agora.models import Product, ProductAsset, Seller

PAGE_SIZE = 20
MAX_PAGE = 500  # deeper than anyone pages; keeps OFFSET bounded


@dataclass(frozen=True)
class Card:
    """A product as a search result or a tile on the front page."""

    code: str
    title: str
    kind: str
    seller: str
    short_description: str
    category: str | None
    pricing_family: str | None
    free_trial: bool
    logo_url: str | None


def cards(session: Session, products: list[Product]) -> list[Card]:
    """Cards for `products`, in their order, with two queries whatever their number."""
    if not products:
        return []
    seller_ids = {p.seller_id for p in products}
    sellers = {
        row.id: row.name for row in session.execute(select(Seller.id, Seller.name).where(Seller.id.in_(seller_ids)))
    }
    logos: dict[int, str] = {
        product_id: digest
        for product_id, digest in session.execute(
            select(ProductAsset.product_id, func.max(ProductAsset.digest))
            .where(ProductAsset.product_id.in_([p.id for p in products]), ProductAsset.kind == "logo")
            .group_by(ProductAsset.product_id)
        )
    }
    return [
        Card(
            code=p.code,
            title=p.title,
            kind=p.kind,
            seller=sellers.get(p.seller_id, ""),
            short_description=(p.listing or {}).get("short_description") or "",
            category=p.category,
            pricing_family=p.pricing_family,
            free_trial=p.free_trial,
            logo_url=f"/api/v1/assets/{logos[p.id]}" if p.id in logos else None,
        )
        for p in products
    ]


def categories(session: Session) -> list[tuple[str, int]]:
    """The categories of public products, with how many each has, largest first."""
    rows = session.execute(
        select(Product.category, func.count())
        .where(Product.state == "public", Product.category.is_not(None))
        .group_by(Product.category)
        .order_by(func.count().desc(), Product.category)
    )
    return [(category, count) for category, count in rows if category]


def front_page(session: Session, *, limit: int = 12) -> dict[str, Any]:
    products = list(
        session.scalars(
            select(Product)
            .where(Product.state == "public")
            .order_by(Product.published_at.desc().nulls_last(), Product.title, Product.id)
            .limit(limit)
        )
    )
    total = session.scalar(select(func.count()).select_from(Product).where(Product.state == "public")) or 0
    return {"products": cards(session, products), "categories": categories(session), "total": total}


@dataclass
class SearchPage:
    q: str
    filters: search.Filters
    sort: str
    page: int
    total: int
    results: list[Card]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, max(1, -(-self.total // PAGE_SIZE)))

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.total, self.page * PAGE_SIZE)


def search_page(session: Session, q: str, filters: search.Filters, *, sort: str, page: int) -> SearchPage:
    sort = sort if sort in search.SORTS else "relevance"
    if sort == "relevance" and not search.words(q):
        sort = "title"  # nothing to rank by
    page = max(1, min(page, MAX_PAGE))
    found = search.search_with_facets(session, q, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, sort=sort)
    return SearchPage(q, filters, sort, page, found.total, cards(session, found.products), found.facets)


def product_page(session: Session, code: str, viewer: Principal | None) -> dict[str, Any]:
    """The product page's data (the API's `GET /api/v1/catalog/{code}`); 404 where the viewer may not see it."""
    product = service.get_by_code(session, code)
    if product is None or not service.visible_to(product, viewer):
        raise NotFound(f"no product {code!r}")
    return catalog_page(session, product, viewer)
