"""Pydantic's validation errors, rewritten as `FIELD_PATH: message` lines a person can act on."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from agora.manifest.parse import Problem
from agora.pricing.schema import Rule

_RULE_RE = re.compile(r"\s*\[([A-Z]{3}-[0-9]{2})\]$")


def format_loc(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _unwrap(annotation: Any) -> Any:
    """The model class (or None) behind Optional[...], Annotated[...], list[...] and dict[..., ...]."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in get_args(annotation) if a is not type(None)]
            annotation = models[0] if len(models) == 1 else None
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if origin in (list, dict):
            current = get_args(current)[-1]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _rules_of(annotation: Any) -> tuple[Any, str | None]:
    """`_unwrap` one level at a time, keeping the last `Rule` marker met on the way."""
    rule = None
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *metadata = get_args(annotation)
            rule = next((m.id for m in metadata if isinstance(m, Rule)), rule)
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, rule
            annotation = members[0]
        else:
            return annotation, rule


def _rule_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The rule of the innermost model field `loc` is in (its value, or an item of its list or dict): a
    rule marks the constraints of its own field, never those of the models nested in it."""
    current: Any = model
    rule: str | None = None
    for part in loc:
        current, found = _rules_of(current)
        rule = found or rule
        if get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        elif isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            rule = next((m.id for m in field.metadata if isinstance(m, Rule)), None)
            current = field.annotation
        else:
            return rule
    return _rules_of(current)[1] or rule


def problems_from(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        message = error["msg"]
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = sorted(parent.model_fields) if parent else []
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            message = "unknown field" + (f" (did you mean '{guess[0]}'?)" if guess else "")
            if known and not guess:
                message += f"; expected one of: {', '.join(known)}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "string_pattern_mismatch":
            message = f"{error.get('input')!r} does not match {error['ctx']['pattern']}"
        elif kind in ("literal_error", "enum"):
            message = f"must be one of {error['ctx']['expected']}, got {error.get('input')!r}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        rule = None
        found = _RULE_RE.search(message)
        if found:
            rule = found.group(1)
            message = message[: found.start()]
        elif kind != "extra_forbidden":
            rule = _rule_at(model, loc)
        problems.append(Problem(format_loc(loc, prefix), message, rule))
    return problems
