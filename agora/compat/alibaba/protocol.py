"""Alibaba Cloud RPC on `POST /`: PushMeteringData as the Marketplace (`market` 2015-11-01) and Compute Nest
(`computenestsupplier` 2021-05-21) SDKs send it (api-surface.md §5-§8).

Verify the signature (V3 `ACS3-HMAC-SHA256` or legacy v2 `HMAC-SHA1`) against the access keys Agora issued,
decode `Metering`, call `metering.service.ingest`, and answer Alibaba's shapes: `{"RequestId", "Success": true}`
(Market) or `{"RequestId"}` (Compute Nest), and on error `{"RequestId", "HostId", "Code", "Message"}`. The metering
rules themselves (MTR-03/04/05, PRC-14) are the service's; only Alibaba's own limits on a push live here.

Choices where Alibaba's documentation is silent or Agora differs (api-surface.md §9 lists the codes as unknown):

* An instance (`InstanceId`, `ServiceInstanceId`) is a subscription's customer identifier, looked up among the
  calling seller's products only: another seller's instance is "not found", never "forbidden". Market accepts an
  instance of any of the seller's products; Compute Nest only an instance of a managed service.
* Compute Nest names the instance in `ServiceInstanceId`; its records may omit `InstanceId`, and a record that
  gives one must give the same instance.
* An unknown action or version is `InvalidAction.NotFound` with HTTP 404, as Alibaba's gateways answer it (the
  request reached no API, so 404 like the other not-found codes).
* A push is all or nothing: Alibaba answers one error for a push, so one refused entity refuses the push and
  nothing of it is stored.
* An interval is its instance, Key, StartTime and EndTime (Alibaba's docs say nothing of re-pushes). The same
  interval with the same Value again succeeds and stores nothing new (MTR-05); the same instance, Key and
  StartTime with another EndTime or Value is `Duplicate.Metering`; an interval overlapping one already stored
  (or another in the push) for the same instance and Key is `Overlap.Metering`: a stretch of time is reported
  once. Adjacent intervals (one's EndTime the next one's StartTime) do not overlap.
* The request's `RegionId` is not signed into V3 requests and is not checked; the product must be offered in
  the marketplace's own region (MTR-03, checked by the service).
* `meteringAssit` and `SerialNo` are accepted and ignored; so is the "one push per instance per 60 s" rate.
  Every interval must exceed 5 minutes: Agora has no real-time (per-call) billed products.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock
from agora.auth import Principal, access_key_secret
from agora.compat.alibaba import signature
from agora.compat.aws.protocol import Reply
from agora.config import get_settings
from agora.db import Database
from agora.metering import service as metering
from agora.metering.records import Problem, Reading, Source
from agora.models import Product, Role, Subscription
from agora.validation import bad_text, clean_text, text_problem

log = logging.getLogger("agora.compat.alibaba")

CONTENT_TYPE = "application/json"
DEFAULT_HOST = "market.aliyuncs.com"
MAX_RECORDS = 100
MIN_INTERVAL = 300  # seconds: EndTime - StartTime must exceed 5 minutes
# An interval may end a little after the server's clock, by as much as a signature's time may differ from it.
END_SKEW = timedelta(minutes=15)
MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
RECORD_FIELDS = ("InstanceId", "StartTime", "EndTime", "Entities")
_DIGITS = re.compile(r"-?[0-9]{1,19}")
MANAGED_SERVICE = "managed_service"


class AlibabaError(Exception):
    """An error answered as `{"Code": code, "Message": message}`; the SDK raises `ClientException` for 4xx."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# Every metering problem, as an Alibaba error code. Allocations, tags, client tokens and customer accounts are
# never sent through this API, nor does it restrict product kinds; their problems are mapped only so that the
# table is complete.
PROBLEM_CODES: dict[Problem, tuple[str, int]] = {
    Problem.UNKNOWN_PRODUCT: ("InvalidInstance.NotFound", 404),
    Problem.WRONG_REGION: ("InvalidParameter.Region", 400),
    Problem.UNKNOWN_DIMENSION: ("InvalidParameter.Key", 400),
    Problem.NOT_SUBSCRIBED: ("InvalidInstance.NotActive", 400),
    Problem.INVALID_QUANTITY: ("InvalidParameter.Value", 400),
    Problem.TIMESTAMP_OUT_OF_BOUNDS: ("InvalidParameter.Time", 400),
    Problem.DUPLICATE_CONFLICT: ("Duplicate.Metering", 400),
    Problem.TOKEN_CONFLICT: ("Duplicate.Metering", 400),
    Problem.INVALID_ALLOCATIONS: ("InvalidParameter.Metering", 400),
    Problem.INVALID_TAG: ("InvalidParameter.Metering", 400),
    Problem.INVALID_CUSTOMER: ("InvalidParameter.InstanceId", 400),
    Problem.WRONG_PRODUCT_KIND: ("InvalidInstance.NotFound", 404),
    Problem.OVERLAPPING_PERIOD: ("Overlap.Metering", 400),
}
ALL_FATAL = frozenset(Problem)


