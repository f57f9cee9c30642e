"""The tenant matrix: every route of /api/v1 × every role × another tenant's object.

The victims are seller `globex` and buyer 444455556666, each with one object of every kind (a draft and its
logo, a subscription with an annual purchase, its invoice and a contract license, an instance, a private
offer, an access key, a change request, a pricing-model request, usage). The callers are anonymous, seller
`acme` and buyer 111122223333, who have objects of their own. A route that names an object in its path
must answer 401, 403 or 404 when it names the victims'; a list must never carry their data; a write that
names their object in its body must be refused the same way. The routes come from `app.routes`, so a new
one is in the matrix the day it is added; those that name no tenant's object are listed with why.

The operator is not a caller here: seeing every tenant is that role's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock, tasks
from agora.app import create_app
from agora.db import Database, open_database
from agora.manifest.loader import load_data
from agora.models import AccessKey, ChangeRequest, Job, PricingModelRequest, WebhookDelivery
from agora.openapi import api_routes
from tests.catalog.files import pdf, png

VICTIM_SELLER = "globex"
VICTIM_BUYER = "444455556666"
CALLERS = {
    "anonymous": {},
    "seller": {"Authorization": "Bearer acme-token"},
    "buyer": {"Authorization": "Bearer buyer-token"},
}
VICTIM = {
    "seller": {"Authorization": "Bearer globex-token"},
    "buyer": {"Authorization": "Bearer victim-token"},
}
ALLOWED = {401, 403, 404}

HOURLY_ANNUAL = {"hourly": {"m5.large": "0.10"}, "annual": {"m5.large": "700"}}
CONTRACT = {"contract": {"dimensions": [{"name": "seats", "description": "Seats", "prices": {"1": "10"}}]}}
USAGE = {
    "usage": {
        "category": "users",
        "dimensions": [{"name": "users", "description": "Users", "unit": "UserHrs", "rate": "0.125"}],
    }
}

# Routes whose path names no tenant's object, with why they cannot reach another tenant's data. Each is
# still called by every caller below (lists are searched for the victims' data), but not held to 401/403/404.
NO_OBJECT = {
    ("GET", "/api/v1/reports/{period}"): "a month, not an object: the report is always the caller's own",
}


# The victim's product has a webhook on 127.0.0.1 (nothing listens there): its deliveries must exist.
pytestmark = pytest.mark.usefixtures("private_urls_allowed")


def _product(code: str, seller: str, kind: str, pricing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "seller": seller,
        "kind": kind,
        "title": code.replace("-", " ").title(),
        "short_description": "Tenant matrix",
        "category": "infrastructure",
        "regions": ["us-east-1"],
        "refund_policy": "30 days: billing@example.com",
        "state": "public",
        "pricing": pricing,
        **fields,
    }


def _manifest() -> dict[str, Any]:
    at = clock.now().isoformat()
    return {
        "operators": [{"id": "ops", "api_tokens": ["ops-token"]}],
        "sellers": [
            {"id": "acme", "name": "Acme", "tax_form": "W-9", "data_sharing": True, "api_tokens": ["acme-token"]},
            {
                "id": VICTIM_SELLER,
                "name": "Globex",
                "tax_form": "W-9",
                "data_sharing": True,
                "api_tokens": ["globex-token"],
                "access_keys": [{"id": "AKIDGLOBEX000001", "secret": "globex-secret"}],
            },
        ],
        "buyers": [
            {"account": "111122223333", "email": "a@buyer.example", "api_tokens": ["buyer-token"]},
            {"account": VICTIM_BUYER, "email": "victim@buyer.example", "api_tokens": ["victim-token"]},
        ],
        "products": [
            _product("acme-app", "acme", "saas", USAGE),
            _product("globex-app", VICTIM_SELLER, "saas", USAGE, webhook_url="http://127.0.0.1:9/hooks"),
            _product("globex-ami", VICTIM_SELLER, "ami", HOURLY_ANNUAL),
            _product("globex-crm", VICTIM_SELLER, "saas", CONTRACT),
            _product("globex-draft", VICTIM_SELLER, "ami", {"hourly": {"m5.large": "0.10"}}, state="draft"),
        ],
        "subscriptions": [
            {"buyer": "111122223333", "product": "acme-app", "at": at, "customer_identifier": "own-app"},
            {"buyer": VICTIM_BUYER, "product": "globex-app", "at": at, "customer_identifier": "victim-app"},
            {"buyer": VICTIM_BUYER, "product": "globex-ami", "at": at, "customer_identifier": "victim-ami"},
            {"buyer": VICTIM_BUYER, "product": "globex-crm", "at": at, "customer_identifier": "victim-crm"},
        ],
    }


@dataclass
class World:
    """The victims' objects, by the name of the path parameter that would name them."""

    params: dict[str, str]
    markers: tuple[str, ...]  # strings only the victims' data contains


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _build(client: TestClient, db: Database) -> World:
    tasks.register_all()
    with db.unit_of_work() as session:
        load_data(_manifest(), session)
    subscriptions = {
        s["customer_identifier"]: s["id"] for s in _ok(client.get("/api/v1/subscriptions", headers=VICTIM["buyer"]))
    }  # type: ignore[union-attr]
    ami = subscriptions["victim-ami"]
    purchase = _ok(
        client.post(
            f"/api/v1/subscriptions/{ami}/annual",
            json={"instance_type": "m5.large", "quantity": 1},
            headers=VICTIM["buyer"],
        ),
        201,
    )
    contract = _ok(
        client.post(
            f"/api/v1/subscriptions/{subscriptions['victim-crm']}/contract",
            json={"duration_months": 1, "quantities": {"seats": 2}},
            headers=VICTIM["buyer"],
        ),
        201,
    )
    run = _ok(
        client.post(
            "/api/v1/instances",
            json={"product": "globex-ami", "instance_id": "i-0123456789abcdef0", "instance_type": "m5.large"},
            headers=VICTIM["buyer"],
        ),
        201,
    )
    offer = _ok(
        client.post(
            "/api/v1/offers",
            json={
                "product": "globex-ami",
                "buyer": VICTIM_BUYER,
                "pricing": {"hourly": {"m5.large": "0.07"}},
                "duration_days": 365,
                "accept_by": (clock.now() + timedelta(days=14)).isoformat(),
            },
            headers=VICTIM["seller"],
        ),
        201,
    )
    logo = _ok(
        client.post(
            "/api/v1/products/globex-draft/assets",
            data={"kind": "logo"},
            files={"file": ("logo.png", png(), "image/png")},
            headers=VICTIM["seller"],
        ),
        201,
    )
    _ok(client.patch("/api/v1/products/globex-app", json={"title": "Globex App 2"}, headers=VICTIM["seller"]))
    _ok(
        client.post(
            "/api/v1/products/globex-ami/pricing-model-requests",
            json={"free": True},
            headers=VICTIM["seller"],
        ),
        201,
    )
    usage = client.post(
        "/api/v1/usage",
        json={
            "records": [
                {
                    "product_code": "globex-app",
                    "dimension": "users",
                    "quantity": 3,
                    "timestamp": clock.now().isoformat(),
                    "customer_identifier": "victim-app",
                }
            ]
        },
        headers=VICTIM["seller"],
    )
    assert _ok(usage)["accepted"] == 1
    invoices = _ok(client.get("/api/v1/invoices", headers=VICTIM["buyer"]))["invoices"]
    assert invoices, "the annual purchase is invoiced at once"
    with db.reader() as session:
        access_key = session.scalar(
            select(AccessKey.access_key_id).where(AccessKey.access_key_id == "AKIDGLOBEX000001")
        )
        change = session.scalar(select(ChangeRequest.id))
        model_request = session.scalar(select(PricingModelRequest.id))
        delivery = session.scalar(select(WebhookDelivery.id))
        job = session.scalar(select(Job.id))
    params = {
        "code": "globex-draft",
        "digest": logo["digest"],
        "subscription_id": str(ami),
        "purchase_id": str(purchase["id"]),
        "license_key": contract["license"],
        "instance_id": run["instance_id"],
        "public_id": offer["id"],
        "invoice_id": str(invoices[0]["id"]),
        "access_key_id": str(access_key),
        "request_id": str(change or model_request),
        "delivery_id": str(delivery or 10**6),
        "job_id": str(job or 10**6),
        "handle": VICTIM_SELLER,
        "account": VICTIM_BUYER,
        "step": "general",
        "period": clock.now().strftime("%Y-%m"),
    }
    markers = (VICTIM_BUYER, "globex-draft", "victim-app", "victim-ami", "victim-crm", offer["id"], contract["license"])
    return World(params, markers)


