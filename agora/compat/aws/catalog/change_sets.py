"""StartChangeSet, DescribeChangeSet, ListChangeSets, CancelChangeSet, and the durable jobs that apply a set.

A change set is checked when it is started: its shape, its references, the locks on its entities, and a dry run
of every change through Agora's services inside a savepoint that is rolled back — so what the native API would
refuse is refused here at once, as a ValidationException naming the rule. The set is then stored PREPARING with
its job in the same transaction; the job moves it to APPLYING and a second job applies every change in one
transaction: all of them (SUCCEEDED) or none, with the failing change's ErrorDetailList (FAILED). While a set is
PREPARING or APPLYING, its entities are locked: another set naming them is refused (ResourceInUseException).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import clock, jobs
from agora.auth import Principal
from agora.compat.aws.catalog import entities
from agora.compat.aws.catalog.changes import CHANGES, CREATES, Context
from agora.compat.aws.catalog.entities import CATALOG, iso
from agora.compat.aws.catalog.errors import CatalogError, from_agora, not_found, validation
from agora.errors import AgoraError
from agora.models import ChangeSet, Role, Seller
from agora.validation import bad_text

MAX_CHANGES = 20
RUNNING = ("PREPARING", "APPLYING")
CHANGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
REFERENCE = re.compile(r"\$([A-Za-z0-9_-]{1,100})\.Entity\.Identifier")
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def change_set_arn(seller_id: int, change_set_id: str) -> str:
    return entities.arn(seller_id, "ChangeSet", change_set_id)


def _plain_id(identifier: str) -> str:
    """`prod-abc@1` → `prod-abc`: DescribeChangeSet answers with revisions, and clients send them back."""
    return identifier.split("@", 1)[0]


def _details(change: dict[str, Any], where: str) -> Any:
    if "Details" in change and "DetailsDocument" in change:
        raise validation(f"{where}: give Details or DetailsDocument, not both")
    if "DetailsDocument" in change:
        return change["DetailsDocument"]
    raw = change.get("Details")
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise validation(f"{where}.Details must be a JSON string")
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise validation(f"{where}.Details is not valid JSON") from None
    problems = bad_text(parsed, brackets=True)  # a JSON escape inside the string can spell a lone surrogate
    if problems:
        raise validation("; ".join(f"{where}.Details{'.' + loc if loc else ''} {problem}" for loc, problem in problems))
    return parsed


def _parse(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The requested changes, checked for shape and references; each with its parsed `details`."""
    changes = payload.get("ChangeSet")
    if not isinstance(changes, list) or not 1 <= len(changes) <= MAX_CHANGES:
        raise validation(f"ChangeSet must hold 1 to {MAX_CHANGES} changes")
    named: dict[str, str] = {}  # ChangeName → entity type of the entity its change creates
    parsed = []
    for i, change in enumerate(changes):
        where = f"ChangeSet[{i}]"
        if not isinstance(change, dict):
            raise validation(f"{where} must be an object")
        change_type = change.get("ChangeType")
        entity = change.get("Entity")
        if not isinstance(change_type, str) or not isinstance(entity, dict) or not isinstance(entity.get("Type"), str):
            raise validation(f"{where} needs ChangeType and Entity.Type")
        entity_type = entities.base_type(entity["Type"])
        if change_type not in CHANGES[entity_type]:
            raise validation(f"{where}: {change_type} is not a change type of {entity['Type']}")
        name = change.get("ChangeName")
        if name is not None:
            if not isinstance(name, str) or not CHANGE_NAME.fullmatch(name):
                raise validation(f"{where}.ChangeName must be 1–100 characters of A-Z, a-z, 0-9, _ and -")
            if name in named:
                raise validation(f"{where}.ChangeName {name!r} is used twice in this change set")
        identifier = entity.get("Identifier")
        if change_type in CREATES:
            if identifier is not None:
                raise validation(f"{where}: {change_type} creates its entity; it takes no Entity.Identifier")
        elif not isinstance(identifier, str) or not identifier:
            raise validation(f"{where}.Entity.Identifier is required for {change_type}")
        elif identifier.startswith("$"):
            found = REFERENCE.fullmatch(identifier)
            if found is None or found.group(1) not in named:
                raise validation(
                    f"{where}.Entity.Identifier {identifier} must reference an earlier change of this set that "
                    "creates an entity, as $ChangeName.Entity.Identifier"
                )
            if named[found.group(1)] != entity_type:
                raise validation(
                    f"{where}.Entity.Identifier {identifier} is a {named[found.group(1)]}, not a {entity_type}"
                )
        tags = change.get("EntityTags")
        if tags is not None:
            _tags(tags, f"{where}.EntityTags")
        if name is not None and change_type in CREATES:
            named[name] = entity_type
        elif name is not None:
            named[name] = ""
        parsed.append(
            {
                "ChangeType": change_type,
                "Entity": {"Type": entity["Type"], **({"Identifier": identifier} if identifier else {})},
                "ChangeName": name,
                "details": _details(change, where),
                "EntityTags": tags,
            }
        )
    return parsed


