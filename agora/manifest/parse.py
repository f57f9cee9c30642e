"""Reading a manifest file: YAML or JSON, decimals exact, duplicate keys refused, every problem located."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: `path: message [rule]`."""

    path: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        suffix = f" [{self.rule}]" if self.rule else ""
        return f"{self.path}: {self.message}{suffix}"


class ManifestError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads floats as exact Decimals and refuses duplicate mapping keys."""


def _decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        # YAML's .inf/.nan and sexagesimal floats: keep the text, and let the field say what it expects.
        return text


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r} in one object")
        result[key] = value
    return result


def parse_text(text: str, name: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and name.endswith(".json"):
        try:
            return json.loads(text, parse_float=Decimal, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as exc:
            raise ManifestError([Problem(f"{name}:{exc.lineno}:{exc.colno}", exc.msg)]) from None
        except _DuplicateKey as exc:
            raise ManifestError([Problem(name, str(exc))]) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ManifestError([Problem(where, message or "not valid YAML")]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([Problem(name, f"not valid YAML: {exc}")]) from None


def read_file(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError([Problem(str(path), f"cannot read the file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError([Problem(str(path), "not UTF-8 text")]) from None
    data = parse_text(text, path.name)
    if data is None:
        raise ManifestError([Problem(str(path), "the file is empty")])
    if not isinstance(data, dict):
        raise ManifestError([Problem(str(path), "a manifest is a mapping with sellers, buyers, products …")])
    return data