# Bodies that get past validation, so the route reaches its lookup (an invalid body is 422 before it).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/products/{code}"): {"json": {"title": "Mine now"}},
    ("POST", "/api/v1/products/{code}/assets"): {
        "data": {"kind": "logo"},
        "files": {"file": ("logo.png", png(), "image/png")},
    },
    ("PUT", "/api/v1/products/{code}/wizard/{step}"): {"json": {"short_description": "Mine now"}},
    ("POST", "/api/v1/reviews/{code}/reject"): {"json": {"reason": "no"}},
    ("POST", "/api/v1/change-requests/{request_id}/reject"): {"json": {"reason": "no"}},
    ("POST", "/api/v1/pricing-model-requests/{request_id}/reject"): {"json": {"reason": "no"}},
    ("PUT", "/api/v1/products/{code}/pricing"): {"json": {"hourly": {"m5.large": "0.01"}}},
    ("POST", "/api/v1/products/{code}/pricing-model-requests"): {"json": {"free": True}},
    ("POST", "/api/v1/subscriptions/{subscription_id}/contract"): {
        "json": {"duration_months": 1, "quantities": {"seats": 1}}
    },
    ("POST", "/api/v1/subscriptions/{subscription_id}/contract/upgrade"): {"json": {"quantities": {"seats": 5}}},
    ("POST", "/api/v1/subscriptions/{subscription_id}/annual"): {"json": {"instance_type": "m5.large", "quantity": 1}},
    ("POST", "/api/v1/annual-purchases/{purchase_id}/auto-renew"): {"json": {"auto_renew": True}},
    ("POST", "/api/v1/annual-purchases/{purchase_id}/refund"): {"json": {"mode": "full", "reason": "mine"}},
    ("POST", "/api/v1/offers/{public_id}/eula"): {"files": {"file": ("eula.pdf", pdf(), "application/pdf")}},
    ("POST", "/api/v1/offers/{public_id}/accept"): {"json": {"accept_eula": True}},
    ("POST", "/api/v1/invoices/{invoice_id}/void"): {"json": {"reason": "mine"}},
}

