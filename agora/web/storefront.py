"""The storefront: the front page, search, and product pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from agora.catalog import search, storefront
from agora.web import present
from agora.web.core import get_viewer, page_router, render

router = page_router()


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        data = storefront.front_page(session)
    return render(request, "home.html", {**data, **_labels()})


def _labels() -> dict[str, Any]:
    return {
        "kind_label": present.kind_label,
        "pricing_label": present.pricing_label,
        "category_label": present.category_label,
    }


@router.get("/search", response_class=HTMLResponse)
def search_results(
    request: Request,
    q: str = Query("", max_length=200),
    kind: str = Query("", max_length=24),
    category: str = Query("", max_length=80),
    pricing: str = Query("", max_length=32),
    sort: str = Query("relevance", max_length=16),
    page: int = Query(1, ge=1, le=10_000),
) -> HTMLResponse:
    filters = search.Filters(kind=kind or None, category=category or None, pricing_family=pricing or None)
    with request.app.state.db.reader() as session:
        result = storefront.search_page(session, q, filters, sort=sort, page=page)
    chosen = {"q": q, "kind": kind, "category": category, "pricing": pricing, "sort": sort}

    def link(**change: Any) -> str:
        """This search with some parameters changed (and back to page 1 unless a page is given)."""
        params = {**chosen, "page": 1, **change}
        defaults = {"sort": "relevance", "page": 1}
        return "/search?" + urlencode({k: v for k, v in params.items() if v not in ("", None) and defaults.get(k) != v})

    return render(request, "search.html", {"result": result, "chosen": chosen, "link": link, **_labels()}, 200)


@router.get("/products/{code}", response_class=HTMLResponse)
def product(request: Request, code: str) -> HTMLResponse:
    viewer = get_viewer(request)
    with request.app.state.db.reader() as session:
        page = storefront.product_page(session, code, viewer.principal if viewer else None)
    pricing = present.explain(page.get("software_pricing"), page.get("infrastructure_pricing") or [], page["kind"])
    return render(request, "product.html", {"p": page, "pricing": pricing, **_labels()})


@router.get("/legal/standard-contract", response_class=HTMLResponse)
def standard_contract(request: Request) -> HTMLResponse:
    return render(request, "standard_contract.html")
