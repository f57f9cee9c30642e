"""The Catalog API's read operations and tagging: DescribeEntity, ListEntities, BatchDescribeEntities,
ListChangeSets, TagResource, UntagResource, ListTagsForResource. A seller sees only its own entities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from agora.auth import Principal
from agora.compat.aws.catalog import change_sets, entities
from agora.compat.aws.catalog.entities import CATALOG, Entity, iso
from agora.compat.aws.catalog.errors import not_found, validation
from agora.models import CatalogTag, ChangeSet


def _page(token: Any) -> int:
    if token is None:
        return 0
    if not isinstance(token, str) or not token.startswith("o") or not token[1:].isascii() or not token[1:].isdigit():
        raise validation("NextToken is not one this service issued")
    return int(token[1:])


def _limit(payload: dict[str, Any], most: int, default: int) -> int:
    limit = payload.get("MaxResults", default)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise validation(f"MaxResults must be 1 to {most}")
    return limit


def _paged(items: list[dict[str, Any]], payload: dict[str, Any], key: str, most: int, default: int) -> dict[str, Any]:
    """One page; NextToken only when more follow (never empty)."""
    offset, limit = _page(payload.get("NextToken")), _limit(payload, most, default)
    result: dict[str, Any] = {key: items[offset : offset + limit]}
    if offset + limit < len(items):
        result["NextToken"] = f"o{offset + limit}"
    return result


def _matches(value: Any, condition: dict[str, Any], name: str) -> bool:
    """One filter: ValueList (any of), WildCardValue (contains, case-insensitive), DateRange."""
    values = value if isinstance(value, list) else [value]
    if not isinstance(condition, dict):
        raise validation(f"filter {name} must be an object")
    if "ValueList" in condition:
        wanted = condition["ValueList"]
        if not isinstance(wanted, list) or not wanted:
            raise validation(f"filter {name}.ValueList must list at least one value")
        if not any(v in wanted for v in values):
            return False
    if "WildCardValue" in condition:
        needle = str(condition["WildCardValue"]).lower()
        if not any(needle in str(v or "").lower() for v in values):
            return False
    if "DateRange" in condition:
        window = condition["DateRange"] or {}
        moment = str(values[0] or "")
        if window.get("AfterValue") and moment < str(window["AfterValue"]):
            return False
        if window.get("BeforeValue") and moment > str(window["BeforeValue"]):
            return False
    return True


# --- entities -----------------------------------------------------------------------------------------------


def _seller(principal: Principal, operation: str) -> None:
    change_sets.seller_of(principal, operation)


def describe_entity(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "DescribeEntity")
    entities.require_catalog(payload.get("Catalog"))
    entity_id = payload.get("EntityId")
    if not isinstance(entity_id, str) or not entity_id:
        raise validation("EntityId is required")
    return entities.described(session, entities.get(session, principal.id, entity_id.split("@", 1)[0]))


def batch_describe_entities(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "BatchDescribeEntities")
    requests = payload.get("EntityRequestList")
    if not isinstance(requests, list) or not 1 <= len(requests) <= 20:
        raise validation("EntityRequestList must hold 1 to 20 requests")
    details: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for i, request in enumerate(requests):
        if not isinstance(request, dict) or not isinstance(request.get("EntityId"), str):
            raise validation(f"EntityRequestList[{i}] needs Catalog and EntityId")
        entity_id = request["EntityId"]
        if request.get("Catalog") != CATALOG:
            errors[entity_id] = {"ErrorCode": "ValidationException", "ErrorMessage": f"Catalog must be {CATALOG}"}
            continue
        entity = entities.find(session, principal.id, entity_id.split("@", 1)[0])
        if entity is None:
            errors[entity_id] = {
                "ErrorCode": "ResourceNotFoundException",
                "ErrorMessage": f"Entity {entity_id} not found in catalog {CATALOG}",
            }
            continue
        described = entities.described(session, entity)
        details[entity_id] = {k: v for k, v in described.items() if k != "Details"}
    return {"EntityDetails": details, "Errors": errors}


SORT_FIELDS = {
    "EntityId": "EntityId",
    "Name": "Name",
    "ProductTitle": "Name",
    "Visibility": "Visibility",
    "LastModifiedDate": "LastModifiedDate",
    "ProductId": "ProductId",
    "ReleaseDate": "LastModifiedDate",
    "AvailabilityEndDate": "AvailabilityEndDate",
    "BuyerAccounts": "BuyerAccounts",
    "State": "State",
    "Targeting": "Targeting",
}


def _facts(summary: dict[str, Any]) -> dict[str, Any]:
    facts = {
        "EntityId": summary["EntityId"],
        "Name": summary["Name"],
        "ProductTitle": summary["Name"],
        "Visibility": summary["Visibility"],
        "LastModifiedDate": summary["LastModifiedDate"],
    }
    offer = summary.get("OfferSummary")
    if offer:
        facts.update(
            ProductId=offer["ProductId"],
            AvailabilityEndDate=offer["AvailabilityEndDate"],
            BuyerAccounts=offer["BuyerAccounts"],
            State=offer["State"],
            Targeting=offer["Targeting"],
            ReleaseDate=summary["LastModifiedDate"] if offer["State"] == "Released" else None,
        )
    return facts


def _sorted(items: list[dict[str, Any]], sort: Any) -> list[dict[str, Any]]:
    if not sort:
        return items
    if not isinstance(sort, dict):
        raise validation("Sort must be an object with SortBy and SortOrder")
    by = sort.get("SortBy") or "LastModifiedDate"
    if by not in SORT_FIELDS:
        raise validation(f"SortBy must be one of {', '.join(SORT_FIELDS)}")
    order = sort.get("SortOrder") or "ASCENDING"
    if order not in ("ASCENDING", "DESCENDING"):
        raise validation("SortOrder must be ASCENDING or DESCENDING")
    field = SORT_FIELDS[by]
    return sorted(items, key=lambda s: str(_facts(s).get(field) or ""), reverse=order == "DESCENDING")


def list_entities(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "ListEntities")
    entities.require_catalog(payload.get("Catalog"))
    entity_type = payload.get("EntityType")
    if not isinstance(entity_type, str):
        raise validation("EntityType is required")
    base = entities.base_type(entity_type)
    ownership = payload.get("OwnershipType") or "SELF"
    if ownership not in ("SELF", "SHARED"):
        raise validation("OwnershipType must be SELF or SHARED")
    found: list[Entity] = entities.all_of(session, principal.id, base) if ownership == "SELF" else []
    summaries = [entities.summary(session, e) for e in found]
    conditions: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(payload.get("FilterList") or []):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise validation(f"FilterList[{i}] needs a Name")
        conditions.append((item["Name"], {"ValueList": item.get("ValueList") or []}))
    type_filters = payload.get("EntityTypeFilters") or {}
    if type_filters:
        key = f"{base}Filters"
        if set(type_filters) != {key}:
            raise validation(f"EntityTypeFilters for {base} must be {key}")
        conditions += list((type_filters[key] or {}).items())
    for name, condition in conditions:
        if name not in SORT_FIELDS:
            raise validation(f"unknown filter {name!r}; filter on one of {', '.join(SORT_FIELDS)}")
        summaries = [s for s in summaries if _matches(_facts(s).get(name), condition, name)]
    type_sort = payload.get("EntityTypeSort") or {}
    sort = payload.get("Sort")
    if type_sort:
        key = f"{base}Sort"
        if set(type_sort) != {key}:
            raise validation(f"EntityTypeSort for {base} must be {key}")
        sort = type_sort[key]
    summaries = _sorted(summaries, sort)
    return _paged(summaries, payload, "EntitySummaryList", 50, 20)


# --- change sets ------------------------------------------------------------------------------------------

CHANGE_SET_FILTERS: dict[str, Callable[[ChangeSet], Any]] = {
    "ChangeSetId": lambda c: c.change_set_id,
    "ChangeSetName": lambda c: c.name,
    "Status": lambda c: c.status,
    "EntityId": lambda c: list(c.entity_ids),
}
TIME_FILTERS = ("AfterStartTime", "BeforeStartTime", "AfterEndTime", "BeforeEndTime")
CHANGE_SET_SORTS: dict[str, Callable[[ChangeSet], Any]] = {
    "ChangeSetId": lambda c: c.change_set_id,
    "Name": lambda c: c.name or "",
    "StartTime": lambda c: c.start_time,
    "EndTime": lambda c: iso(c.end_time) or "",
    "Status": lambda c: c.status,
}


def list_change_sets(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "ListChangeSets")
    entities.require_catalog(payload.get("Catalog"))
    rows = list(session.scalars(select(ChangeSet).where(ChangeSet.seller_id == principal.id).order_by(ChangeSet.id)))
    for i, wanted in enumerate(payload.get("FilterList") or []):
        name = (wanted or {}).get("Name")
        values = (wanted or {}).get("ValueList") or []
        if name in CHANGE_SET_FILTERS:
            getter = CHANGE_SET_FILTERS[name]
            rows = [c for c in rows if _matches(getter(c), {"ValueList": values}, name)]
        elif name in TIME_FILTERS:
            if len(values) != 1:
                raise validation(f"FilterList[{i}] {name} takes one time")
            column = "start_time" if "Start" in name else "end_time"
            bound = str(values[0])
            after = name.startswith("After")
            rows = [
                c
                for c in rows
                if (moment := iso(getattr(c, column))) is not None
                and ((moment >= bound) if after else (moment <= bound))
            ]
        else:
            names = [*CHANGE_SET_FILTERS, *TIME_FILTERS]
            raise validation(f"FilterList[{i}].Name must be one of {', '.join(names)}")
    sort = payload.get("Sort")
    if sort:
        by = sort.get("SortBy") or "StartTime"
        if by not in CHANGE_SET_SORTS:
            raise validation(f"SortBy must be one of {', '.join(CHANGE_SET_SORTS)}")
        order = sort.get("SortOrder") or "ASCENDING"
        if order not in ("ASCENDING", "DESCENDING"):
            raise validation("SortOrder must be ASCENDING or DESCENDING")
        rows.sort(key=CHANGE_SET_SORTS[by], reverse=order == "DESCENDING")
    items = []
    for c in rows:
        item: dict[str, Any] = {
            "ChangeSetId": c.change_set_id,
            "ChangeSetArn": change_sets.change_set_arn(principal.id, c.change_set_id),
            "StartTime": iso(c.start_time),
            "Status": c.status,
            "EntityIdList": list(c.entity_ids),
        }
        if c.name:
            item["ChangeSetName"] = c.name
        if c.end_time:
            item["EndTime"] = iso(c.end_time)
        if c.failure_code:
            item["FailureCode"] = c.failure_code
        items.append(item)
    return _paged(items, payload, "ChangeSetSummaryList", 20, 20)


# --- tags ------------------------------------------------------------------------------------------------


def _resource(session: Session, principal: Principal, payload: dict[str, Any]) -> str:
    """The ARN of one of the caller's entities or change sets."""
    resource = payload.get("ResourceArn")
    if not isinstance(resource, str) or "/" not in resource:
        raise validation("ResourceArn must be the ARN of an entity or a change set")
    expected_prefix = entities.arn(principal.id, "", "").rsplit("/", 2)[0]
    kind, _, identifier = resource.rpartition("/")
    kind = kind.rsplit("/", 1)[-1]
    if not resource.startswith(expected_prefix + "/"):
        raise not_found(f"Resource {resource} not found")
    if kind == "ChangeSet":
        owned = session.scalar(select(ChangeSet.seller_id).where(ChangeSet.change_set_id == identifier))
        if owned != principal.id:
            raise not_found(f"Resource {resource} not found")
    else:
        entity = entities.find(session, principal.id, identifier)
        if entity is None or entity.entity_type != kind:
            raise not_found(f"Resource {resource} not found")
    return resource


