"""Running billing from a command (`agora bill`, `agora simulate`): the same durable jobs a worker runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agora import clock, jobs
from agora.billing import service
from agora.billing.rating import month_bounds
from agora.db import Database
from agora.models import Invoice


class PeriodOpen(Exception):
    pass


def close(db: Database, period: str) -> list[dict[str, Any]]:
    """Close `period` now: enqueue its run (once), work the queue until idle, return its monthly invoices.
    A run interrupted at any point is finished by running this again; nothing is invoiced twice."""
    _, end = month_bounds(period)
    if clock.now() < end:
        raise PeriodOpen(f"{period} has not ended yet")
    with db.unit_of_work() as session:
        jobs.enqueue(session, "billing.close_period", {"period": period}, dedupe_key=f"close-now:{period}")
    jobs.Worker(db).run_until_idle()
    return invoices_of(db, period)


def invoices_of(db: Database, period: str, kind: str | None = "monthly") -> list[dict[str, Any]]:
    with db.reader() as session:
        query = select(Invoice).where(Invoice.period == period).order_by(Invoice.buyer_id, Invoice.id)
        if kind is not None:
            query = query.where(Invoice.kind == kind)
        return [service.invoice_json(session, invoice) for invoice in session.scalars(query)]
