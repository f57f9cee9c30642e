"""A small marketplace for the web tests: the demo manifest (every kind and pricing model, with passwords),
the operator's infrastructure estimates, a private offer for the demo buyer, and a listing whose title is
an attack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from agora import clock
from agora.app import create_app
from agora.db import Database
from agora.manifest.loader import load_data

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
BUYER = ("ops@bluebird.example", "demo-buyer-pass")
OTHER_BUYER = ("it-procurement@globex.example", "globex-pass-1")
SELLER = ("sales@acme.example", "demo-seller-pass")
OPERATOR = ("ops@agora.example", "demo-operator-pass")
EVIL_TITLE = "<script>alert('owned')</script> Evil Tool"
INFRA = {("m5.large", "us-east-1"): "0.096", ("m5.xlarge", "us-east-1"): "0.192", ("m5.large", "us-west-2"): "0.096"}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    for buyer in data["buyers"]:
        if buyer["email"] == OTHER_BUYER[0]:
            buyer["password"] = OTHER_BUYER[1]
    data["products"].append(
        {
            "code": "evil-tool",
            "seller": "openfield",
            "kind": "saas",
            "title": EVIL_TITLE,
            "short_description": "<img src=x onerror=alert(1)> & friends",
            "category": "developer-tools",
            "regions": ["us-east-1"],
            "state": "public",
            "pricing": {"free": True},
        }
    )
    return data


def seed(db: Database) -> str:
    """Load the market; returns the id of the private offer made to the demo buyer."""
    with db.unit_of_work() as session:
        load_data(manifest(), session)
    with TestClient(create_app(db)) as api:
        ops = {"Authorization": "Bearer demo-ops-token"}
        for (instance_type, region), hourly in INFRA.items():
            body = {"instance_type": instance_type, "region": region, "hourly": hourly}
            assert api.put("/api/v1/infrastructure-prices", json=body, headers=ops).status_code == 200
        acme = {"Authorization": "Bearer demo-acme-token"}
        offer = {
            "product": "acme-vault",
            "buyer": "111122223333",
            "pricing": {"hourly": {"m5.large": "0.08", "m5.xlarge": "0.16"}},
            "duration_days": 365,
            "accept_by": (clock.now() + timedelta(days=30)).isoformat(),
        }
        created = api.post("/api/v1/offers", json=offer, headers=acme)
        assert created.status_code == 201, created.text
        offer_id: str = created.json()["id"]
        assert api.post(f"/api/v1/offers/{offer_id}/extend", headers=acme).status_code == 200
    return offer_id
