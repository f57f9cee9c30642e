"""PRC-12: an ML algorithm prices training and inference on the instance types each runs on — training on a
GPU type, inference on a CPU type is an ordinary listing, loaded by `agora load` and rated per price set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from agora.db import open_database
from agora.models import Product

BUYER = "111122223333"
GPU_TRAINING = {
    "training": {"ml.p3.2xlarge": "3.825"},
    "realtime_inference": {"ml.m5.large": "0.50"},
    "batch_inference": {"ml.m5.large": "0.40"},
}


def manifest(events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "region": "us-east-1",
        "sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-9"}],
        "buyers": [{"account": BUYER, "email": "a@buyer.example"}],
        "products": [
            {
                "code": "forecast",
                "seller": "acme",
                "kind": "ml_algorithm",
                "title": "Forecast",
                "short_description": "Trains on GPUs, serves on CPUs",
                "category": "machine-learning",
                "regions": ["us-east-1"],
                "refund_policy": "Full refund within 30 days: support@acme.example",
                "state": "public",
                "pricing": {"ml": GPU_TRAINING},
            }
        ],
        "subscriptions": [{"buyer": BUYER, "product": "forecast", "at": "2026-03-01T00:00:00Z"}],
    }
    if events is not None:
        document["events"] = events
    return document


def agora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.rule("PRC-12")
def test_an_algorithm_training_on_a_gpu_type_and_serving_on_a_cpu_type_loads_and_is_rated_PRC_12(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "market.yaml"
    listing.write_text(yaml.safe_dump(manifest()))
    loaded = agora("load", str(listing))
    assert loaded.returncode == 0, loaded.stderr
    db = open_database()
    try:
        with db.reader() as session:
            stored = session.scalar(select(Product).where(Product.code == "forecast"))
            assert stored is not None and stored.state == "public"
    finally:
        db.dispose()

    def at(time: str) -> str:
        return f"2026-03-02T{time}Z"

    job = {"buyer": BUYER, "product": "forecast", "instances": 2, "seconds": 1800}
    timeline = tmp_path / "timeline.yaml"
    timeline.write_text(
        yaml.safe_dump(
            manifest(
                [
                    {"at": at("01:00:00"), "ml_job": {**job, "use": "training", "instance_type": "ml.p3.2xlarge"}},
                    {"at": at("02:00:00"), "ml_job": {**job, "use": "batch_inference", "instance_type": "ml.m5.large"}},
                    {"at": at("03:00:00"), "ml_job": {**job, "use": "training", "instance_type": "ml.m5.large"}},
                ]
            )
        )
    )
    simulated = agora("simulate", str(timeline), "--json")
    assert simulated.returncode == 0, simulated.stderr
    result = json.loads(simulated.stdout)
    [invoice] = [i for i in result["invoices"] if i["kind"] == "monthly"]
    lines = [(x["charge"], x["instance_type"], x["amount"]) for x in invoice["lines"]]
    # 2 instances × 30 min = 1 instance-hour each: 3.825 rounds half-up once, to 3.83 (BIL-04)
    assert sorted(lines) == [("batch_inference", "ml.m5.large", "0.40"), ("training", "ml.p3.2xlarge", "3.83")]
    assert invoice["total"] == "4.23"
    [refused] = result["refused"]  # training is priced on the GPU type only
    assert refused["event"] == "ml_job" and "no training price for ml.m5.large" in refused["error"]
