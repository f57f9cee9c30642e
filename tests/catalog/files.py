"""Real test files, made in memory: PNG and JPEG images by Pillow, a PDF with one blank page by pypdf, and
the first bytes of an MP4. Large files are a valid file followed by padding, so making them costs nothing."""

from __future__ import annotations

import io

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


def pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def mp4(size: int = 4096) -> bytes:
    return padded(MP4_HEADER + b"\x00\x00\x00\x00mp42isom", size)


def padded(data: bytes, size: int) -> bytes:
    """`data` followed by zero bytes up to `size` bytes (readers of PNG, JPEG and PDF ignore the tail)."""
    assert size >= len(data)
    return data + b"\0" * (size - len(data))
