"""Full-text search over public listings, one interface over two engines: SQLite FTS5 and PostgreSQL
`tsvector`. The searchable text of a product is kept in `search_documents` (only while it is public);
SQLite mirrors that table into the FTS5 table `search_fts` by triggers, PostgreSQL indexes it with GIN.
Queries are reduced to words, each matched as a prefix, all required."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Select,
    String,
    and_,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    table,
    text,
    union_all,
)
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


def _sqlite_hits(terms: list[str]) -> Any:
    """The FTS5 hits (product id and bm25 rank) of products matching every word (as a prefix), as a
    materialized CTE: computed once, so the planner cannot turn it into one full-text query per product."""
    expression = " ".join(f'"{t}"*' for t in terms)
    return (
        select(literal_column("rowid").label("product_id"), literal_column("bm25(search_fts, 5.0, 1.0)").label("rank"))
        .select_from(FTS)
        .where(text("search_fts MATCH :q").bindparams(q=expression))
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )


def _match(session: Session, query: Select[Product], terms: list[str]) -> Select[Product]:
    if not terms:
        return query.join(SearchDocument, SearchDocument.product_id == Product.id).order_by(Product.title, Product.id)
    if session.get_bind().dialect.name == "sqlite":
        hits = _sqlite_hits(terms)
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


@dataclass(frozen=True)
class Results:
    products: list[Product]
    total: int
    facets: dict[str, dict[str, int]]


def _restrict(session: Session, query: Any, terms: list[str]) -> tuple[Any, Any]:
    """`query` (over products) narrowed to the products matching every word, and the rank to order them by
    (lower is better); without words, unchanged and no rank."""
    if not terms:
        return query, None
    if session.get_bind().dialect.name == "sqlite":
        hits = _sqlite_hits(terms)
        return query.join(hits, hits.c.product_id == Product.id), hits.c.rank
    tsquery = func.to_tsquery("english", " & ".join(f"{t}:*" for t in terms))
    vector: Any = literal_column(PG_VECTOR)
    matched = query.join(SearchDocument, SearchDocument.product_id == Product.id).where(vector.op("@@")(tsquery))
    return matched, -func.ts_rank(vector, tsquery)


def search_with_facets(
    session: Session, q: str, filters: Filters, *, limit: int = 20, offset: int = 0, sort: str = "relevance"
) -> Results:
    """The storefront's search page: one page of products, the total, and each facet's counts (with the
    words and every other filter applied, the facet's own filter not)."""
    terms = words(q)
    if terms:
        return _search_words(session, terms, filters, limit=limit, offset=offset, sort=sort)
    # Browsing: each statement reads one (state, column) index in order, never the table nor a sort.
    matching = select(Product.id).where(and_(*_conditions(filters)))
    total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    ids = list(session.scalars(matching.order_by(*_order(sort, None)).limit(limit).offset(offset)))
    facets: dict[str, dict[str, int]] = {}
    sqlite = session.get_bind().dialect.name == "sqlite"
    for facet in FACETS:
        column_ = getattr(Product, facet)
        conditions = _conditions(filters, without=facet)
        # No `IS NOT NULL` here (None is dropped after): it would steer SQLite into a range scan of the
        # facet's whole index.
        counted = select(column_, func.count()).where(and_(*conditions))
        grouping: Any = column_
        if sqlite and len(conditions) > 1:
            # SQLite would walk the (state, facet) index in group order, looking every public product up in
            # the table to test the other filters; `+column` stops that, so it picks the filters' index.
            grouping = literal_column(f"+products.{facet}")
        facets[facet] = _sorted_counts(session.execute(counted.group_by(grouping)))
    return Results(_load(session, ids), total, facets)


def _search_words(
    session: Session, terms: list[str], filters: Filters, *, limit: int, offset: int, sort: str
) -> Results:
    """With words, matching is the expensive part (PostgreSQL ranks every matching tsvector): it is done
    once, into a materialized CTE of narrow rows, and the total, the three facets' counts and the page's
    ids all come from that CTE in one statement."""
    chosen = {"kind": filters.kind, "category": filters.category, "pricing_family": filters.pricing_family}
    base = select(
        Product.id, Product.kind, Product.category, Product.pricing_family, Product.title, Product.published_at
    )
    narrowed, rank = _restrict(
        session, base.where(and_(*_conditions(Filters(free_trial=filters.free_trial, region=filters.region)))), terms
    )
    hits = narrowed.add_columns(rank.label("rank")).cte("matched").prefix_with("MATERIALIZED")

    def where(without: str | None = None) -> list[Any]:
        return [hits.c[f] == v for f, v in chosen.items() if v and f != without]

    parts: list[Any] = [
        select(literal("total").label("facet"), literal("").label("value"), func.count().label("n"))
        .select_from(hits)
        .where(*where())
    ]
    for facet in FACETS:
        column_ = hits.c[facet]
        parts.append(
            select(literal(facet), column_, func.count()).where(*where(facet), column_.is_not(None)).group_by(column_)
        )
    order = {
        "newest": [hits.c.published_at.desc().nulls_last(), hits.c.id.desc()],
        "title": [hits.c.title, hits.c.id],
    }.get(sort, [hits.c.rank, hits.c.id])
    numbered = select(hits.c.id, func.row_number().over(order_by=order).label("position")).where(*where()).subquery()
    parts.append(
        select(literal("page"), cast(numbered.c.id, String), numbered.c.position).where(
            numbered.c.position > offset, numbered.c.position <= offset + limit
        )
    )
    total = 0
    grouped: dict[str, list[tuple[str, int]]] = {facet: [] for facet in FACETS}
    page: list[tuple[int, int]] = []
    for facet, value, n in session.execute(union_all(*parts)):
        if facet == "total":
            total = n
        elif facet == "page":
            page.append((n, int(value)))
        else:
            grouped[facet].append((value, n))
    ids = [product_id for _, product_id in sorted(page)]
    return Results(_load(session, ids), total, {f: _sorted_counts(rows) for f, rows in grouped.items()})


def _order(sort: str, rank: Any) -> list[Any]:
    if sort == "newest":
        return [Product.published_at.desc().nulls_last(), Product.id.desc()]
    if sort == "relevance" and rank is not None:
        return [rank, Product.id]
    return [Product.title, Product.id]


def _sorted_counts(rows: Any) -> dict[str, int]:
    known = [(value, n) for value, n in rows if value is not None]
    return {value: n for value, n in sorted(known, key=lambda row: (-row[1], row[0]))}


def _load(session: Session, ids: list[int]) -> list[Product]:
    by_id = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    return [by_id[i] for i in ids]
