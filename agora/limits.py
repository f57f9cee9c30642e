"""What one request may cost the server before any route reads it: its body's size, refused up front by
`Content-Length` and counted as it streams (chunked bodies have no length), and how long a client may
leave a body half-sent. Plain ASGI, so the metering hot path pays a header scan and a byte count."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
import weakref
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KB = 1024
MB = 1024 * KB

# The SDK door and every JSON or form route. The largest legitimate body is a native usage batch of 1,000
# records with every field at its longest: 0.50 MB, 0.88 MB with two tagged allocations per record
# (`tests/test_limits.py` builds it). Records with thousands of allocations come in smaller batches.
BODY_LIMIT = 1 * MB
# Uploads: the largest asset kind (a 200 MB video, LST-03) and room for the multipart framing. Each kind's
# own limit is applied while the file streams to disk (`agora.catalog.uploads`).
UPLOAD_LIMIT = 200 * MB + 64 * KB
UPLOAD_ROUTE = re.compile(
    r"/api/v1/(products/[^/]+/assets|offers/[^/]+/eula)"  # the API
    r"|/seller/products/[^/]+/files"  # the seller portal's listing files
)
# The seller portal's new-offer form carries its EULA PDF (10 MB at most, LST-03, which the page explains
# when a larger one comes) and the form's fields. Its CSRF check reads the whole form before the role is
# checked, so anyone may send this much, not UPLOAD_LIMIT.
OFFER_FORM_LIMIT = 16 * MB
OFFER_FORM_ROUTE = "/seller/offers"
# Seconds a client may send nothing while the server waits for the rest of a body (nginx's
# `client_body_timeout` is 60 s; a metering client sends its body in one go).
BODY_READ_TIMEOUT = float(os.environ.get("AGORA_BODY_READ_TIMEOUT", "30"))


def body_limit(scope: Scope) -> int:
    if scope["method"] == "POST" and UPLOAD_ROUTE.fullmatch(scope["path"]):
        return UPLOAD_LIMIT
    if scope["method"] == "POST" and scope["path"] == OFFER_FORM_ROUTE:
        return OFFER_FORM_LIMIT
    return BODY_LIMIT


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def refusal(scope: Scope, status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a refusal, in the shape the caller speaks: an SDK on `POST /` gets its vendor's
    error (AWS `__type`, Alibaba `Code`), anyone else Agora's `{"error", "detail"}`. The connection is
    closed after it: the rest of the body is never read."""
    native = {413: "too_large", 408: "request_timeout"}[status]
    content_type = "application/json"
    payload: dict[str, str]
    target = _header(scope, b"x-amz-target") if scope["path"] == "/" else None
    alibaba = scope["path"] == "/" and (
        _header(scope, b"x-acs-action") is not None
        or any(k == "Action" for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    )
    if target is not None:
        code = {413: "RequestEntityTooLargeException", 408: "RequestTimeoutException"}[status]
        payload = {"__type": code, "message": message}
        version = "1.0" if target.startswith("AWSMPCommerceService") else "1.1"
        content_type = f"application/x-amz-json-{version}"
    elif alibaba:
        code = {413: "RequestEntityTooLarge", 408: "RequestTimeout"}[status]
        host = _header(scope, b"host") or ""
        payload = {"RequestId": str(uuid.uuid4()), "HostId": host, "Code": code, "Message": message}
    else:
        payload = {"error": native, "detail": message}
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, read_timeout: float | None = None) -> None:
        self.app = app
        self.read_timeout = BODY_READ_TIMEOUT if read_timeout is None else read_timeout
        self._sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope)
        if length is not None and not chunked:
            try:
                declared = int(length)
            except ValueError:
                declared = limit + 1  # the server's parser refuses these first; never trust one here
            if declared > limit:
                await _answer(scope, send, 413, _too_large(limit))
                return
        loop = asyncio.get_running_loop()
        sweeper = self._sweepers.get(loop)
        if sweeper is None:
            sweeper = self._sweepers[loop] = _Sweeper(loop, self.read_timeout)
        await _Guarded(self.app, scope, receive, send, limit, sweeper).run()


def _too_large(limit: int) -> str:
    size = f"{limit // MB} MB" if limit >= MB else f"{limit // KB} KB"
    return f"the request body may be at most {size} on this route"


async def _answer(scope: Scope, send: Send, status: int, message: str) -> None:
    headers, body = refusal(scope, status, message)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Sweeper:
    """The read timeout of every body being read on one event loop, with one timer: every `period` seconds
    it asks each request whether a chunk came since its last look. A timer or `asyncio.timeout` per receive
    cost 30-50 µs per metering request; this costs a set insertion. The timer runs only while some body
    is being read, so a loop that closes leaves nothing pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self.loop = loop
        self.period = period
        self.requests: set[_Guarded] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, request: _Guarded) -> None:
        self.requests.add(request)
        if self.timer is None:
            self.timer = self.loop.call_later(self.period, self.sweep)

    def sweep(self) -> None:
        self.timer = None
        for request in list(self.requests):
            request.check()
        if self.requests:
            self.timer = self.loop.call_later(self.period, self.sweep)


class _Guarded:
    """One request whose body is counted and timed as the app reads it. When it goes over, the refusal is
    answered here at once; the app then reads a disconnect, and whatever it answers is dropped. A body
    that stalls is cut between one and two read timeouts after its last chunk (see `_Sweeper`)."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int, sweeper: _Sweeper) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.limit = limit
        self.sweeper = sweeper
        self.received = 0
        self.chunks = 0
        self.started = False
        self.refused = False
        self.complete = False
        self._seen = -1  # the first look only notes where the body is
        self._waiting = False
        self._timed_out = False
        self._task: asyncio.Task[object] | None = None

    async def run(self) -> None:
        self._task = asyncio.current_task()
        self.sweeper.add(self)
        try:
            await self.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self._timed_out or self._task is None:
                raise
            # cancelled by `check` while the app waited for the body elsewhere than in `receive`
            self._task.uncancel()
            await self._refuse(408, self._stalled())
        except Exception:
            if not self.refused:
                raise  # the app's own failure; ServerErrorMiddleware answers it
        finally:
            self.sweeper.requests.discard(self)

    def _stalled(self) -> str:
        return f"no byte of the request body came for {self.sweeper.period:g} seconds"

    def check(self) -> None:
        if self.complete or self.refused:
            self.sweeper.requests.discard(self)
        elif self.chunks == self._seen and self._waiting and self._task is not None:
            self._timed_out = True
            self._task.cancel()
        else:
            self._seen = self.chunks

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.complete:
            # The body is in; what the app waits for now is a disconnect (a streaming response listens for
            # one), which may come at any time.
            return await self._receive()
        self._waiting = True
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not self._timed_out or self._task is None:
                raise
            self._task.uncancel()
            return await self._refuse(408, self._stalled())
        finally:
            self._waiting = False
        if message["type"] == "http.request":
            self.chunks += 1
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                return await self._refuse(413, _too_large(self.limit))
            self.complete = not message.get("more_body", False)
        return message

    async def _refuse(self, status: int, message: str) -> Message:
        self.refused = True
        if not self.started:
            self.started = True
            await _answer(self.scope, self._send, status, message)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
