"""AWS JSON 1.1 on `POST /`: the Marketplace Metering and Entitlement services as boto3 calls them.

Decode (`X-Amz-Target`, JSON body), verify SigV4 against the access keys Agora issued, call the same
services as the native API, and encode AWS's success and error shapes (api-surface.md §0–2). No business
rule lives here: each refusal is a `metering.records.Problem` or a subscriptions error, renamed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal, access_key_secret_cached
from agora.compat.aws import sigv4
from agora.compat.errors import ProtocolError
from agora.config import get_settings
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import SELLER_REPORTED, Allocation, Problem, Reading, Source
from agora.models import Role
from agora.validation import bad_text, json_may_hold_bad_text

log = logging.getLogger("agora.compat.aws")
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BATCH = 25
PRODUCT_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/=:_.@")
INT32_MAX = 2_147_483_647


class AwsError(ProtocolError):
    """An error answered as `{"__type": code, "message": …}` (botocore raises `client.exceptions.<code>`)."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


# Every metering problem, as AWS names it.
PROBLEM_CODES: dict[Problem, str] = {
    Problem.UNKNOWN_PRODUCT: "InvalidProductCodeException",
    Problem.WRONG_REGION: "InvalidEndpointRegionException",
    Problem.UNKNOWN_DIMENSION: "InvalidUsageDimensionException",
    Problem.NOT_SUBSCRIBED: "CustomerNotEntitledException",
    Problem.INVALID_QUANTITY: "ValidationException",
    Problem.TIMESTAMP_OUT_OF_BOUNDS: "TimestampOutOfBoundsException",
    Problem.DUPLICATE_CONFLICT: "DuplicateRequestException",
    Problem.TOKEN_CONFLICT: "IdempotencyConflictException",
    Problem.INVALID_ALLOCATIONS: "InvalidUsageAllocationsException",
    Problem.INVALID_TAG: "InvalidTagException",
    Problem.INVALID_CUSTOMER: "InvalidCustomerIdentifierException",
    Problem.WRONG_PRODUCT_KIND: "InvalidProductCodeException",
    Problem.OVERLAPPING_PERIOD: "DuplicateRequestException",  # hourly records never overlap; for completeness
}
# BatchMeterUsage answers these per record; any other problem refuses the whole batch (api-surface §1.5.1).
PER_RECORD = frozenset({Problem.NOT_SUBSCRIBED, Problem.DUPLICATE_CONFLICT})
BATCH_FATAL = frozenset(Problem) - PER_RECORD