# Writes without an object in the path, with a body that names the victims' objects where the route takes
# one; the answer must be a refusal (a 4xx), and it must not carry the victims' data.
NAMING_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/subscriptions"): {"json": {"product": "globex-draft", "accept_eula": True}},
    ("POST", "/api/v1/offers"): {
        "json": {
            "product": "globex-ami",
            "buyer": VICTIM_BUYER,
            "pricing": {"hourly": {"m5.large": "0.01"}},
            "duration_days": 30,
            "accept_by": "2099-01-01T00:00:00Z",
        }
    },
    ("POST", "/api/v1/refunds"): {
        "json": {
            "buyer_account": VICTIM_BUYER,
            "buyer_email": "victim@buyer.example",
            "product": "globex-app",
            "periods": ["2026-03"],
            "reason": "mine",
        }
    },
    ("POST", "/api/v1/instances"): {"json": {"product": "globex-draft", "instance_id": "i-0123456789abcdef1"}},
    ("POST", "/api/v1/ml/jobs"): {
        "json": {"product": "globex-draft", "use": "training", "instance_type": "ml.m5.large", "seconds": 60}
    },
    ("POST", "/api/v1/fulfillment/resolve"): {"json": {"registration_token": "not-yours"}},
    ("POST", "/api/v1/usage/errors"): {"json": {"record_ids": [1], "reason": "mine"}},
}
# Writes that act on the caller's own account only, whatever they are sent: why each cannot reach another.
OWN_ACCOUNT = {
    ("POST", "/api/v1/products"): "creates a draft owned by the caller",
    ("POST", "/api/v1/keys"): "creates credentials for the caller's own account",
    ("POST", "/api/v1/webhooks/secret"): "rotates the caller's own webhook secret",
    ("POST", "/api/v1/usage"): "meters for the caller; a record for another's product is refused per record",
    ("PUT", "/api/v1/fees"): "operator only (403 for every caller here)",
    ("PUT", "/api/v1/infrastructure-prices"): "operator only (403 for every caller here)",
    ("POST", "/api/v1/metering/bill-lines"): "operator only (403 for every caller here)",
}
# Public reads: anyone may call them; the victims' draft must still not appear.
PUBLIC = {("GET", "/api/v1/catalog"): "public search; drafts and restricted listings never appear"}


