"""Receiving an uploaded file: a multipart/form-data body streamed to a temporary file beside the store as it
arrives, never held in memory, with the limit of its kind applied while the bytes come in. Routes read it
only after the caller's token and rights are checked (FastAPI reads `Form`/`File` parameters before any
dependency runs, so upload routes take the raw request instead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from agora.catalog.assets import AssetKind
from agora.catalog.storage import Incoming
from agora.errors import Invalid

MAX_FIELD_BYTES = 1024  # `kind` and the like; a form field of an upload is a word, not a document
MAX_FIELDS = 8


def openapi_body(*, kind: bool) -> dict[str, Any]:
    """The multipart/form-data request body of an upload route, for OpenAPI (the route reads the raw request):
    the field `file`, and `kind` where the route takes several kinds of file."""
    properties: dict[str, Any] = {"file": {"type": "string", "format": "binary"}}
    if kind:
        properties = {"kind": {"type": "string", "enum": [k.value for k in AssetKind]}, **properties}
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


@dataclass
class Received:
    fields: dict[str, str]
    filename: str | None = None
    file: Incoming | None = None


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)


async def receive(request: Request, incoming: Incoming, check: Callable[[dict[str, str], int], None]) -> Received:
    """Read the body's form fields and its one file part (field `file`) into `incoming`. `check(fields, size)`
    runs after every chunk of the file with the fields seen so far, and raises to stop the upload."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise Invalid.at("file", "send the upload as multipart/form-data with fields kind and file")
    received = Received(fields={})
    part = _Part()
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers.append((bytes(header_name).lower(), bytes(header_value)))
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        disposition = next((v for k, v in part.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if part.name != "file" or received.file is not None:
                raise Invalid.at("file", "an upload carries one file, in the field named file")
            part.filename = received.filename = options[b"filename"].decode("utf-8", "replace")
            received.file = incoming

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.filename is not None:
            # Plain writes to the page cache: cheaper than a thread hop per chunk; fsync runs off the loop.
            incoming.write(data[start:end])
            check(received.fields, incoming.size)
            return
        part.data.extend(data[start:end])
        if len(part.data) > MAX_FIELD_BYTES:
            raise Invalid.at(part.name or "form", f"a form field of an upload is at most {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if part.filename is not None:
            return
        if len(received.fields) >= MAX_FIELDS:
            raise Invalid.at("form", f"an upload has at most {MAX_FIELDS} form fields")
        try:
            received.fields[part.name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid.at(part.name or "form", "not valid UTF-8") from None
        if received.file is not None:
            check(received.fields, incoming.size)  # the file came first; its kind is known only now

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise Invalid.at("file", "the body is not well-formed multipart/form-data") from None
    return received
