"""Full-text search over public listings, one interface over two engines: SQLite FTS5 and PostgreSQL
`tsvector`. The searchable text of a product is kept in `search_documents` (only while it is public);
SQLite mirrors that table into the FTS5 table `search_fts` by triggers, PostgreSQL indexes it with GIN.
Queries are reduced to words, each matched as a prefix, all required."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, column, delete, exists, func, literal_column, select, table, text
from sqlalchemy.orm import Session

from agora.models import Product, ProductRegion, SearchDocument

WORD_RE = re.compile(r"\w+", re.UNICODE)
FTS = table("search_fts", column("rowid"))
PG_VECTOR = "search_documents.search_tsv"  # a stored generated column on PostgreSQL (migration 0002)


def _body(product: Product) -> str:
    listing = product.listing
    parts: list[str] = [listing.get("short_description") or "", listing.get("long_description") or ""]
    for key in ("highlights", "tags", "seo_keywords"):
        parts.extend(listing.get(key) or [])
    parts.append(listing.get("seo_description") or "")
    parts.append(listing.get("category") or "")
    return "\n".join(p for p in parts if p)


def index(session: Session, product: Product) -> None:
    document = session.get(SearchDocument, product.id)
    if document is None:
        session.add(SearchDocument(product_id=product.id, title=product.title, body=_body(product)))
    else:
        document.title = product.title
        document.body = _body(product)
    session.flush()


def unindex(session: Session, product: Product) -> None:
    session.execute(delete(SearchDocument).where(SearchDocument.product_id == product.id))


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    category: str | None = None
    pricing_family: str | None = None
    region: str | None = None
    free_trial: bool | None = None


def words(query: str) -> list[str]:
    return [w.lower() for w in WORD_RE.findall(query)][:16]


def _match(session: Session, query: Select[Product], terms: list[str]) -> Select[Product]:
    if not terms:
        return query.join(SearchDocument, SearchDocument.product_id == Product.id).order_by(Product.title, Product.id)
    if session.get_bind().dialect.name == "sqlite":
        # The FTS5 hits are computed once (a materialized CTE) and products joined to them,
        # so the planner cannot turn it into one full-text query per product.
        expression = " ".join(f'"{t}"*' for t in terms)
        hits = (
            select(
                literal_column("rowid").label("product_id"), literal_column("bm25(search_fts, 5.0, 1.0)").label("rank")
            )
            .select_from(FTS)
            .where(text("search_fts MATCH :q").bindparams(q=expression))
            .cte("hits")
            .prefix_with("MATERIALIZED")
        )
        return query.join(hits, hits.c.product_id == Product.id).order_by(hits.c.rank, Product.id)
    tsquery = func.to_tsquery("english", " & ".join(f"{t}:*" for t in terms))
    vector: Any = literal_column(PG_VECTOR)
    return (
        query.join(SearchDocument, SearchDocument.product_id == Product.id)
        .where(vector.op("@@")(tsquery))
        .order_by(func.ts_rank(vector, tsquery).desc(), Product.id)
    )


def _conditions(filters: Filters, *, without: str | None = None) -> list[Any]:
    conditions: list[Any] = [Product.state == "public"]
    if filters.kind and without != "kind":
        conditions.append(Product.kind == filters.kind)
    if filters.category and without != "category":
        conditions.append(Product.category == filters.category)
    if filters.pricing_family and without != "pricing_family":
        conditions.append(Product.pricing_family == filters.pricing_family)
    if filters.free_trial is not None:
        conditions.append(Product.free_trial.is_(filters.free_trial))
    if filters.region:
        conditions.append(
            exists().where(ProductRegion.product_id == Product.id, ProductRegion.region == filters.region)
        )
    return conditions


SORTS = ("relevance", "title", "newest")


def search(
    session: Session, q: str, filters: Filters, *, limit: int = 20, offset: int = 0, sort: str = "relevance"
) -> tuple[list[Product], int]:
    """Public products matching `q` and the filters, best first (or by `sort`), with the total count."""
    query: Select[Product] = select(Product).where(and_(*_conditions(filters)))
    query = _match(session, query, words(q))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    if sort == "title":
        query = query.order_by(None).order_by(Product.title, Product.id)
    elif sort == "newest":
        query = query.order_by(None).order_by(Product.published_at.desc().nulls_last(), Product.id.desc())
    products = list(session.scalars(query.limit(limit).offset(offset)))
    return products, total


FACETS = ("kind", "category", "pricing_family")


def facet_counts(session: Session, q: str, filters: Filters) -> dict[str, dict[str, int]]:
    """For each facet, how many results each of its values would give: the query and every other filter
    applied, the facet's own filter not (so a chosen value's siblings still show what they would find)."""
    terms = words(q)
    out: dict[str, dict[str, int]] = {}
    for facet in FACETS:
        column_ = getattr(Product, facet)
        matching: Any = _match(
            session, select(Product.id, column_).where(and_(*_conditions(filters, without=facet))), terms
        )
        hits = matching.order_by(None).subquery()
        rows = session.execute(
            select(hits.c[facet], func.count()).where(hits.c[facet].is_not(None)).group_by(hits.c[facet])
        )
        out[facet] = {value: count for value, count in sorted(rows, key=lambda row: (-row[1], row[0]))}
    return out
