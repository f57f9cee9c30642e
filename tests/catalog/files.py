"""Real test files, made in memory: PNG and JPEG images by Pillow, a PDF with one blank page by pypdf, and
the smallest well-formed MP4 and WebM with one video track, box by box. Large files are a valid file with
padding (inside a PNG, in a chunk of its own), so making them costs nothing."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter

MB = 1024 * 1024


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


def _box(kind: bytes, payload: bytes, version_flags: int | None = None) -> bytes:
    if version_flags is not None:
        payload = struct.pack(">I", version_flags) + payload
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(width: int = 16, height: int = 16, media: bytes = b"\0" * 64) -> bytes:
    """ftyp, a moov with one video track (its handler `vide`), and an mdat."""
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">IIIIIH", 0, 0, 1000, 1000, 0x10000, 0x100) + b"\0" * 10 + matrix + b"\0" * 24 + b"\0\0\0\2",
        0,
    )
    tkhd = _box(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, 1, 0, 1000) + b"\0" * 16 + matrix + struct.pack(">II", width << 16, height << 16),
        3,
    )
    mdhd = _box(b"mdhd", struct.pack(">IIIIHH", 0, 0, 1000, 1000, 0x55C4, 0), 0)
    hdlr = _box(b"hdlr", b"\0" * 4 + b"vide" + b"\0" * 12 + b"VideoHandler\0", 0)
    dinf = _box(b"dinf", _box(b"dref", struct.pack(">I", 1) + _box(b"url ", b"", 1), 0))
    tables = [_box(b"stsd", b"\0" * 4, 0), _box(b"stts", b"\0" * 4, 0), _box(b"stsc", b"\0" * 4, 0)]
    stbl = _box(b"stbl", b"".join([*tables, _box(b"stsz", b"\0" * 8, 0), _box(b"stco", b"\0" * 4, 0)]))
    minf = _box(b"minf", _box(b"vmhd", b"\0" * 8, 1) + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    return ftyp + _box(b"moov", mvhd + trak) + _box(b"mdat", media)


def _element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + b"\x01" + len(payload).to_bytes(7, "big") + payload  # an 8-byte EBML size


def _uint(element_id: bytes, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm(width: int = 16, height: int = 16) -> bytes:
    """The EBML header (DocType webm) and a Segment with Info and one video track (TrackType 1)."""
    header = _element(
        b"\x1a\x45\xdf\xa3",
        _uint(b"\x42\x86", 1)
        + _uint(b"\x42\xf7", 1)
        + _uint(b"\x42\xf2", 4)
        + _uint(b"\x42\xf3", 8)
        + _element(b"\x42\x82", b"webm")
        + _uint(b"\x42\x87", 2)
        + _uint(b"\x42\x85", 2),
    )
    info = _element(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1_000_000) + _element(b"\x4d\x80", b"agora"))
    video = _element(b"\xe0", _uint(b"\xb0", width) + _uint(b"\xba", height))
    entry = _uint(b"\xd7", 1) + _uint(b"\x73\xc5", 1) + _uint(b"\x83", 1) + _element(b"\x86", b"V_VP8") + video
    tracks = _element(b"\x16\x54\xae\x6b", _element(b"\xae", entry))
    return header + _element(b"\x18\x53\x80\x67", info + tracks)


def padded(data: bytes, size: int) -> bytes:
    """`data` grown to exactly `size` bytes: a PNG by a private ancillary chunk before its IEND (readers skip
    it), anything else by zero bytes at the end (readers of JPEG ignore the tail; a PDF or a video grown
    this way is only good for a size limit, which is checked first)."""
    assert size >= len(data)
    if data.startswith(b"\x89PNG") and size > len(data):
        assert size >= len(data) + 12, "a chunk takes 12 bytes"
        iend = len(data) - 12
        return data[:iend] + _chunk(b"agPd", b"\0" * (size - len(data) - 12)) + data[iend:]
    return data + b"\0" * (size - len(data))