def put_tags(session: Session, seller_id: int, resource: str, tags: list[dict[str, str]]) -> None:
    for tag in tags:
        row = session.get(CatalogTag, (resource, tag["Key"]))
        if row is None:
            session.add(CatalogTag(resource_arn=resource, key=tag["Key"], value=tag["Value"], seller_id=seller_id))
        else:
            row.value = tag["Value"]
    session.flush()
    count = len(list(session.scalars(select(CatalogTag.key).where(CatalogTag.resource_arn == resource))))
    if count > 200:
        raise validation(f"{resource} would have {count} tags; a resource has at most 200")


def tag_resource(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "TagResource")
    resource = _resource(session, principal, payload)
    put_tags(session, principal.id, resource, change_sets._tags(payload.get("Tags"), "Tags"))
    return {}


def untag_resource(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "UntagResource")
    resource = _resource(session, principal, payload)
    keys = payload.get("TagKeys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise validation("TagKeys must list at least one key")
    session.execute(delete(CatalogTag).where(CatalogTag.resource_arn == resource, CatalogTag.key.in_(keys)))
    return {}


def list_tags_for_resource(session: Session, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    _seller(principal, "ListTagsForResource")
    resource = _resource(session, principal, payload)
    rows = session.scalars(select(CatalogTag).where(CatalogTag.resource_arn == resource).order_by(CatalogTag.key))
    return {"ResourceArn": resource, "Tags": [{"Key": t.key, "Value": t.value} for t in rows]}
