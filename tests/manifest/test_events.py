"""The event timeline is checked like the rest of the manifest (DESIGN "Event types"): each event type has
its fields, and an unknown or missing one is a located problem before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.manifest.loader import parse_manifest
from agora.manifest.parse import ManifestError, read_file

BUYER = "111122223333"
AT = "2026-03-01T10:00:00Z"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problems(*events: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest({"events": list(events)})
    return [str(p) for p in info.value.problems]


def test_a_typo_in_an_event_field_is_an_unknown_field_with_a_suggestion() -> None:
    meter = {"product": "prod", "dimension": "users", "quantty": 3, "buyer": BUYER}
    assert problems({"at": AT, "instance_stop": {"instance": "i-1"}}, {"at": AT, "meter": meter}) == [
        "events[1].meter.quantity: required field is missing",
        "events[1].meter.quantty: unknown field (did you mean 'quantity'?)",
    ]


def test_a_subscribe_event_refuses_what_it_would_have_ignored() -> None:
    subscribe = {"buyer": BUYER, "product": "prod", "customer_identifer": "x"}
    assert problems({"at": AT, "subscribe": subscribe}) == [
        "events[0].subscribe.customer_identifer: unknown field (did you mean 'customer_identifier'?)"
    ]


def test_a_subscribe_event_takes_every_field_a_manifest_subscription_takes() -> None:
    subscribe = {
        "buyer": BUYER,
        "product": "prod",
        "customer_identifier": "c-1",
        "contract": {"duration_months": 12, "quantities": {"seats": 3}},
        "annual": {"m5.large": 2},
        "auto_renew": True,
    }
    [event] = parse_manifest({"events": [{"at": AT, "subscribe": subscribe}]}).events
    assert event.kind == "subscribe" and event.body.model_dump(exclude_none=True) == subscribe


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"at": AT}, ["events[0]: must name exactly one event of:"]),
        (
            {"at": AT, "instance_stop": {"instance": "i"}, "endpoint_stop": {"endpoint": "e"}},
            ["events[0]: must name exactly one event of:"],
        ),
        ({"at": AT, "fly": {}}, ["events[0].fly: unknown field"]),
        ({"at": "yesterday", "instance_stop": {"instance": "i"}}, ["events[0].at: "]),
        ({"at": "2026-03-01T10:00:00", "instance_stop": {"instance": "i"}}, ["events[0].at: needs a time zone"]),
        ({"at": AT, "instance_stop": "i-1"}, ["events[0].instance_stop: "]),
        (
            {"at": AT, "meter": {"product": "prod", "dimension": "d", "quantity": 1}},
            ["events[0].meter: needs customer_identifier or buyer"],
        ),
        (
            {
                "at": AT,
                "meter": {
                    "product": "prod",
                    "dimension": "d",
                    "quantity": 1,
                    "buyer": BUYER,
                    "customer_identifier": "c",
                },
            },
            ["events[0].meter: needs customer_identifier or buyer, not both"],
        ),
        (
            {"at": AT, "meter": {"product": "prod", "dimension": "d", "quantity": 1.5, "buyer": BUYER}},
            ["events[0].meter.quantity: "],
        ),
        (
            {
                "at": AT,
                "ml_job": {"buyer": BUYER, "product": "prod", "use": "inference", "instance_type": "t", "seconds": 5},
            },
            ["events[0].ml_job.use: must be one of 'training' or 'batch_inference', got 'inference'"],
        ),
        (
            {"at": AT, "price_change": {"product": "prod", "pricing": {"hourly": {"m5.large": "0.1"}, "hourlly": {}}}},
            ["events[0].price_change.pricing.hourlly: unknown field (did you mean 'hourly'?)"],
        ),
        (
            {"at": AT, "offer_accept": {"id": "o-1"}},
            ["events[0].offer_accept.buyer: required field is missing"],
        ),
        (
            {"at": AT, "refund": {"buyer": BUYER, "product": "prod", "periods": ["March"]}},
            ["events[0].refund.periods[0]: "],
        ),
    ],
)
def test_each_event_type_has_its_fields(event: dict[str, Any], expected: list[str]) -> None:
    found = problems(event)
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), found


def test_the_examples_timelines_are_valid() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        parse_manifest(read_file(path))


@pytest.mark.parametrize("command", ["simulate", "load"])
def test_simulate_and_load_refuse_a_typo_d_event_before_anything_runs(tmp_path: Path, command: str) -> None:
    data = yaml.safe_load((EXAMPLES / "simulation.yaml").read_text())
    data["events"][5]["meter"]["quantty"] = data["events"][5]["meter"].pop("quantity")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "agora", command, str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "events[5].meter.quantity: required field is missing",
        "events[5].meter.quantty: unknown field (did you mean 'quantity'?)",
    ]
    assert done.stdout == ""
