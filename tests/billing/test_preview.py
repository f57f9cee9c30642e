"""ML products in preview (BIL-05): buyers are refunded every charge at the month's close, on a credit note
correcting the monthly invoice, and the seller's disbursement for them is zero, saying why."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agora import clock
from agora.billing import automatic, runs
from agora.db import Database
from agora.manifest.loader import load_data
from agora.manifest.parse import ManifestError
from agora.models import FeeRate, Invoice
from tests.factories.billing import GA_MODEL, HEADERS, MODEL, billing_market, manifest, ml_job

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def closed_march(db: Database, manual_clock: clock.ManualClock) -> list[dict[str, Any]]:
    """90 minutes of batch inference on the preview model and on the generally available one (1.80 each)."""
    manual_clock.set(T0)
    billing_market(db, T0)
    with db.unit_of_work() as session:
        session.add(FeeRate(kind="*", family="*", percent=Decimal("20")))
    manual_clock.set(datetime(2026, 3, 5, 10, 30, tzinfo=UTC))
    ml_job(db, "model-1", 5400, manual_clock.now())
    ml_job(db, "model-ga-1", 5400, manual_clock.now())
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    runs.close(db, "2026-03")
    return runs.invoices_of(db, "2026-03", kind=None)


@pytest.mark.rule("BIL-05")
def test_preview_charges_are_refunded_at_the_close_on_a_credit_note_BIL_05(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    invoice, note = closed_march(db, manual_clock)
    assert (invoice["kind"], invoice["total"]) == ("monthly", "3.60")
    assert [(x["product"], x["charge"], x["amount"]) for x in invoice["lines"]] == [
        (MODEL, "batch_inference", "1.80"),
        (GA_MODEL, "batch_inference", "1.80"),
    ]
    assert (note["kind"], note["period"], note["total"], note["corrects"]) == (
        "credit_note",
        "2026-03",
        "-1.80",
        invoice["id"],
    )
    [refund] = note["lines"]
    assert (refund["product"], refund["charge"], refund["amount"]) == (MODEL, "refund", "-1.80")
    assert "[BIL-05]" in refund["explain"] and "preview" in refund["explain"]
    assert note["issued_at"] == invoice["issued_at"]  # part of the month's close

    runs.close(db, "2026-03")  # a second run refunds nothing twice
    with db.unit_of_work() as session:
        monthly = session.get_one(Invoice, invoice["id"])
        assert automatic.refund_preview_charges(session, [monthly])[0].id == note["id"]
    with db.reader() as session:
        assert session.scalar(select(func.count()).where(Invoice.kind == "credit_note")) == 1


@pytest.mark.rule("BIL-05")
def test_the_seller_is_paid_nothing_for_preview_charges_and_told_why_BIL_05(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    closed_march(db, manual_clock)
    [statement] = client.get("/api/v1/disbursements", headers=HEADERS["acme"]).json()["disbursements"]
    assert (statement["gross"], statement["listing_fee"], statement["net"]) == ("1.80", "0.36", "1.44")
    lines = [(x["product"], x["invoice_kind"], x["billed"], x["amount"], x["fee"]) for x in statement["lines"]]
    assert lines == [
        (MODEL, "monthly", "1.80", "0.00", "0.00"),
        (GA_MODEL, "monthly", "1.80", "1.80", "0.36"),
        (MODEL, "credit_note", "-1.80", "0.00", "0.00"),
    ]
    withheld = [x["note"] for x in statement["lines"] if x["product"] == MODEL]
    assert all(note and "preview" in note and "[BIL-05]" in note for note in withheld)
    assert statement["lines"][1]["note"] is None
    mine = client.get("/api/v1/invoices?period=2026-03", headers=HEADERS["buyer"]).json()["invoices"]
    assert sorted((i["kind"], i["total"]) for i in mine) == [("credit_note", "-1.80"), ("monthly", "3.60")]
    assert client.get("/api/v1/invoices?period=2026-03", headers=HEADERS["other-buyer"]).json()["invoices"] == []


@pytest.mark.rule("BIL-05")
def test_only_ml_products_take_the_preview_flag_BIL_05(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    billing_market(db, T0)
    page = client.get(f"/api/v1/catalog/{MODEL}").json()
    assert page["ml"]["preview"] is True
    saas = {
        "code": "acme-notml",
        "kind": "saas",
        "title": "Not ML",
        "ml": {"preview": True},
    }
    refused = client.post("/api/v1/products", json=saas, headers=HEADERS["acme"])
    assert refused.status_code == 422 and refused.json()["detail"].startswith("ml.preview: ")
    assert "[BIL-05]" in refused.json()["detail"]
    draft = client.post("/api/v1/products", json={**saas, "ml": None}, headers=HEADERS["acme"])
    assert draft.status_code == 201, draft.text
    patched = client.patch("/api/v1/products/acme-notml", json={"ml": {"preview": True}}, headers=HEADERS["acme"])
    assert patched.status_code == 422 and patched.json()["problems"][0]["loc"] == "ml.preview"
    model = {"code": "acme-model-2", "kind": "ml_model", "title": "Model 2", "ml": {"preview": True}}
    created = client.post("/api/v1/products", json=model, headers=HEADERS["acme"])
    assert created.status_code == 201 and created.json()["ml"]["preview"] is True
    not_a_flag = client.post("/api/v1/products", json={**model, "code": "acme-model-3", "ml": {"preview": "maybe"}},
                             headers=HEADERS["acme"])  # fmt: skip
    assert not_a_flag.status_code == 422 and "ml.preview" in not_a_flag.json()["detail"]

    data = manifest(T0)
    data["products"][0]["ml"] = {"preview": True}  # a managed service
    with pytest.raises(ManifestError) as info, db.unit_of_work() as session:
        load_data(data, session)
    assert [str(p) for p in info.value.problems] == [
        "products[0].ml.preview: only ML algorithms and model packages have a preview period [BIL-05]"
    ]
