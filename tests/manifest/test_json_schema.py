"""`agora schema manifest` prints a JSON Schema of the manifest that editors can validate files with: the
examples pass it, and a typo'd field fails it as `agora load` would."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agora.manifest.parse import read_file

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    done = subprocess.run(
        [sys.executable, "-m", "agora", "schema", "manifest"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def as_json(value: Any) -> Any:
    """What an editor sees of the YAML: timestamps as text (and decimals as the strings the loader also takes)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    return value


def errors(validator: jsonschema.protocols.Validator, data: Any) -> list[str]:
    return sorted(".".join(str(p) for p in e.absolute_path) for e in validator.iter_errors(as_json(data)))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_examples_are_valid_against_the_printed_schema(
    validator: jsonschema.protocols.Validator, path: Path
) -> None:
    assert errors(validator, read_file(path)) == []


def test_a_typo_d_field_fails_the_schema(validator: jsonschema.protocols.Validator) -> None:
    data = read_file(EXAMPLES[-1])
    product = copy.deepcopy(data)
    product["products"][0]["short_descripton"] = product["products"][0].pop("short_description")
    event = copy.deepcopy(data)
    event["events"][5]["meter"]["quantty"] = event["events"][5]["meter"].pop("quantity")
    pricing = copy.deepcopy(data)
    pricing["products"][0]["pricing"]["free_trial_days"] = "a week"

    assert errors(validator, product) == ["products.0"]
    assert errors(validator, event) != []
    assert errors(validator, pricing) != []


def test_an_event_names_exactly_one_event_type(validator: jsonschema.protocols.Validator) -> None:
    stop = {"instance_stop": {"instance": "i-1"}}
    assert errors(validator, {"events": [{"at": "2026-03-01T00:00:00Z", **stop}]}) == []
    assert errors(validator, {"events": [{"at": "2026-03-01T00:00:00Z"}]}) != []
    assert errors(validator, {"events": [{"at": "2026-03-01T00:00:00Z", **stop, "endpoint_stop": {"endpoint": "e"}}]})
