"""Software and infrastructure charges kept apart (LST-10): on invoice lines, in the API, CSV and PDF, and in
the sellers' disbursements, which pay software charges only; the DESIGN.md simulate shape is unchanged."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from agora import clock
from agora.billing import rating, runs, simulate
from agora.db import Database
from agora.models import FeeRate
from agora.pricing.versions import Version
from tests.billing.test_simulate import market
from tests.factories.billing import BUYER, DB, HEADERS, QUERY_TIERS, bill_line, billing_market, meter

T0 = datetime(2026, 3, 1, tzinfo=UTC)
APRIL_2 = datetime(2026, 4, 2, tzinfo=UTC)


def hour(day: int, h: int) -> datetime:
    return datetime(2026, 3, day, h, tzinfo=UTC)


def charged_march(db: Database, manual_clock: clock.ManualClock) -> None:
    """1,500 queries in one hour (tiered: 10.00 + 2.50) and 137 GB of egress from the bill (12.33)."""
    manual_clock.set(T0)
    billing_market(db, T0)
    with db.unit_of_work() as session:
        session.add(FeeRate(kind="*", family="*", percent=Decimal("20")))
    manual_clock.set(hour(2, 11))
    meter(db, DB, "db-1", "queries", 1500, hour(2, 10))
    bill_line(db, "db-1", "egress", hour(2, 10), 37)
    manual_clock.set(hour(3, 12))
    bill_line(db, "db-1", "egress", hour(3, 11), 100)
    manual_clock.set(APRIL_2)
    runs.close(db, "2026-03")


@pytest.mark.rule("LST-10")
def test_bill_items_rate_as_infrastructure_charges_everything_else_as_software_LST_10() -> None:
    pricing = {
        "tiered": {
            "period": "hour",
            "items": [
                {"name": "queries", "reporting": "seller", "tiers": QUERY_TIERS},
                {"name": "egress", "reporting": "bill", "tiers": [{"up_to": None, "price": "0.09"}]},
            ],
        }
    }
    subscription = rating.Subscription(1, DB, T0, None, [Version(1, T0, pricing)])
    usage = [rating.Usage(hour(2, 10), "queries", 1500), rating.Usage(hour(2, 10), "egress", 37)]
    lines = rating.rate(subscription, usage, "2026-03")
    assert [(x.dimension, x.unit_price, x.amount, x.category) for x in lines] == [
        ("egress", Decimal("0.09"), Decimal("3.33"), "infrastructure"),
        ("queries", Decimal("0.01"), Decimal("10.00"), "software"),
        ("queries", Decimal("0.005"), Decimal("2.50"), "software"),
    ]
    assert "[PRC-14, LST-10]" in lines[0].explain and "LST-10" not in lines[1].explain


@pytest.mark.rule("LST-10")
def test_the_invoice_shows_software_and_infrastructure_charges_apart_LST_10(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    charged_march(db, manual_clock)
    response = client.get("/api/v1/invoices?period=2026-03", headers=HEADERS["buyer"])
    assert response.status_code == 200, response.text
    [invoice] = response.json()["invoices"]
    assert [(x["dimension"], x["category"], x["amount"]) for x in invoice["lines"]] == [
        ("egress", "infrastructure", "12.33"),
        ("queries", "software", "10.00"),
        ("queries", "software", "2.50"),
    ]
    assert invoice["total"] == "24.83"
    assert invoice["subtotals"] == {"software": "12.50", "infrastructure": "12.33"}

    csv_rows = client.get("/api/v1/invoices?format=csv", headers=HEADERS["buyer"]).text.splitlines()
    assert csv_rows[0].endswith(",explain,category")
    assert [row.rsplit(",", 1)[1] for row in csv_rows[1:]] == ["infrastructure", "software", "software"]

    document = client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=HEADERS["buyer"])
    assert document.status_code == 200
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(document.content)).pages)
    software, infrastructure = text.index("Software charges"), text.index("Infrastructure charges")
    assert software < text.index("Software charges subtotal: 12.50 USD") < infrastructure
    assert infrastructure < text.index("Infrastructure charges subtotal: 12.33 USD") < text.index("Total: 24.83 USD")
    assert client.get(f"/api/v1/invoices/{invoice['id']}", headers=HEADERS["other-buyer"]).status_code == 404


@pytest.mark.rule("LST-10")
@pytest.mark.rule("BIL-05")
def test_disbursements_pay_software_charges_only_LST_10_BIL_05(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    charged_march(db, manual_clock)
    [statement] = client.get("/api/v1/disbursements", headers=HEADERS["acme"]).json()["disbursements"]
    assert (statement["gross"], statement["listing_fee"], statement["net"]) == ("12.50", "2.50", "10.00")
    assert statement["infrastructure_passed_through"] == "12.33"
    assert [(x["charge"], x["amount"], x["fee"]) for x in statement["lines"]] == [
        ("tiered", "10.00", "2.00"),
        ("tiered", "2.50", "0.50"),
    ]  # the egress line is neither paid nor charged a listing fee
    assert any("[LST-10]" in note for note in statement["notes"])
    report = client.get("/api/v1/reports/2026-03", headers=HEADERS["acme"]).json()
    assert {(x["category"], x["amount"]) for x in report["revenue"]} == {
        ("infrastructure", "12.33"),
        ("software", "12.50"),
    }
    assert client.get("/api/v1/disbursements", headers=HEADERS["globex"]).json()["disbursements"] == []


@pytest.mark.rule("LST-10")
def test_simulate_keeps_the_design_shape_without_categories_LST_10() -> None:
    start = {"buyer": BUYER, "product": "vault"}
    result = simulate.run(
        market(
            [
                {"at": "2026-03-01T09:00:00Z", "subscribe": start},
                {
                    "at": "2026-03-01T10:00:00Z",
                    "instance_start": {**start, "instance": "i", "instance_type": "m5.large"},
                },
                {"at": "2026-03-01T14:00:00Z", "instance_stop": {"instance": "i"}},
            ]
        )
    )
    for invoice in result["invoices"]:
        assert set(invoice) == {"buyer", "period", "kind", "currency", "total", "lines"}
        for line in invoice["lines"]:
            assert set(line) == {
                "product", "charge", "instance_type", "dimension", "quantity", "unit_price", "amount", "explain"
            }  # fmt: skip
    assert set(result) == {"invoices", "notifications", "refused"}


def test_agora_bill_json_keeps_its_shape(db: Database, manual_clock: clock.ManualClock) -> None:
    from agora.billing.service import BILL_KEYS, DESIGN_LINE_KEYS, design_shape

    charged_march(db, manual_clock)
    [invoice] = runs.invoices_of(db, "2026-03")
    shaped = design_shape(invoice, BILL_KEYS)
    assert tuple(shaped) == BILL_KEYS and all(tuple(x) == DESIGN_LINE_KEYS for x in shaped["lines"])
