"""Billing runs (BIL-01/03) and the invoice API: idempotent, resumable after SIGKILL, each party sees its own."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, insert, select

from agora import clock
from agora.auth import Principal
from agora.billing import runs
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import Reading, Source
from agora.models import Buyer, FeeRate, Invoice, InvoiceLine, Product, Role, Seller, Subscription
from tests.factories.metering import BUYER, OTHER, OTHER_BUYER, SAAS, metered_market

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def meter(db: Database, product: str, customer: str, dimension: str, quantity: int) -> None:
    with db.unit_of_work() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.code == product))
        handle = session.scalar(select(Seller.handle).where(Seller.id == seller_id))
        assert seller_id is not None and handle is not None
        reading = Reading(product, dimension, quantity, clock.now(), customer_identifier=customer)
        [outcome] = metering.ingest(session, Principal(Role.SELLER, seller_id, handle), [reading], source=Source.SELLER)
        assert outcome.ok, outcome


def march_usage(db: Database, manual_clock: clock.ManualClock) -> None:
    """The metering market from March 1st, two buyers' usage on March 4th (BUYER 1.10, OTHER_BUYER 0.04)."""
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(T0 + timedelta(days=3, hours=5))
    meter(db, SAAS, "cust-1", "users", 10)
    meter(db, SAAS, "cust-2", "users", 4)
    meter(db, OTHER, "gx-1", "users", 100)


def counts(db: Database) -> tuple[int, int]:
    """Monthly invoices and their lines (the market's manifest contracts also made upfront invoices)."""
    with db.reader() as session:
        monthly = select(Invoice.id).where(Invoice.kind == "monthly")
        invoices = session.scalar(select(func.count()).select_from(monthly.subquery())) or 0
        lines = session.scalar(select(func.count()).where(InvoiceLine.invoice_id.in_(monthly))) or 0
    return invoices, lines


@pytest.mark.rule("BIL-03")
def test_closing_a_month_twice_invoices_once_BIL_03(db: Database, manual_clock: clock.ManualClock) -> None:
    march_usage(db, manual_clock)
    with pytest.raises(runs.PeriodOpen):
        runs.close(db, "2026-03")
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    first = runs.close(db, "2026-03")
    assert [(i["buyer"], i["total"]) for i in first] == [(BUYER, "1.10"), (OTHER_BUYER, "0.04")]
    assert counts(db) == (2, 3)
    again = runs.close(db, "2026-03")
    assert again == first and counts(db) == (2, 3)  # same invoices, nothing twice