def _routes() -> list[tuple[str, str]]:
    app = create_app(open_database("sqlite://"))
    found = []
    for route in api_routes(app.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/api/v1/"):
            found += [(method, route.path) for method in sorted(route.methods)]
    return found


ROUTES = _routes()


def test_every_route_is_in_one_part_of_the_matrix() -> None:
    for method, path in ROUTES:
        named = "{" in path and (method, path) not in NO_OBJECT
        listed = (method, path) in NAMING_BODIES or (method, path) in OWN_ACCOUNT or (method, path) in PUBLIC
        assert named or listed or method == "GET", f"{method} {path} is in no part of the tenant matrix"


def _verdict(caller: str, key: tuple[str, str], response: Any, markers: tuple[str, ...]) -> str | None:
    """What is wrong with one answer, if anything."""
    _, path = key
    # A refusal may quote what the caller sent; an answer that succeeds must carry nothing of the victims'.
    leaks = [m for m in markers if m in response.text] if response.status_code < 400 else []
    if leaks:
        return f"carries the victims' {leaks}"
    if "{" in path and key not in NO_OBJECT and response.status_code not in ALLOWED:
        return "answers a path naming the victims' object"
    if key in NAMING_BODIES and response.status_code < 400:
        return "accepts a body naming the victims' object"
    public = key in PUBLIC or path.startswith(("/api/v1/catalog", "/api/v1/assets"))
    if caller == "anonymous" and not public and response.status_code != 401:
        return "answers without a token"
    return None


def test_no_caller_reaches_another_tenants_object(
    client: TestClient, db: Database, manual_clock: clock.ManualClock
) -> None:
    world = _build(client, db)
    failures = []
    for method, path in ROUTES:
        key = (method, path)
        url = re.sub(r"\{(\w+)\}", lambda m: world.params[m.group(1)], path)
        request = BODIES.get(key) or NAMING_BODIES.get(key) or {}
        for caller, headers in CALLERS.items():
            response = client.request(method, url, headers=headers, **request)
            wrong = _verdict(caller, key, response, world.markers)
            if wrong:
                failures.append(f"{caller} {method} {url}: {wrong}: {response.status_code} {response.text[:160]}")
    assert not failures, "\n".join(failures)


def test_the_victims_objects_exist_for_their_owners(
    client: TestClient, db: Database, manual_clock: clock.ManualClock
) -> None:
    """The matrix means something only if the ids are real: their owners get 200 on them."""
    world = _build(client, db)
    p = world.params
    for url, owner in (
        ("/api/v1/products/globex-draft", "seller"),
        (f"/api/v1/subscriptions/{p['subscription_id']}", "buyer"),
        (f"/api/v1/invoices/{p['invoice_id']}", "buyer"),
        (f"/api/v1/offers/{p['public_id']}", "seller"),
        (f"/api/v1/licenses/{p['license_key']}", "buyer"),
        (f"/api/v1/subscriptions/{p['subscription_id']}/annual", "buyer"),
        (f"/api/v1/assets/{p['digest']}", "seller"),
    ):
        assert client.get(url, headers=VICTIM[owner]).status_code == 200, url