def handle(db: Database, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """One SDK request, start to finish; always a reply (errors included)."""
    request_id = str(uuid.uuid4())
    try:
        target = headers.get("x-amz-target", "")
        operation = OPERATIONS.get(target)
        if operation is None:
            raise AwsError("UnknownOperationException", f"unknown operation {target!r}")
        if method != "POST":
            raise AwsError("UnknownOperationException", "AWS JSON operations are POST requests")
        verified, principal = verify(db, method, path, query, headers, body)
        result = operation(db, principal, verified.region, _json(body, target))
        return _reply(200, result, request_id)
    except AwsError as error:
        return _reply(error.status, {"__type": error.code, "message": error.message}, request_id)
    except sigv4.SignatureError as error:
        return _reply(error.status, {"__type": error.code, "message": error.message}, request_id)
    except Exception:  # a fault of Agora's, not the caller's: botocore reads only this shape; the log has the cause
        log.exception("AWS request %s failed", request_id)
        message = f"An internal error occurred. RequestId {request_id}."
        return _reply(500, {"__type": "InternalServiceErrorException", "message": message}, request_id)


def verify(
    db: Database, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
) -> tuple[sigv4.Verified, Principal]:
    """The signature is checked against the key's secret; the key's owner is who is calling."""
    owners: dict[str, Principal] = {}

    def secret_for(access_key_id: str) -> str | None:
        found = access_key_secret_cached(db, access_key_id)
        if found is None:
            return None
        owners[access_key_id] = found[0]
        return found[1]

    verified = sigv4.verify(
        method=method, path=path, query=query, headers=headers, body=body, secret_for=secret_for, now=clock.now()
    )
    return verified, owners[verified.access_key_id]


def _reply(status: int, body: dict[str, Any], request_id: str) -> Reply:
    return Reply(
        status,
        json.dumps(body, separators=(",", ":")).encode(),
        {"content-type": CONTENT_TYPE, "x-amzn-RequestId": request_id},
    )


def _json(body: bytes, target: str) -> dict[str, Any]:
    """The request's members; every string of them valid Unicode without NUL (a JSON escape can spell a lone
    surrogate, which neither database nor encoder takes)."""
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AwsError("SerializationException", "the request body is not valid JSON") from None
    except RecursionError:
        raise AwsError("SerializationException", "the request body nests arrays or objects too deeply") from None
    if not isinstance(payload, dict):
        raise AwsError("SerializationException", "the request body must be a JSON object")
    problems = bad_text(payload, brackets=True) if json_may_hold_bad_text(body) else []
    if problems:
        # The entitlement service models one client error for its parameters; metering a generic one.
        code = "InvalidParameterException" if target.startswith("AWSMPEntitlementService.") else "ValidationException"
        raise AwsError(code, "; ".join(f"{loc or 'the request body'} {problem}" for loc, problem in problems))
    return payload


# --- field decoding ---------------------------------------------------------------------------------------


def _validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def _string(payload: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = 255) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise _validation(
                f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: "
                "Member must not be null"
            )
        return None
    if not isinstance(value, str):
        raise _validation(f"{name} must be a string")
    if len(value) > max_length:
        raise _validation(f"{name} must be at most {max_length} characters")
    return value


def _product_code(payload: Mapping[str, Any], *, required: bool = True) -> str | None:
    code = _string(payload, "ProductCode", required=required)
    if code is not None and not set(code) <= PRODUCT_CODE_CHARS:
        raise AwsError("InvalidProductCodeException", f"ProductCode {code!r} has characters a product code cannot have")
    return code


def _timestamp(value: Any, name: str) -> datetime:
    """Epoch seconds (botocore sends an integer; other SDKs may send a fraction) or an ISO string."""
    if isinstance(value, bool) or value is None:
        raise _validation(f"{name} is required: epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _validation(f"{name} must be a finite number of epoch seconds")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _validation(f"{name} is out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _validation(f"{name} must be epoch seconds or an ISO 8601 time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _validation(f"{name} must be epoch seconds")


def _quantity(value: Any, name: str) -> int:
    if value is None:
        return 0  # the model's default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _validation(f"{name} must be a whole number")
    if value < 0 or value > INT32_MAX:
        raise _validation(f"{name} must be between 0 and {INT32_MAX}")
    return value


def _allocations(value: Any) -> tuple[Allocation, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise AwsError("InvalidUsageAllocationsException", "UsageAllocations must be a list")
    allocations = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise AwsError("InvalidUsageAllocationsException", f"UsageAllocations[{n}] must be an object")
        quantity = item.get("AllocatedUsageQuantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise AwsError(
                "InvalidUsageAllocationsException", f"UsageAllocations[{n}].AllocatedUsageQuantity must be ≥ 0"
            )
        tags = item.get("Tags") or []
        if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("Key"), str) and isinstance(t.get("Value"), str) for t in tags
        ):
            raise AwsError("InvalidTagException", f"UsageAllocations[{n}].Tags must be a list of {{Key, Value}}")
        allocations.append(Allocation(quantity, tuple((t["Key"], t["Value"]) for t in tags)))
    return tuple(allocations)


def _refusal(outcome: metering.Outcome) -> AwsError:
    assert outcome.problem is not None
    return AwsError(PROBLEM_CODES[outcome.problem], outcome.message)


def _seller(principal: Principal, operation: str) -> None:
    if principal.role is not Role.SELLER:
        raise AwsError("AccessDeniedException", f"{operation} is called with the seller's access keys", 400)


def _buyer(principal: Principal, operation: str) -> None:
    if principal.role is not Role.BUYER:
        raise AwsError(
            "AccessDeniedException", f"{operation} is called by the buyer's deployment, with the buyer's access keys"
        )


# --- operations ---------------------------------------------------------------------------------------------


def meter_usage(db: Database, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The buyer's software reports its own usage: one dimension, one hour (MTR-01/04/05)."""
    _buyer(principal, "MeterUsage")
    code = _product_code(payload)
    assert code is not None
    dimension = _string(payload, "UsageDimension")
    assert dimension is not None
    token = _string(payload, "ClientToken", required=False, max_length=64)
    reading = Reading(
        product_code=code,
        dimension=dimension,
        quantity=_quantity(payload.get("UsageQuantity"), "UsageQuantity"),
        timestamp=_timestamp(payload.get("Timestamp"), "Timestamp"),
        allocations=_allocations(payload.get("UsageAllocations")),
        client_token=token,
    )
    if payload.get("DryRun") is True:
        with db.reader() as session:
            outcome = metering.check_only(session, principal, reading, region=region, source=Source.BUYER)
        if outcome is not None:
            raise _refusal(outcome)
        raise AwsError("DryRunOperation", "Request would have succeeded, but the DryRun flag is set.")
    [outcome] = metering.ingest_in(db, principal, [reading], region=region, source=Source.BUYER)
    if not outcome.ok:
        raise _refusal(outcome)
    return {"MeteringRecordId": outcome.record_id}


def batch_meter_usage(db: Database, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The seller reports for its customers, up to 25 records of one product (api-surface §1.2, §1.5). It is the
    SaaS operation: AMI and container products are metered by the buyer's deployment with MeterUsage (§1.1), so
    their product codes are invalid here; managed services are seller-reported too (PRC-14) and accepted."""
    _seller(principal, "BatchMeterUsage")
    code = _product_code(payload, required=False)
    if not code:
        raise AwsError("InvalidProductCodeException", "ProductCode is required: records are metered per product")
    records = payload.get("UsageRecords")
    if not isinstance(records, list):
        raise _validation("UsageRecords must be a list")
    if len(records) > MAX_BATCH:
        raise _validation(f"UsageRecords holds at most {MAX_BATCH} records; this request has {len(records)}")
    readings = []
    for n, record in enumerate(records):
        if not isinstance(record, dict):
            raise _validation(f"UsageRecords[{n}] must be an object")
        if record.get("LicenseArn") is not None:
            raise AwsError(
                "InvalidLicenseException", f"UsageRecords[{n}].LicenseArn is not supported; name the customer instead"
            )
        dimension = _string(record, "Dimension")
        assert dimension is not None
        identifier = _string(record, "CustomerIdentifier", required=False)
        account = _string(record, "CustomerAWSAccountId", required=False)
        if account is not None and not account.isdigit():
            raise AwsError("InvalidCustomerIdentifierException", f"UsageRecords[{n}].CustomerAWSAccountId: digits only")
        readings.append(
            Reading(
                product_code=code,
                dimension=dimension,
                quantity=_quantity(record.get("Quantity"), f"UsageRecords[{n}].Quantity"),
                timestamp=_timestamp(record.get("Timestamp"), f"UsageRecords[{n}].Timestamp"),
                customer_identifier=identifier or None,
                customer_account=account,
                allocations=_allocations(record.get("UsageAllocations")),
            )
        )
    try:
        outcomes = metering.ingest_in(
            db,
            principal,
            readings,
            region=region,
            source=Source.SELLER,
            fatal=BATCH_FATAL,
            kinds=SELLER_REPORTED,
        )
    except metering.BatchRefused as refusal:
        message = refusal.outcome.message
        if refusal.outcome.problem is Problem.WRONG_PRODUCT_KIND:
            message += " (BatchMeterUsage is for SaaS products; server images and containers meter with MeterUsage)"
        raise AwsError(
            PROBLEM_CODES[refusal.outcome.problem or Problem.INVALID_QUANTITY],
            f"UsageRecords[{refusal.index}]: {message}; the batch was not processed",
        ) from None
    results = []
    for record, outcome in zip(records, outcomes, strict=True):
        result: dict[str, Any] = {"UsageRecord": record}
        if outcome.ok:
            result["MeteringRecordId"] = outcome.record_id
            result["Status"] = "Success"
        elif outcome.problem is Problem.NOT_SUBSCRIBED:
            result["Status"] = "CustomerNotSubscribed"
        else:
            result["Status"] = "DuplicateRecord"
        results.append(result)
    return {"Results": results, "UnprocessedRecords": []}


def resolve_customer(session: Session, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """SUB-06, the AWS way: the same service as `POST /api/v1/registrations/resolve`."""
    from agora.subscriptions import service as subscriptions

    token = _string(payload, "RegistrationToken", max_length=4096)
    assert token is not None
    _seller(principal, "ResolveCustomer")
    try:
        resolved = subscriptions.resolve(session, principal, token)
    except subscriptions.ExpiredRegistrationToken as error:
        raise AwsError("ExpiredTokenException", error.detail) from None
    except subscriptions.InvalidRegistrationToken as error:
        raise AwsError("InvalidTokenException", error.detail) from None
    return {
        "CustomerIdentifier": resolved["customer_identifier"],
        "ProductCode": resolved["product_code"],
        "CustomerAWSAccountId": resolved["customer_account"],
    }


def register_usage(session: Session, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A paid container checks its entitlement at start: a signed token the software can verify offline."""
    from agora.metering import registration

    _buyer(principal, "RegisterUsage")
    code = _product_code(payload)
    assert code is not None
    version = payload.get("PublicKeyVersion")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _validation("PublicKeyVersion is required: a whole number ≥ 1")
    nonce = _string(payload, "Nonce", required=False)
    try:
        signature = registration.register(session, principal, code, region=region, key_version=version, nonce=nonce)
    except registration.RegistrationRefused as refusal:
        raise AwsError(refusal.code, refusal.message) from None
    return {"Signature": signature}


ENTITLEMENT_FILTERS = {
    "CUSTOMER_IDENTIFIER": "customer_identifier",
    "DIMENSION": "dimension",
    "CUSTOMER_AWS_ACCOUNT_ID": "customer_account",
    "LICENSE_ARN": "license",
}
MAX_ENTITLEMENTS = 25


def get_entitlements(session: Session, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """SUB-07, the AWS way: the same service as the native entitlements query, paged 25 at a time.

    AWS runs the entitlement service in one region only (api-surface §2: us-east-1; a client configured for
    another region has no endpoint to reach). Agora's is the marketplace's own region, so a request whose SigV4
    scope names another region is refused with the model's client error, whatever product it asks about:
    entitlements are not regional, so a product's own regions do not matter here."""
    from agora.subscriptions import contracts

    def invalid(message: str) -> AwsError:
        return AwsError("InvalidParameterException", message)

    _seller(principal, "GetEntitlements")
    served = get_settings().region
    if region != served:
        raise invalid(
            f"the entitlement service is served in {served} only; this request is signed for {region}. "
            f"Call GetEntitlements with region {served}"
        )
    code = payload.get("ProductCode")
    if not isinstance(code, str) or not code:
        raise invalid("ProductCode is required")
    filters = payload.get("Filter") or {}
    if not isinstance(filters, dict):
        raise invalid("Filter must be a map of filter name to values")
    wanted: dict[str, set[str]] = {}
    for name, values in filters.items():
        if name not in ENTITLEMENT_FILTERS:
            raise invalid(f"unknown filter {name!r}; use one of {', '.join(ENTITLEMENT_FILTERS)}")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise invalid(f"Filter {name} needs a list of at least one string")
        wanted[ENTITLEMENT_FILTERS[name]] = set(values)
    if "customer_identifier" in wanted and "customer_account" in wanted:
        raise invalid("CUSTOMER_IDENTIFIER and CUSTOMER_AWS_ACCOUNT_ID cannot be combined")
    limit = payload.get("MaxResults", MAX_ENTITLEMENTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ENTITLEMENTS:
        raise invalid(f"MaxResults must be 1 to {MAX_ENTITLEMENTS}")
    offset = _page_token(payload.get("NextToken"), invalid)
    rows = [
        row
        for row in contracts.query(session, principal, product_code=code)
        if all(row[field] in values for field, values in wanted.items())
    ]
    page = rows[offset : offset + limit]
    result: dict[str, Any] = {
        "Entitlements": [
            {
                "ProductCode": row["product_code"],
                "Dimension": row["dimension"],
                "CustomerIdentifier": row["customer_identifier"],
                "CustomerAWSAccountId": row["customer_account"],
                "Value": {"IntegerValue": row["value"]},
                "ExpirationDate": datetime.fromisoformat(row["expiration_date"]).timestamp(),
            }
            for row in page
        ]
    }
    if offset + limit < len(rows):
        result["NextToken"] = f"o{offset + limit}"
    return result


_PAGE_TOKEN = re.compile(r"o([0-9]{1,9})")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses


def _page_token(token: Any, invalid: Callable[[str], AwsError]) -> int:
    found = _PAGE_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if token is None:
        return 0
    if found is None:
        raise invalid("NextToken is not one this service issued")
    return int(found.group(1))


Operation = Callable[[Database, Principal, str, dict[str, Any]], dict[str, Any]]


def _in_transaction(operation: Callable[[Session, Principal, str, dict[str, Any]], dict[str, Any]]) -> Operation:
    def run(db: Database, principal: Principal, region: str, payload: dict[str, Any]) -> dict[str, Any]:
        with db.unit_of_work() as session:
            return operation(session, principal, region, payload)

    return run


# The metering operations manage their own transactions (checks on a read snapshot, then a short write).
OPERATIONS: dict[str, Operation] = {
    "AWSMPMeteringService.MeterUsage": meter_usage,
    "AWSMPMeteringService.BatchMeterUsage": batch_meter_usage,
    "AWSMPMeteringService.ResolveCustomer": _in_transaction(resolve_customer),
    "AWSMPMeteringService.RegisterUsage": _in_transaction(register_usage),
    "AWSMPEntitlementService.GetEntitlements": _in_transaction(get_entitlements),
}
