"""Issue 15: URLs the server fetches (webhooks, Prometheus metrics) never reach the marketplace's own network
unless the operator allows it, checked when set and again when fetched."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora import config, outbound
from agora.db import Database
from agora.metering.tasks import ScrapeFailed, read_counter
from tests.factories.catalog import create_listing, listing
from tests.factories.identities import add_cast

PRIVATE = [
    "http://127.0.0.1:9/hooks",
    "http://localhost:8080/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/",
    "http://192.168.0.10/metrics",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://0.0.0.0/",
]


class Exporter:
    """A server on 127.0.0.1 that counts the requests it receives."""

    def __init__(self) -> None:
        exporter = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                exporter.hits += 1
                body = b"secret_thing 1\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    running = Exporter()
    yield running
    running.server.shutdown()


@pytest.mark.parametrize("url", PRIVATE)
def test_a_private_address_is_refused_by_default(url: str) -> None:
    assert "loopback, link-local or private" in (outbound.check_url(url) or "")
    with pytest.raises(outbound.RefusedUrl):
        outbound.request("GET", url, timeout=1)


def test_a_public_or_unresolvable_url_passes_the_setting_check() -> None:
    assert outbound.check_url("https://93.184.216.34/hooks") is None
    assert outbound.check_url("https://hooks.acme.invalid/") is None  # checked again, and refused, when fetched
    assert outbound.check_url("ftp://93.184.216.34/") == "must be an http:// or https:// URL with a host"


def test_the_operator_may_allow_private_addresses(monkeypatch: pytest.MonkeyPatch, exporter: Exporter) -> None:
    monkeypatch.setenv("AGORA_ALLOW_PRIVATE_URLS", "1")
    config.reset_settings()
    assert all(outbound.check_url(url) is None for url in PRIVATE)
    assert read_counter(exporter.url, "secret_thing") == 1


def test_a_fetch_is_refused_before_a_byte_is_sent(exporter: Exporter) -> None:
    with pytest.raises(ScrapeFailed, match="loopback, link-local or private") as caught:
        read_counter(exporter.url, "secret_thing")
    assert "secret_thing 1" not in str(caught.value)
    assert exporter.hits == 0


def test_a_name_that_resolves_privately_by_fetch_time_is_refused(
    monkeypatch: pytest.MonkeyPatch, exporter: Exporter
) -> None:
    """DNS may answer differently when the URL is fetched than when it was set."""
    port = exporter.server.server_address[1]
    real = socket.getaddrinfo

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "metrics.seller.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(ScrapeFailed, match=r"metrics\.seller\.example resolves to an address"):
        read_counter(f"http://metrics.seller.example:{port}/metrics", "secret_thing")
    assert exporter.hits == 0


def test_a_fetch_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(0, 0, 0, "", ("93.184.216.34", 443))])
    sent: dict[str, Any] = {}

    def capture(self: Any, method: str, url: str, **options: Any) -> Any:
        sent.update(method=method, url=url, **options)
        return "answer"

    monkeypatch.setattr(outbound.httpx.Client, "request", capture)
    assert outbound.request("POST", "https://hooks.seller.example:8443/in?x=1", content=b"{}") == "answer"
    assert sent["url"] == "https://93.184.216.34:8443/in?x=1"
    assert sent["headers"]["Host"] == "hooks.seller.example:8443"
    assert sent["extensions"] == {"sni_hostname": "hooks.seller.example"}


def test_a_webhook_url_into_the_private_network_is_refused_when_set(client: TestClient, db: Database) -> None:
    cast = add_cast(db)
    response = client.post(
        "/api/v1/products",
        json=listing("acme-hooks", webhook_url="http://169.254.169.254/"),
        headers=cast.seller.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["loc"] == "body.webhook_url"
    create_listing(client, cast.seller, "acme-hooks")
    patched = client.patch(
        "/api/v1/products/acme-hooks", json={"webhook_url": "http://127.0.0.1:9/hooks"}, headers=cast.seller.headers
    )
    assert patched.status_code == 422, patched.text
    assert patched.json()["problems"][0]["loc"].endswith("webhook_url")
