"""Real test files, made in memory: PNG and JPEG images by Pillow, a PDF with one blank page by pypdf, and
the first bytes of an MP4. Large files are a valid file with padding (inside a PNG, in a chunk of its own),
so making them costs nothing."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter

MB = 1024 * 1024
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42"


def png(width: int = 290, height: int = 290, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` × `height`: its pixel data is one compressed row of zeros,
    so it is a few hundred bytes whatever it claims (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0")) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pdf(width: int = 612) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=width, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def mp4(size: int = 4096) -> bytes:
    return padded(MP4_HEADER + b"\x00\x00\x00\x00mp42isom", size)


def padded(data: bytes, size: int) -> bytes:
    """`data` grown to exactly `size` bytes: a PNG by a private ancillary chunk before its IEND (readers skip
    it), anything else by zero bytes at the end (readers of JPEG ignore the tail; a PDF grown this way is
    only good for a size limit, which is checked first)."""
    assert size >= len(data)
    if data.startswith(b"\x89PNG") and size > len(data):
        assert size >= len(data) + 12, "a chunk takes 12 bytes"
        iend = len(data) - 12
        return data[:iend] + _chunk(b"agPd", b"\0" * (size - len(data) - 12)) + data[iend:]
    return data + b"\0" * (size - len(data))
