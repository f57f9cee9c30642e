"""A loopback HTTP server that records each raw request and answers with a canned response.

The SDK compatibility tests point unmodified boto3 and Alibaba Cloud clients at it to obtain requests exactly as the
SDKs sign and send them. `path` and `query` are kept as they appear on the request line (still percent-encoded),
because signature verification works on the encoded form.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CannedResponse:
    body: bytes = b"{}"
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class CaptureServer:
    """Records requests in `requests`; replies with `response` (replace it to change the answer)."""

    def __init__(self, response: CannedResponse | None = None) -> None:
        self.response = response or CannedResponse()
        self.requests: list[CapturedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="capture-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form Alibaba's `Config(endpoint=...)` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def last(self) -> CapturedRequest:
        with self._lock:
            return self.requests[-1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record(self, request: CapturedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 so that the SDKs' keep-alive connections behave as they would against a real service.
            protocol_version = "HTTP/1.1"

            def _capture(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                server._record(
                    CapturedRequest(
                        method=self.command, path=path, query=query, headers=dict(self.headers.items()), body=body
                    )
                )
                canned = server.response
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _capture

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def capture_server(response: CannedResponse | None = None) -> Iterator[CaptureServer]:
    server = CaptureServer(response)
    server.start()
    try:
        yield server
    finally:
        server.stop()
