"""Native metering API: batches of up to 1,000 records with a result per record, and usage queries."""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any, NotRequired

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, StringConstraints, with_config
from typing_extensions import TypedDict

from agora.auth import ANY_ROLE, Principal, require
from agora.compat.endpoint import in_thread
from agora.deps import Uow, get_db
from agora.exports import csv_response
from agora.metering import service
from agora.metering import usage as usage_query
from agora.metering.records import Allocation, Problem, Reading, Source, Status
from agora.models import Role
from agora.paging import Page, paging
from agora.validation import Instant

router = APIRouter(prefix="/api/v1", tags=["metering"])
sender = require(Role.SELLER, Role.BUYER)
anyone = require(*ANY_ROLE)

MAX_BATCH = 1000

# A quantity is a JSON integer: not `true`, "5" or 5.0, which lax parsing would turn into a billed amount.
Quantity = Annotated[int, Strict()]


# The body is validated into TypedDicts, not models: a thousand model instances per request cost three times
# as much to build (bench.ingestion_cpu), and the records only pass through to `Reading`s.
@with_config(ConfigDict(extra="forbid"))
class AllocationIn(TypedDict):
    quantity: Quantity
    tags: NotRequired[dict[str, str]]


@with_config(ConfigDict(extra="forbid"))
class RecordIn(TypedDict):
    product_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    dimension: Annotated[str, StringConstraints(min_length=1, max_length=160)]
    quantity: Annotated[Quantity, Field(description="a whole number ≥ 0, as a JSON integer (MTR-01)")]
    timestamp: Annotated[
        AwareDatetime, Field(description="UTC, within the 6 hours before now; stored as its hour (MTR-01)")
    ]
    customer_identifier: NotRequired[Annotated[str, StringConstraints(min_length=1, max_length=128)] | None]
    customer_account: NotRequired[Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")] | None]
    allocations: NotRequired[list[AllocationIn] | None]


@with_config(ConfigDict(extra="forbid"))
class BatchIn(TypedDict):
    records: Annotated[list[RecordIn], Field(min_length=1, max_length=MAX_BATCH)]


def reading(record: RecordIn) -> Reading:
    allocations = record.get("allocations")
    return Reading(
        record["product_code"],
        record["dimension"],
        record["quantity"],
        record["timestamp"],
        record.get("customer_identifier"),
        record.get("customer_account"),
        None
        if allocations is None
        else tuple(Allocation(a["quantity"], tuple(sorted(a.get("tags", {}).items()))) for a in allocations),
    )


class ResultOut(BaseModel):
    index: int
    status: Status
    metering_record_id: str | None
    error: Problem | None
    detail: str | None


class BatchOut(BaseModel):
    results: list[ResultOut]
    accepted: int
    duplicate: int
    refused: int


@router.post("/usage", response_model=BatchOut, response_class=JSONResponse)
async def meter(body: BatchIn, request: Request, principal: Principal = Depends(sender)) -> Response:
    """Meter a batch. Each record is accepted, a duplicate of one already stored (stored once, MTR-05), or
    refused with a reason; accepted records are committed before this answers."""
    source = Source.SELLER if principal.role is Role.SELLER else Source.BUYER
    readings = [reading(record) for record in body["records"]]
    db = get_db(request)
    outcomes = await in_thread(db, partial(service.ingest_in, source=source), db, principal, readings)
    counts = dict.fromkeys(Status, 0)
    results = []
    for index, (status, record_id, problem, message) in enumerate(outcomes):
        counts[status] += 1
        results.append(
            {
                "index": index,
                "status": status,
                "metering_record_id": record_id,
                "error": problem,
                "detail": message or None,
            }
        )
    # Serialized here, not by the response model: a thousand results through FastAPI's encoder cost as much
    # as checking the records. `BatchOut` documents the shape.
    return Response(json.dumps({"results": results, **counts}), media_type="application/json")


CSV_COLUMNS = (
    "metering_record_id",
    "product",
    "customer_identifier",
    "customer_account",
    "dimension",
    "resource",
    "period_start",
    "period_end",
    "quantity",
    "source",
    "received_at",
)


@router.get("/usage", response_model=None)
def usage(
    session: Uow,
    principal: Principal = Depends(anyone),
    product: str | None = None,
    customer: str | None = Query(None, description="customer identifier"),
    dimension: str | None = None,
    start: Annotated[Instant | None, Query(description="from this hour (inclusive)")] = None,
    end: Annotated[Instant | None, Query(description="to this hour (exclusive)")] = None,
    format: str = Query("json", pattern="^(json|csv)$"),
    page: Page = Depends(paging(default=1000, maximum=10_000)),
) -> dict[str, Any] | Response:
    """Usage records the caller may see: a seller its products', a buyer its own. `format=csv` exports."""
    where = usage_query.UsageFilter(product, customer, dimension, start, end, page.after or 0, page.limit)
    records = usage_query.query(session, principal, where)
    next_after = records[-1]["id"] if len(records) == page.limit else None
    if format == "csv":
        exported = csv_response(CSV_COLUMNS, records, "usage.csv")
        page.link(next_after, exported)
        return exported
    page.link(next_after)
    return {"records": records, "next_after": next_after}
