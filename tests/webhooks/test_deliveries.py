"""SUB-06: lifecycle events reach the seller's endpoint signed per Standard Webhooks, failures are retried
with backoff by durable jobs, and the seller can read the delivery log and replay."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from agora import clock, jobs, tasks
from agora.db import Database
from agora.manifest.loader import load_data

# Webhooks and metrics are served by the test itself, on 127.0.0.1.
pytestmark = pytest.mark.usefixtures("private_urls_allowed")


class Receiver:
    """A real HTTP endpoint on loopback that records what it receives and answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length).decode())
                )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


SELLER = {"Authorization": "Bearer acme-seller-token-1"}
OTHER = {"Authorization": "Bearer globex-seller-token"}
BUYER = {"Authorization": "Bearer buyer-token-0001"}


def _marketplace(db: Database, url: str) -> None:
    data = {
        "sellers": [
            {"id": "acme", "name": "Acme", "tax_form": "W-9", "api_tokens": ["acme-seller-token-1"]},
            {"id": "globex", "name": "Globex", "tax_form": "W-9", "api_tokens": ["globex-seller-token"]},
        ],
        "buyers": [{"account": "111122223333", "email": "ops@buyer.example", "api_tokens": ["buyer-token-0001"]}],
        "products": [
            {
                "code": "acme-analytics",
                "seller": "acme",
                "kind": "saas",
                "title": "Acme Analytics",
                "short_description": "Dashboards",
                "category": "analytics",
                "regions": ["us-east-1"],
                "refund_policy": "30 days: billing@acme.example",
                "state": "public",
                "fulfillment_url": "https://app.acme.example/register",
                "webhook_url": url,
                "pricing": {
                    "usage": {
                        "category": "users",
                        "dimensions": [
                            {"name": "users", "description": "Active users", "unit": "UserHrs", "rate": "0.125"}
                        ],
                    }
                },
            }
        ],
    }
    with db.unit_of_work() as session:
        load_data(data, session)


def _run_jobs(db: Database) -> None:
    tasks.register_all()
    jobs.Worker(db).run_until_idle()


def _verify(secret: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    """Standard Webhooks verification, with the timestamp taken from the headers (the test clock is not
    the wall clock the library's freshness check uses)."""
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=clock.now().tzinfo)
    expected = Webhook(secret).sign(headers["webhook-id"], signed_at, body)
    assert expected in headers["webhook-signature"].split(" ")
    result: dict[str, Any] = json.loads(body)
    return result


@pytest.mark.rule("SUB-06")
def test_lifecycle_events_are_signed_and_delivered(
    client: TestClient, db: Database, receiver: Receiver, manual_clock: clock.ManualClock
) -> None:
    """SUB-06: subscribe-success on subscribe; unsubscribe-pending on cancel and unsubscribe-success an
    hour later; each signed with the seller's Standard Webhooks secret."""
    _marketplace(db, receiver.url)
    secret = client.post("/api/v1/webhooks/secret", headers=SELLER).json()["secret"]
    assert secret.startswith("whsec_")
    sub = client.post("/api/v1/subscriptions", json={"product": "acme-analytics", "accept_eula": True}, headers=BUYER)
    assert sub.status_code == 201, sub.text
    _run_jobs(db)
    ((headers, body),) = receiver.requests
    event = _verify(secret, headers, body)
    assert event["type"] == "subscribe-success"
    assert event["data"] == {
        "subscription_id": sub.json()["id"],
        "product_code": "acme-analytics",
        "customer_identifier": sub.json()["customer_identifier"],
        "customer_account": "111122223333",
    }

    client.post(f"/api/v1/subscriptions/{sub.json()['id']}/cancel", headers=BUYER)
    _run_jobs(db)
    assert [json.loads(b)["type"] for _, b in receiver.requests] == ["subscribe-success", "unsubscribe-pending"]
    manual_clock.advance(timedelta(hours=1))
    _run_jobs(db)
    assert [json.loads(b)["type"] for _, b in receiver.requests][-1] == "unsubscribe-success"
    for headers, body in receiver.requests:
        _verify(secret, headers, body)

    log = client.get("/api/v1/webhooks/deliveries", headers=SELLER).json()
    assert [d["state"] for d in log] == ["delivered"] * 3
    assert client.get("/api/v1/webhooks/deliveries", headers=OTHER).json() == []


@pytest.mark.rule("SUB-06")
def test_an_endpoint_down_for_an_hour_gets_the_event_once_it_is_back(
    client: TestClient, db: Database, receiver: Receiver, manual_clock: clock.ManualClock
) -> None:
    """SUB-06: failures are retried with backoff through durable jobs; nothing is lost."""
    _marketplace(db, receiver.url)
    secret = client.post("/api/v1/webhooks/secret", headers=SELLER).json()["secret"]
    receiver.status = 503
    client.post("/api/v1/subscriptions", json={"product": "acme-analytics", "accept_eula": True}, headers=BUYER)
    down_until = manual_clock.now() + timedelta(hours=1)
    while manual_clock.now() < down_until:
        _run_jobs(db)
        manual_clock.advance(timedelta(minutes=5))
    (delivery,) = client.get("/api/v1/webhooks/deliveries", headers=SELLER).json()
    assert delivery["state"] == "pending"
    assert delivery["attempts"] >= 8
    assert "HTTP 503" in delivery["last_error"]

    receiver.status = 200
    manual_clock.advance(timedelta(hours=1))
    _run_jobs(db)
    (delivery,) = client.get("/api/v1/webhooks/deliveries", headers=SELLER).json()
    assert delivery["state"] == "delivered"
    ok = [(h, b) for h, b in receiver.requests][-1]
    assert _verify(secret, *ok)["type"] == "subscribe-success"
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1, "every retry is the same message"


@pytest.mark.rule("SUB-06")
def test_the_seller_replays_a_delivery(client: TestClient, db: Database, receiver: Receiver) -> None:
    _marketplace(db, receiver.url)
    client.post("/api/v1/webhooks/secret", headers=SELLER)
    client.post("/api/v1/subscriptions", json={"product": "acme-analytics", "accept_eula": True}, headers=BUYER)
    _run_jobs(db)
    (delivery,) = client.get("/api/v1/webhooks/deliveries", headers=SELLER).json()
    assert client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay", headers=OTHER).status_code == 404
    replayed = client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay", headers=SELLER)
    assert replayed.status_code == 200
    _run_jobs(db)
    assert len(receiver.requests) == 2
    assert receiver.requests[0][0]["webhook-id"] == receiver.requests[1][0]["webhook-id"]


def test_without_a_signing_secret_deliveries_wait_and_say_why(
    client: TestClient, db: Database, receiver: Receiver
) -> None:
    _marketplace(db, receiver.url)
    client.post("/api/v1/subscriptions", json={"product": "acme-analytics", "accept_eula": True}, headers=BUYER)
    _run_jobs(db)
    assert receiver.requests == []
    (delivery,) = client.get("/api/v1/webhooks/deliveries", headers=SELLER).json()
    assert delivery["state"] == "pending" and "secret" in delivery["last_error"]
