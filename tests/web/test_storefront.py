"""The storefront's pages: front page, search with facets and pages, product pages (LST-10, OFR-03)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from fastapi.testclient import TestClient

from agora.db import Database
from agora.manifest.loader import load_data
from tests.web.conftest import sign_in
from tests.web.market import BUYER, EVIL_TITLE, OTHER_BUYER


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_the_front_page_has_search_categories_and_products(browser: TestClient) -> None:
    page = browser.get("/")
    assert page.status_code == 200
    assert '<label for="q">Search</label>' in page.text and ">Search</button>" in page.text
    assert 'href="/search?category=databases"' in page.text
    assert 'href="/products/openfield-linux"' in page.text
    assert "15 products" in text_of(page.text)


def test_search_counts_each_facet_with_the_other_filters(browser: TestClient) -> None:
    page = text_of(browser.get("/search?kind=ami").text)
    assert "Showing 1–7 of 7 products" in page
    # the kind facet still offers the other kinds, counted without the kind filter
    assert re.search(r"SaaS 3 ", page) and re.search(r"Server image 7 ", page)
    # the category facet counts server images only
    assert re.search(r"Databases 2 ", page) and "Analytics" not in page


def test_search_finds_by_words_and_combines_filters(browser: TestClient) -> None:
    page = browser.get("/search?q=vault")
    assert 'href="/products/acme-vault"' in page.text and "of 1 product" in text_of(page.text)
    both = browser.get("/search?q=northwind&category=databases&pricing=hourly_annual")
    assert 'href="/products/northwind-db"' in both.text and "of 1 product" in text_of(both.text)


def test_empty_results_suggest_removing_filters(browser: TestClient) -> None:
    page = text_of(browser.get("/search?q=nothingmatchesthis&kind=ami").text)
    assert "Nothing matches “nothingmatchesthis” with these filters" in page
    assert "Remove all filters" in page and "fewer or more general words" in page


def test_search_pages_and_sorts(browser: TestClient, db: Database) -> None:
    extra = [
        {
            "code": f"tool-{n:02d}",
            "seller": "openfield",
            "kind": "saas",
            "title": f"Zeta Tool {n:02d}",
            "short_description": "A paging test",
            "category": "developer-tools",
            "regions": ["us-east-1"],
            "state": "public",
            "pricing": {"free": True},
        }
        for n in range(25)
    ]
    with db.unit_of_work() as session:
        load_data({"sellers": [{"id": "openfield", "name": "Openfield Community"}], "products": extra}, session)
    first = browser.get("/search?q=zeta&sort=title")
    assert "Showing 1–20 of 25 products" in text_of(first.text)
    assert "Page 1 of 2" in first.text and 'href="/search?q=zeta&amp;sort=title&amp;page=2"' in first.text
    second = browser.get("/search?q=zeta&sort=title&page=2")
    assert "Showing 21–25 of 25" in text_of(second.text)
    titles = re.findall(r"Zeta Tool (\d\d)", second.text)
    assert titles == ["20", "21", "22", "23", "24"]
    beyond = browser.get("/search?q=zeta&page=9")
    assert beyond.status_code == 200 and "Nothing matches" in text_of(beyond.text)


@pytest.mark.rule("LST-10")
def test_a_product_page_shows_software_and_infrastructure_charges_side_by_side(browser: TestClient) -> None:
    page = browser.get("/products/acme-vault")
    text = text_of(page.text)
    assert page.status_code == 200
    assert "Software and infrastructure charges" in text
    assert "m5.large us-east-1 $0.10 $0.096" in text
    assert "m5.xlarge us-east-1 $0.20 $0.192" in text
    assert "14-day free trial" in text and "Infrastructure charges still apply during the trial" in text
    assert "$700.00 save 20%" in text  # annual against 8,760 hours of $0.10
    assert 'href="/products/acme-vault/subscribe"' in page.text and ">Subscribe</a>" in page.text
    assert "Full refund within 48 hours" in text and 'href="/legal/standard-contract"' in page.text


def test_contract_usage_and_tiered_prices_are_explained(browser: TestClient) -> None:
    crm = text_of(browser.get("/products/acme-crm").text)
    assert "Named user seats $12.00 $120.00 $228.00 $324.00" in crm
    assert "Extra sandbox environments — $500.00 — $1,350.00" in crm
    analytics = text_of(browser.get("/products/acme-analytics").text)
    assert "Active users per hour UserHrs $0.125" in analytics
    search = text_of(browser.get("/products/acme-search-managed").text)
    assert "1 to 1,000 $0.01" in search and "Above 10,000" in search


@pytest.mark.rule("OFR-03")
def test_only_the_offer_s_buyer_sees_its_banner(browser: TestClient, offer_id: str) -> None:
    assert "private offer" not in browser.get("/products/acme-vault").text
    sign_in(browser, *OTHER_BUYER)
    assert "private offer" not in browser.get("/products/acme-vault").text
    browser.cookies.clear()
    sign_in(browser, *BUYER)
    page = browser.get("/products/acme-vault")
    assert "You have a private offer for this product." in page.text
    assert f'href="/account/offers/{offer_id}"' in page.text
    assert "private offer" not in browser.get("/products/acme-crm").text


def test_listing_text_renders_as_text(browser: TestClient) -> None:
    for path in ("/products/evil-tool", "/search?q=evil", "/"):
        page = browser.get(path)
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page.text
    assert EVIL_TITLE in unescape(browser.get("/products/evil-tool").text)


def test_a_product_nobody_may_see_is_not_found(browser: TestClient, db: Database) -> None:
    with db.unit_of_work() as session:
        load_data(
            {
                "products": [
                    {"code": "secret-draft", "seller": "acme", "kind": "saas", "title": "Secret", "state": "draft"}
                ]
            },
            session,
        )
    assert browser.get("/products/secret-draft").status_code == 404
    assert browser.get("/search?q=secret").text.count("secret-draft") == 0


@pytest.mark.parametrize("q", ["", "northwind", "acme cache"])
def test_each_facet_count_is_what_choosing_it_finds(db: Database, offer_id: str, q: str) -> None:
    from agora.catalog import search

    with db.reader() as session:
        chosen = search.Filters(category="databases") if not q else search.Filters()
        found = search.search_with_facets(session, q, chosen)
        assert found.total == search.search(session, q, chosen)[1]
        for value, count in found.facets["kind"].items():
            narrowed = search.Filters(kind=value, category=chosen.category)
            assert search.search_with_facets(session, q, narrowed).total == count
            assert search.search(session, q, narrowed)[1] == count