def _tags(tags: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(tags, list) or len(tags) > 200:
        raise validation(f"{where} must be a list of at most 200 {{Key, Value}}")
    for i, tag in enumerate(tags):
        key, value = (tag or {}).get("Key"), (tag or {}).get("Value")
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise validation(f"{where}[{i}] needs a Key of 1–128 characters and a Value of at most 256")
    return tags


def _existing_ids(session: Session, seller_id: int, parsed: list[dict[str, Any]]) -> list[str]:
    ids = []
    for i, change in enumerate(parsed):
        identifier = change["Entity"].get("Identifier")
        if identifier and not identifier.startswith("$"):
            plain = _plain_id(identifier)
            entity = entities.find(session, seller_id, plain)
            if entity is None:
                raise not_found(f"ChangeSet[{i}]: entity {identifier} not found in catalog {CATALOG}")
            if entities.base_type(change["Entity"]["Type"]) != entity.entity_type:
                raise validation(
                    f"ChangeSet[{i}]: {plain} is a {entity.entity_type}@1.0, not {change['Entity']['Type']}"
                )
            if plain not in ids:
                ids.append(plain)
    return ids


def _locked(session: Session, seller_id: int, ids: list[str], own: int | None = None) -> None:
    running = session.scalars(select(ChangeSet).where(ChangeSet.seller_id == seller_id, ChangeSet.status.in_(RUNNING)))
    for other in running:
        if other.id == own:
            continue
        busy = set(other.entity_ids) & set(ids)
        if busy:
            raise CatalogError(
                "ResourceInUseException",
                f"{', '.join(sorted(busy))} is in change set {other.change_set_id}, which is {other.status}; "
                "start this one when it has finished",
            )


class ChangeFailed(Exception):
    def __init__(self, index: int, code: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.code = code
        self.message = message


ERROR_CODES = {
    "ValidationException": "INVALID_INPUT",
    "ResourceNotFoundException": "RESOURCE_NOT_FOUND",
    "AccessDeniedException": "ACCESS_DENIED",
}


def _run(session: Session, principal: Principal, parsed: list[dict[str, Any]]) -> list[str | None]:
    """Apply every change in order; the entity id each acted on. Raises ChangeFailed at the first refusal."""
    ctx = Context(session, principal)
    done: list[str | None] = []
    for i, change in enumerate(parsed):
        entity_type = entities.base_type(change["Entity"]["Type"])
        identifier = change["Entity"].get("Identifier")
        try:
            entity = None
            if identifier:
                reference = REFERENCE.fullmatch(identifier)
                plain = ctx.created[reference.group(1)] if reference else _plain_id(identifier)
                entity = entities.get(session, principal.id, plain)
            apply = CHANGES[entity_type][change["ChangeType"]]
            entity_id = apply(ctx, entity, entity_type, change["details"])
            session.flush()
        except CatalogError as error:
            raise ChangeFailed(i, ERROR_CODES.get(error.code, error.code), error.message) from None
        except AgoraError as error:
            converted = from_agora(error)
            raise ChangeFailed(i, ERROR_CODES.get(converted.code, converted.code), converted.message) from None
        if change["ChangeName"] and change["ChangeType"] in CREATES:
            ctx.created[change["ChangeName"]] = entity_id
        if change.get("EntityTags") and entity_id:
            from agora.compat.aws.catalog.operations import put_tags

            put_tags(session, principal.id, entities.arn(principal.id, entity_type, entity_id), change["EntityTags"])
        done.append(entity_id)
    return done


def _dry_run(session: Session, principal: Principal, parsed: list[dict[str, Any]]) -> None:
    savepoint = session.begin_nested()
    try:
        _run(session, principal, parsed)
    except ChangeFailed as failed:
        savepoint.rollback()
        change = parsed[failed.index]
        raise validation(f"ChangeSet[{failed.index}] ({change['ChangeType']}): {failed.message}") from None
    savepoint.rollback()


def _digest(payload: dict[str, Any]) -> str:
    relevant = {k: payload.get(k) for k in ("ChangeSet", "ChangeSetName", "Intent", "ChangeSetTags")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def seller_of(principal: Principal, operation: str) -> None:
    if principal.role is not Role.SELLER:
        raise CatalogError("AccessDeniedException", f"{operation} is called with a seller's access keys")


def start(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    seller_of(principal, "StartChangeSet")
    entities.require_catalog(payload.get("Catalog"))
    token = payload.get("ClientRequestToken")
    if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= 36):
        raise validation("ClientRequestToken must be 1 to 36 characters")
    digest = _digest(payload)
    if token is not None:
        earlier = session.scalar(
            select(ChangeSet).where(ChangeSet.seller_id == principal.id, ChangeSet.client_request_token == token)
        )
        if earlier is not None:
            if earlier.request_digest != digest:
                raise validation(f"ClientRequestToken {token} was used for a different change set")
            return {
                "ChangeSetId": earlier.change_set_id,
                "ChangeSetArn": change_set_arn(principal.id, earlier.change_set_id),
            }
    intent = payload.get("Intent") or "APPLY"
    if intent not in ("APPLY", "VALIDATE"):
        raise validation("Intent must be VALIDATE or APPLY")
    name = payload.get("ChangeSetName")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 100):
        raise validation("ChangeSetName must be 1 to 100 characters")
    tags = _tags(payload["ChangeSetTags"], "ChangeSetTags") if payload.get("ChangeSetTags") is not None else []
    parsed = _parse(payload)
    # One start at a time per seller, so two sets naming the same entity cannot both pass the lock check. On
    # PostgreSQL the seller's row is locked until commit; SQLite runs one writer at a time anyway.
    session.scalar(select(Seller.id).where(Seller.id == principal.id).with_for_update())
    ids = _existing_ids(session, principal.id, parsed)
    _locked(session, principal.id, ids)
    _dry_run(session, principal, parsed)
    change_set_id = "".join(secrets.choice(ID_CHARS) for _ in range(25))
    change_set = ChangeSet(
        change_set_id=change_set_id,
        seller_id=principal.id,
        name=name,
        intent=intent,
        status="PREPARING",
        client_request_token=token,
        request_digest=digest,
        changes=[{**c, "EntityId": None, "ErrorDetailList": []} for c in parsed],
        entity_ids=ids,
        start_time=clock.now(),
    )
    session.add(change_set)
    session.flush()
    if tags:
        from agora.compat.aws.catalog.operations import put_tags

        put_tags(session, principal.id, change_set_arn(principal.id, change_set_id), tags)
    jobs.enqueue(session, "catalog.prepare_change_set", {"change_set": change_set.id})
    return {"ChangeSetId": change_set_id, "ChangeSetArn": change_set_arn(principal.id, change_set_id)}


@jobs.handler("catalog.prepare_change_set")
def prepare(session: Session, payload: dict[str, Any]) -> None:
    change_set = session.get(ChangeSet, payload["change_set"])
    if change_set is None or change_set.status != "PREPARING":
        return  # cancelled meanwhile, or already prepared
    change_set.status = "APPLYING"
    jobs.enqueue(session, "catalog.apply_change_set", {"change_set": change_set.id})


@jobs.handler("catalog.apply_change_set")
def apply(session: Session, payload: dict[str, Any]) -> None:
    change_set = session.get(ChangeSet, payload["change_set"])
    if change_set is None or change_set.status != "APPLYING":
        return
    seller = session.get_one(Seller, change_set.seller_id)
    principal = Principal(Role.SELLER, seller.id, seller.handle)
    parsed = [dict(c) for c in change_set.changes]
    savepoint = session.begin_nested()
    try:
        done = _run(session, principal, parsed)
    except ChangeFailed as failed:
        savepoint.rollback()
        changes = [dict(c) for c in change_set.changes]
        changes[failed.index]["ErrorDetailList"] = [{"ErrorCode": failed.code, "ErrorMessage": failed.message}]
        change_set.changes = changes
        change_set.status = "FAILED"
        change_set.failure_code = "CLIENT_ERROR"
        change_set.failure_description = (
            f"ChangeSet[{failed.index}] ({parsed[failed.index]['ChangeType']}): {failed.message}"
        )
        change_set.end_time = clock.now()
        return
    if change_set.intent == "VALIDATE":
        savepoint.rollback()
    else:
        savepoint.commit()
        change_set.changes = [
            {**c, "EntityId": entity_id} for c, entity_id in zip(change_set.changes, done, strict=True)
        ]
        change_set.entity_ids = sorted({e for e in done if e} | set(change_set.entity_ids))
    change_set.status = "SUCCEEDED"
    change_set.end_time = clock.now()


def _owned(session: Session, principal: Principal, payload: dict[str, Any], operation: str) -> ChangeSet:
    seller_of(principal, operation)
    entities.require_catalog(payload.get("Catalog"))
    change_set_id = payload.get("ChangeSetId")
    if not isinstance(change_set_id, str) or not change_set_id:
        raise validation("ChangeSetId is required")
    change_set = session.scalar(select(ChangeSet).where(ChangeSet.change_set_id == change_set_id))
    if change_set is None or change_set.seller_id != principal.id:
        raise not_found(f"Change set {change_set_id} not found in catalog {CATALOG}")
    return change_set


def _summary_change(change: dict[str, Any]) -> dict[str, Any]:
    identifier = change.get("EntityId") or change["Entity"].get("Identifier")
    entity: dict[str, Any] = {"Type": change["Entity"]["Type"]}
    if identifier:
        entity["Identifier"] = identifier if identifier.startswith("$") else f"{_plain_id(identifier)}@1"
    item: dict[str, Any] = {
        "ChangeType": change["ChangeType"],
        "Entity": entity,
        "Details": json.dumps(change["details"]),
        "DetailsDocument": change["details"],
        "ErrorDetailList": change.get("ErrorDetailList") or [],
    }
    if change.get("ChangeName"):
        item["ChangeName"] = change["ChangeName"]
    return item


def describe(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    change_set = _owned(session, principal, payload, "DescribeChangeSet")
    result: dict[str, Any] = {
        "ChangeSetId": change_set.change_set_id,
        "ChangeSetArn": change_set_arn(principal.id, change_set.change_set_id),
        "Intent": change_set.intent,
        "StartTime": iso(change_set.start_time),
        "Status": change_set.status,
        "ChangeSet": [_summary_change(c) for c in change_set.changes],
    }
    if change_set.name:
        result["ChangeSetName"] = change_set.name
    if change_set.end_time:
        result["EndTime"] = iso(change_set.end_time)
    if change_set.failure_code:
        result["FailureCode"] = change_set.failure_code
        result["FailureDescription"] = change_set.failure_description
    return result


def cancel(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    change_set = _owned(session, principal, payload, "CancelChangeSet")
    if change_set.status != "PREPARING":
        raise CatalogError(
            "ResourceInUseException",
            f"change set {change_set.change_set_id} is {change_set.status}: "
            "only a PREPARING change set can be cancelled",
        )
    change_set.status = "CANCELLED"
    change_set.end_time = clock.now()
    return {
        "ChangeSetId": change_set.change_set_id,
        "ChangeSetArn": change_set_arn(principal.id, change_set.change_set_id),
    }