@pytest.mark.rule("BIL-01")
def test_one_invoice_per_buyer_with_a_line_per_product_and_charge_BIL_01(
    db: Database, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    for hour in range(3):
        manual_clock.set(T0 + timedelta(days=2, hours=hour))
        meter(db, SAAS, "cust-1", "users", 10)
        meter(db, SAAS, "cust-1", "requests", 1)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    [invoice] = runs.close(db, "2026-03")
    assert [(x["product"], x["charge"], x["dimension"], x["quantity"], x["amount"]) for x in invoice["lines"]] == [
        (SAAS, "usage", "requests", "3", "0.03"),
        (SAAS, "usage", "users", "30", "0.30"),
    ]
    assert "from 3 hourly record(s)" in invoice["lines"][1]["explain"]


def test_the_invoice_api_shows_each_party_only_its_own(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(T0 + timedelta(days=1))
    meter(db, SAAS, "cust-1", "users", 10)
    meter(db, OTHER, "gx-1", "users", 50)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    runs.close(db, "2026-03")

    def get(token: str, path: str = "/api/v1/invoices?period=2026-03") -> dict[str, object]:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        body["invoices"] = [i for i in body["invoices"] if i["kind"] == "monthly"]  # type: ignore[attr-defined]
        return body

    [mine] = get("buyer-token")["invoices"]  # type: ignore[misc]
    assert mine["total"] == "0.60" and len(mine["lines"]) == 2
    assert get("other-buyer-token")["invoices"] == []
    other = client.get(f"/api/v1/invoices/{mine['id']}", headers={"Authorization": "Bearer other-buyer-token"})
    assert other.status_code == 404
    [acme_view] = get("acme-token")["invoices"]  # type: ignore[misc]
    assert [line["product"] for line in acme_view["lines"]] == [SAAS] and acme_view["total"] == "0.10"
    [globex_view] = get("globex-token")["invoices"]  # type: ignore[misc]
    assert [line["product"] for line in globex_view["lines"]] == [OTHER] and globex_view["total"] == "0.50"
    csv_text = client.get("/api/v1/invoices?format=csv", headers={"Authorization": "Bearer buyer-token"}).text
    assert csv_text.splitlines()[0].startswith("invoice,buyer,period,kind,product,charge")
    assert sum(",monthly," in row for row in csv_text.splitlines()) == 2
    assert client.get("/api/v1/invoices").status_code == 401


@pytest.mark.slow
@pytest.mark.rule("BIL-03")
def test_a_billing_run_killed_mid_way_finishes_on_the_next_run_with_nothing_twice_BIL_03(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    """`agora bill` is killed with SIGKILL once some invoices exist; running it again completes the month,
    and the result equals a run that was never interrupted."""
    with clock.use_clock(clock.ManualClock(T0)):
        metered_market(db, T0)
    with db.unit_of_work() as session:
        product_id = session.scalar(select(Product.id).where(Product.code == SAAS))
        session.execute(
            insert(Buyer),
            [{"account": f"{800000000000 + i}", "email": f"k{i}@x.example", "created_at": T0} for i in range(300)],
        )
        buyers = session.scalars(select(Buyer.id).where(Buyer.account.like("8000000%"))).all()
        session.execute(
            insert(Subscription),
            [
                {"buyer_id": b, "product_id": product_id, "customer_identifier": f"k-{b}", "started_at": T0,
                 "created_at": T0, "purchases": {}}
                for b in buyers
            ],
        )  # fmt: skip
    with clock.use_clock(clock.ManualClock(T0 + timedelta(days=5))), db.unit_of_work() as session:
        seller_id = session.scalar(select(Product.seller_id).where(Product.id == product_id))
        assert seller_id is not None
        readings = [Reading(SAAS, "users", 1 + b % 9, clock.now(), customer_identifier=f"k-{b}") for b in buyers]
        metering.ingest(session, Principal(Role.SELLER, seller_id, "acme"), readings, source=Source.SELLER)
    env = {**os.environ, "AGORA_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "agora", "bill", "--period", "2026-03", "--json"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while counts(db)[0] < 20:
        assert first.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    interrupted = counts(db)[0]
    assert 20 <= interrupted < 300
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with db.reader() as session:
        sources = session.scalars(select(Invoice.source).where(Invoice.kind == "monthly")).all()
        monthly = select(Invoice.buyer_id, Invoice.total_cents).where(Invoice.kind == "monthly")
        totals = {buyer_id: cents for buyer_id, cents in session.execute(monthly)}
    assert len(sources) == len(set(sources)) == 300  # every buyer once, none twice
    assert all(totals[b] == round((1 + b % 9) * 0.01 * 100) for b in buyers)


@pytest.mark.rule("BIL-05")
def test_sellers_are_paid_their_software_charges_less_the_listing_fee_once_BIL_05(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    with db.unit_of_work() as session:
        session.add(FeeRate(kind="*", family="*", percent=Decimal("20")))
    manual_clock.set(T0 + timedelta(days=1))
    meter(db, SAAS, "cust-1", "users", 10)  # 0.10
    meter(db, SAAS, "cust-2", "users", 4)  # 0.04
    meter(db, OTHER, "gx-1", "users", 100)  # 1.00, globex's
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    runs.close(db, "2026-03")
    runs.close(db, "2026-03")  # a second run pays nothing twice

    def statements(token: str) -> list[dict[str, Any]]:
        response = client.get("/api/v1/disbursements", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["disbursements"]
        return found

    [globex] = statements("globex-token")
    assert (globex["gross"], globex["listing_fee"], globex["net"]) == ("1.00", "0.20", "0.80")
    assert [(x["product"], x["amount"], x["fee"]) for x in globex["lines"]] == [(OTHER, "1.00", "0.20")]
    [acme] = statements("acme-token")
    with db.reader() as session:
        acme_lines = session.scalars(
            select(InvoiceLine.amount_cents)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .join(Seller, Seller.id == InvoiceLine.seller_id)
            .where(Seller.handle == "acme", Invoice.period == "2026-03")
        ).all()
    assert len(acme["lines"]) == len(acme_lines)  # every invoice line of the month, each once
    gross = Decimal(acme["gross"])
    assert gross * 100 == sum(acme_lines)
    assert Decimal(acme["net"]) == gross - Decimal(acme["listing_fee"])
    assert Decimal(acme["listing_fee"]) == sum(Decimal(x["fee"]) for x in acme["lines"])
    assert len(statements("ops-token")) == 2
    assert client.get("/api/v1/disbursements", headers={"Authorization": "Bearer buyer-token"}).status_code == 403
    report = client.get("/api/v1/reports/2026-03", headers={"Authorization": "Bearer globex-token"}).json()
    assert report["revenue"] == [{"product": OTHER, "charge": "usage", "category": "software", "amount": "1.00"}]
    assert report["usage"] == [{"product": OTHER, "dimension": "users", "quantity": 100}]


def test_an_invoice_renders_as_a_pdf_for_those_who_may_see_it(
    db: Database, client: TestClient, manual_clock: clock.ManualClock
) -> None:
    manual_clock.set(T0)
    metered_market(db, T0)
    manual_clock.set(T0 + timedelta(days=1))
    meter(db, SAAS, "cust-1", "users", 10)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    [invoice] = runs.close(db, "2026-03")
    response = client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers={"Authorization": "Bearer buyer-token"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert f"Invoice {invoice['id']}" in text and "Total: 0.10 USD" in text and "10 users" in text
    other = client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers={"Authorization": "Bearer other-buyer-token"})
    assert other.status_code == 404


def test_agora_bill_waits_for_the_months_jobs_another_worker_is_running(
    db: Database, manual_clock: clock.ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`agora bill` beside a running server: the server's worker may claim one of the month's jobs after the
    command started. The command answers with the month's invoices once that worker is done with it, not
    with fewer as soon as it finds no job to claim."""
    import threading

    from agora import jobs
    from agora.tasks import register_all

    register_all()
    march_usage(db, manual_clock)
    manual_clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    with db.unit_of_work() as session:
        runs.request_close(session, "2026-03")
    jobs.Worker(db, only=frozenset({"billing.close_period"})).run_once()  # the month's invoice job is queued

    server = jobs.Worker(db, only=frozenset({"billing.invoice_buyers"}))
    held: list[jobs.Claimed] = []
    real_worker = jobs.Worker

    def command_worker(db: Database) -> jobs.Worker:
        # After the command took back what was leased, and before its own worker starts, the server claims.
        claimed = server.claim()
        assert claimed is not None
        held.append(claimed)
        return real_worker(db)

    monkeypatch.setattr(jobs, "Worker", command_worker)
    answered: list[list[dict[str, Any]]] = []
    command = threading.Thread(target=lambda: answered.append(runs.close(db, "2026-03")))
    command.start()
    time.sleep(1.0)
    assert command.is_alive() and answered == []  # waiting, not answering "0 invoices"
    server._run(held[0])  # the server's worker finishes the invoice job
    command.join(timeout=60)
    assert not command.is_alive()
    assert [(i["buyer"], i["total"]) for i in answered[0]] == [(BUYER, "1.10"), (OTHER_BUYER, "0.04")]