def handle(db: Database, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """One SDK request, start to finish; always a reply (errors included)."""
    request_id = str(uuid.uuid4()).upper()  # Alibaba's request ids are upper-case UUIDs
    host = headers.get("host") or DEFAULT_HOST
    try:
        principal, verified = _verify(db, method, path, query_string, headers, body)
        _check_params(verified.params)
        served = operations()
        operation = served.get((verified.action, verified.version))
        if operation is None:
            raise AlibabaError(
                "InvalidAction.NotFound",
                f"Specified api is not found: {verified.action!r} of version {verified.version!r}. This endpoint "
                f"serves {', '.join(f'{a} {v}' for a, v in served)}.",
                404,
            )
        result = operation(db, principal, verified.params)
        return _reply(200, {"RequestId": request_id, **result}, request_id)
    except AlibabaError as error:
        return _error(error.status, error.code, error.message, request_id, host)
    except signature.SignatureError as error:
        return _error(error.status, error.code, error.message, request_id, host)
    except Exception:  # an SDK cannot read a bare 500; answer in its shape and keep the cause in the log
        log.exception("Alibaba request %s failed", request_id)
        message = f"The request processing has failed due to some unknown error. RequestId {request_id}."
        return _error(500, "InternalError", message, request_id, host)


def _verify(
    db: Database, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes
) -> tuple[Principal, signature.Verified]:
    found: dict[str, Principal] = {}

    def secret_for(access_key_id: str) -> str | None:
        with db.reader() as session:
            key = access_key_secret(session, access_key_id)
        if key is None:
            return None
        found["principal"] = key[0]
        return key[1]

    verified = signature.verify(
        method=method,
        path=path,
        query_string=query_string,
        headers=headers,
        body=body,
        secret_for=secret_for,
        now=clock.now(),
    )
    return found["principal"], verified


def _reply(status: int, body: dict[str, Any], request_id: str) -> Reply:
    try:
        encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a message quoting text that cannot be written: quote it as U+FFFD instead
        encoded = json.dumps(clean_text(body), separators=(",", ":"), ensure_ascii=False).encode()
    return Reply(status, encoded, {"content-type": CONTENT_TYPE, "x-acs-request-id": request_id})


def _check_params(params: Mapping[str, str]) -> None:
    """Parameters arrive percent-decoded (invalid UTF-8 becomes U+FFFD) but may still carry NUL."""
    for name, value in params.items():
        problem = text_problem(name) or text_problem(value)
        if problem:
            where = name if text_problem(name) is None else "A parameter name"
            raise AlibabaError("InvalidParameter", f"{where} {problem}.")


def _error(status: int, code: str, message: str, request_id: str, host: str) -> Reply:
    return _reply(status, {"RequestId": request_id, "HostId": host, "Code": code, "Message": message}, request_id)


# --- Metering: the JSON string every PushMeteringData carries ------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One entity of one record; `record` and `where` name them in messages (`Metering[0]`, `….Entities[1]`)."""

    record: str
    where: str
    instance: str
    start: datetime
    end: datetime
    key: str
    value: int


def parse_metering(text: str | None, *, service_instance: str | None = None) -> list[Usage]:
    """Decode and check `Metering` as far as it can be checked without the database or the clock.

    `service_instance` is Compute Nest's `ServiceInstanceId`: records may then omit `InstanceId`.
    """
    if not text:
        raise AlibabaError("MissingParameter.Metering", 'The input parameter "Metering" is mandatory; it is missing.')
    try:
        records = json.loads(text)
    except ValueError as error:
        raise AlibabaError("InvalidParameter.Metering", f"Metering is not valid JSON: {error}.") from None
    except RecursionError:
        raise AlibabaError("InvalidParameter.Metering", "Metering nests arrays or objects too deeply.") from None
    problems = bad_text(records, "Metering", brackets=True)
    if problems:
        raise AlibabaError(
            "InvalidParameter.Metering", "; ".join(f"{loc} {problem}" for loc, problem in problems) + "."
        )
    if not isinstance(records, list):
        raise AlibabaError(
            "InvalidParameter.Metering", f"Metering must be a JSON array of records, not a {_json_type(records)}."
        )
    if not records:
        raise AlibabaError("InvalidParameter.Metering", "Metering holds no records; push at least one.")
    if len(records) > MAX_RECORDS:
        raise AlibabaError(
            "InvalidParameter.Metering",
            f"Metering holds at most {MAX_RECORDS} records per push; this one has {len(records)}.",
        )
    usages: list[Usage] = []
    for n, record in enumerate(records):
        usages.extend(_record(record, f"Metering[{n}]", service_instance))
    return usages


def _record(record: Any, where: str, service_instance: str | None) -> list[Usage]:
    if not isinstance(record, dict):
        raise AlibabaError("InvalidParameter.Metering", f"{where} must be an object, not a {_json_type(record)}.")
    required = [name for name in RECORD_FIELDS if not (service_instance and name == "InstanceId")]
    missing = [name for name in required if record.get(name) in (None, "")]
    if missing:
        raise AlibabaError(
            "InvalidParameter.Metering",
            f"{where} lacks {', '.join(missing)}: all fields are required ({', '.join(required)}).",
        )
    instance = record.get("InstanceId")
    if instance is not None and (isinstance(instance, bool) or not isinstance(instance, str | int)):
        raise AlibabaError("InvalidParameter.InstanceId", f"{where}.InstanceId must be a string, got {instance!r}.")
    if service_instance is not None:
        if instance not in (None, "") and str(instance) != service_instance:
            raise AlibabaError(
                "InvalidParameter.InstanceId",
                f"{where}.InstanceId '{instance}' differs from ServiceInstanceId '{service_instance}': a push "
                "reports one service instance; omit InstanceId or give the same one.",
            )
        instance = service_instance
    start = _seconds(record["StartTime"], f"{where}.StartTime")
    end = _seconds(record["EndTime"], f"{where}.EndTime")
    if end <= start:
        raise AlibabaError("InvalidParameter.Time", f"{where}: EndTime {end} must be later than StartTime {start}.")
    if end - start <= MIN_INTERVAL:
        raise AlibabaError(
            "InvalidParameter.Time",
            f"{where}: EndTime - StartTime is {end - start} seconds; it must be more than {MIN_INTERVAL} "
            "seconds (5 minutes).",
        )
    entities = record["Entities"]
    if not isinstance(entities, list) or not entities:
        raise AlibabaError(
            "InvalidParameter.Metering", f"{where}.Entities must be a non-empty array of {{Key, Value}}."
        )
    usages = []
    for m, entity in enumerate(entities):
        place = f"{where}.Entities[{m}]"
        if not isinstance(entity, dict):
            raise AlibabaError("InvalidParameter.Metering", f"{place} must be an object, not a {_json_type(entity)}.")
        absent = [name for name in ("Key", "Value") if entity.get(name) in (None, "")]
        if absent:
            raise AlibabaError(
                "InvalidParameter.Metering", f"{place} lacks {', '.join(absent)}: all fields are required (Key, Value)."
            )
        key = entity["Key"]
        if not isinstance(key, str):
            raise AlibabaError("InvalidParameter.Key", f"{place}.Key must be a string, got {key!r}.")
        usages.append(
            Usage(
                where,
                place,
                str(instance),
                _instant(start),
                _instant(end),
                key,
                _value(entity["Value"], f"{place}.Value"),
            )
        )
    return usages


def _whole(value: Any) -> int | None:
    """A whole number given as a JSON number or a string of digits (Alibaba's examples quote both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _seconds(value: Any, where: str) -> int:
    seconds = _whole(value)
    if seconds is None or not 0 <= seconds <= MAX_EPOCH:
        raise AlibabaError("InvalidParameter.Time", f"{where} must be whole Unix seconds, got {value!r}.")
    return seconds


def _value(value: Any, where: str) -> int:
    """Negative values pass: the service refuses them with the rule that forbids them (MTR-04)."""
    quantity = _whole(value)
    if quantity is None:
        raise AlibabaError("InvalidParameter.Value", f"{where} must be a whole number ≥ 0, got {value!r}.")
    return quantity


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


# --- instances ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Instance:
    product_code: str
    kind: str


def _instances(session: Session, seller: Principal, names: set[str]) -> dict[str, list[_Instance]]:
    """The seller's subscriptions with these customer identifiers (unique per product, so one name may in
    principle belong to two of the seller's products)."""
    rows = session.execute(
        select(Subscription.customer_identifier, Product.code, Product.kind)
        .join(Product, Product.id == Subscription.product_id)
        .where(Product.seller_id == seller.id, Subscription.customer_identifier.in_(sorted(names)))
        .order_by(Product.code)
    )
    found: dict[str, list[_Instance]] = {}
    for name, code, kind in rows:
        found.setdefault(name, []).append(_Instance(code, kind))
    return found


def _product_of_push(session: Session, seller: Principal, usages: list[Usage], *, managed_only: bool) -> str:
    """The one product every instance of the push belongs to."""
    names = {usage.instance for usage in usages}
    found = _instances(session, seller, names)
    products: dict[str, str] = {}  # product code → the first instance of it
    seen: set[str] = set()
    for usage in usages:
        if usage.instance in seen:
            continue
        seen.add(usage.instance)
        candidates = [i for i in found.get(usage.instance, []) if not managed_only or i.kind == MANAGED_SERVICE]
        if not candidates:
            what = "service instance of your managed services" if managed_only else "instance of your products"
            raise AlibabaError(
                "InvalidInstance.NotFound",
                f"{usage.record}: there is no {what} with id '{usage.instance}'.",
                404,
            )
        if len(candidates) > 1:
            codes = ", ".join(c.product_code for c in candidates)
            raise AlibabaError(
                "InvalidParameter.InstanceId",
                f"Instance '{usage.instance}' is a customer identifier of several of your products ({codes}); "
                "push its usage through the native API, which names the product.",
            )
        products.setdefault(candidates[0].product_code, usage.instance)
    if len(products) > 1:
        listed = "; ".join(f"'{instance}' of {code}" for code, instance in products.items())
        raise AlibabaError(
            "InvalidParameter.InstanceId",
            f"All instances of one push must belong to one product; this push names {listed}.",
        )
    [code] = products
    return code


# --- operations ----------------------------------------------------------------------------------------------


def _seller(principal: Principal, action: str) -> None:
    if principal.role is not Role.SELLER:
        raise AlibabaError(
            "Forbidden.AccessDenied",
            f"{action} is called with the seller's access key; this key belongs to {principal.role.value} "
            f"'{principal.handle}'.",
            403,
        )


def _push(db: Database, seller: Principal, usages: list[Usage], *, managed_only: bool) -> None:
    """Store every entity of the push, or none of them."""
    now = clock.now()
    late = next((u for u in usages if u.end > now + END_SKEW), None)
    if late is not None:
        raise AlibabaError(
            "InvalidParameter.Time",
            f"{late.record}.EndTime {_iso(late.end)} is in the future (server time "
            f"{_iso(now)}): push usage for intervals that have ended.",
        )
    with db.unit_of_work() as session:
        code = _product_of_push(session, seller, usages, managed_only=managed_only)
        readings = [
            Reading(
                product_code=code,
                dimension=usage.key,
                quantity=usage.value,
                timestamp=usage.start,
                customer_identifier=usage.instance,
                period_end=usage.end,
                exact=True,
            )
            for usage in usages
        ]
        try:
            outcomes = metering.ingest(
                session, seller, readings, region=get_settings().region, source=Source.SELLER, fatal=ALL_FATAL
            )
        except metering.BatchRefused as refusal:
            raise _refusal(usages[refusal.index], refusal.outcome) from None
        # Conflicts with stored records (or within the push) are found after the insert: raising here rolls
        # the whole push back.
        for usage, outcome in zip(usages, outcomes, strict=True):
            if not outcome.ok:
                raise _refusal(usage, outcome)


def _refusal(usage: Usage, outcome: metering.Outcome) -> AlibabaError:
    code, status = PROBLEM_CODES[outcome.problem or Problem.INVALID_QUANTITY]
    return AlibabaError(
        code,
        f"{usage.where} (instance '{usage.instance}', Key '{usage.key}', StartTime {int(usage.start.timestamp())}): "
        f"{outcome.message}. Nothing of this push was stored.",
        status,
    )


def market_push_metering_data(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    """Marketplace 2015-11-01: usage of the seller's instances, all of one product (api-surface §6)."""
    _seller(principal, "PushMeteringData")
    _push(db, principal, parse_metering(params.get("Metering")), managed_only=False)
    return {"Success": True}


def compute_nest_push_metering_data(db: Database, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    """Compute Nest 2021-05-21: usage of one service instance of a managed service (api-surface §7)."""
    _seller(principal, "PushMeteringData")
    instance = params.get("ServiceInstanceId")
    if not instance:
        raise AlibabaError(
            "MissingParameter.ServiceInstanceId",
            'The input parameter "ServiceInstanceId" is mandatory; it is missing.',
        )
    usages = parse_metering(params.get("Metering"), service_instance=instance)
    _push(db, principal, usages, managed_only=True)
    return {}


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Operation = Callable[[Database, Principal, Mapping[str, str]], dict[str, Any]]
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("PushMeteringData", "2015-11-01"): market_push_metering_data,
    ("PushMeteringData", "2021-05-21"): compute_nest_push_metering_data,
}


def operations() -> dict[tuple[str, str], Operation]:
    """Every action served: metering here, the seller's license and order checks in `licenses` (which imports
    this module, hence the import at call time)."""
    from agora.compat.alibaba import licenses

    return {**OPERATIONS, **licenses.OPERATIONS}
