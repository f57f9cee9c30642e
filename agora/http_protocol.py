"""The HTTP/1.1 protocol `agora serve` runs: uvicorn's httptools protocol with the two bounds it lacks on a
request's line and headers. uvicorn waits for them forever (its `timeout_keep_alive` counts only the idle
time between requests) and keeps however many header bytes arrive, so a client sending half a request, or
headers without end, holds a connection and memory. Bodies are bounded in `agora.limits`."""

from __future__ import annotations

import asyncio
import os

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# nginx's client_header_timeout (60 s) and large_client_header_buffers (4 x 8 KB), about.
HEADER_TIMEOUT = float(os.environ.get("AGORA_HEADER_TIMEOUT", "20"))
MAX_HEADER_BYTES = 64 * 1024

_TIMEOUT_BODY = b'{"error": "request_timeout", "detail": "the request line and headers did not arrive in time"}'
_TIMEOUT_REPLY = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_TIMEOUT_BODY)
    + _TIMEOUT_BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """A request's line and headers must arrive within HEADER_TIMEOUT seconds of its first byte (or of the
    connection opening, for the first one) and hold at most MAX_HEADER_BYTES."""

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            # uvicorn answers a parser error with 400 and closes the connection
            raise httptools.HttpParserError(f"request line and headers over {MAX_HEADER_BYTES} bytes")

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._begun:  # part of a request came: say why it is dropped; an idle new connection is just closed
            self.transport.write(_TIMEOUT_REPLY)
        self.transport.close()
