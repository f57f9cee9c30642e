"""Asset rules (LST-03): what each kind of upload must be, checked by content, with its limits."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from agora.catalog import containers
from agora.errors import AgoraError, Invalid

MB = 1024 * 1024


class AssetKind(StrEnum):
    LOGO = "logo"
    SCREENSHOT = "screenshot"
    CERTIFICATION = "certification"
    USER_GUIDE = "user_guide"
    VIDEO = "video"
    EULA = "eula"


@dataclass(frozen=True)
class AssetRule:
    max_bytes: int
    limit_text: str
    max_count: int  # 1 = a new upload replaces the old one
    formats: frozenset[str]  # detected formats accepted: PNG, JPEG, PDF, MP4, WEBM
    max_pixels: tuple[int, int] | None = None  # images: the largest width and height accepted


# Image dimensions are Agora's convention (LST-03 bounds only bytes): an image is served to every visitor,
# and a few hundred compressed bytes can declare a picture that takes gigabytes to decode. A logo is shown
# at 290 × 290; a screenshot may come from a 5K display; a certificate is a scanned page.
RULES: dict[AssetKind, AssetRule] = {
    AssetKind.LOGO: AssetRule(int(7.5 * MB), "7.5 MB", 1, frozenset({"PNG"}), (2048, 2048)),
    AssetKind.SCREENSHOT: AssetRule(5 * MB, "5 MB", 10, frozenset({"PNG", "JPEG"}), (5120, 5120)),
    AssetKind.CERTIFICATION: AssetRule(2 * MB, "2 MB", 6, frozenset({"PNG", "JPEG"}), (4096, 4096)),
    AssetKind.USER_GUIDE: AssetRule(10 * MB, "10 MB", 1, frozenset({"PDF"})),
    AssetKind.VIDEO: AssetRule(200 * MB, "200 MB", 1, frozenset({"MP4", "WEBM"})),
    AssetKind.EULA: AssetRule(10 * MB, "10 MB", 1, frozenset({"PDF"})),
}

MAX_BYTES = max(rule.max_bytes for rule in RULES.values())
MAX_TEXT = max(RULES.values(), key=lambda rule: rule.max_bytes).limit_text

CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "PDF": "application/pdf",
    "MP4": "video/mp4",
    "WEBM": "video/webm",
}


# Every uploaded file is served with these: never sniffed as another type, never run as a page (a file that
# is also HTML would otherwise run as the site), and named as a download. Images and videos display inline;
# a PDF is a download, since browsers' PDF viewers do not run inside a sandboxed document.
ASSET_CSP = "default-src 'none'; sandbox"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def served_headers(content_type: str, filename: str) -> dict[str, str]:
    disposition = "attachment" if content_type == "application/pdf" else "inline"
    plain = _SAFE_NAME.sub("_", filename).strip("._")[:100] or "file"
    encoded = quote(filename[:255], safe="", errors="replace")
    return {
        "Content-Disposition": f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{encoded}",
        "Content-Security-Policy": ASSET_CSP,
        "X-Content-Type-Options": "nosniff",
    }


class TooLarge(AgoraError):
    status_code = 413
    code = "too_large"


class TooMany(AgoraError):
    status_code = 409
    code = "too_many_assets"


class Unreadable(Exception):
    """The bytes are not a well-formed file of the kind they claim to be; the message says why."""


def _image_format(kind: AssetKind, path: Path) -> str | None:
    """PNG or JPEG, read from its header without decoding a pixel; dimensions beyond the kind's bound are
    refused before anything else is read."""
    bound = RULES[kind].max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit raises) on huge dimensions; the bound below is far lower.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size = image.size
                found = image.format
                if bound is None or (size[0] <= bound[0] and size[1] <= bound[1]):
                    image.verify()
    except Image.DecompressionBombError:
        size, found = (2**31, 2**31), None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if bound is not None and (size[0] > bound[0] or size[1] > bound[1]):
        shown = "more than 178,956,970 pixels" if size[0] == 2**31 else f"{size[0]} × {size[1]} pixels"
        raise Invalid.at("file", f"a {kind.value} may be at most {bound[0]} × {bound[1]} pixels; this one is {shown}")
    if found == "PNG":
        with path.open("rb") as handle:
            _png_ends_at_iend(handle)
    return found


def _png_ends_at_iend(handle: BinaryIO) -> None:
    """Walk the chunks: a PNG ends with its IEND chunk. Bytes after it (an HTML page, a ZIP) would make the
    file something else too, for whatever reads it from the end or sniffs it."""
    handle.seek(8)
    while True:
        header = handle.read(8)
        if len(header) < 8:
            raise Unreadable("the PNG has no IEND chunk")
        length = int.from_bytes(header[:4], "big")
        handle.seek(length + 4, 1)  # the chunk's data and CRC (Pillow's verify checked the CRCs)
        if header[4:8] == b"IEND":
            break
    if handle.read(1):
        raise Unreadable("the PNG has data after its IEND chunk")


# The end of a PDF: its last cross-reference offset and `%%EOF`, then at most line ends and padding.
_PDF_END = re.compile(rb"startxref\s+\d+\s+%%EOF[\s\x00]*\Z")


def _is_pdf(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.read(5) != b"%PDF-":
            return False
        handle.seek(max(0, path.stat().st_size - 1024))
        if not _PDF_END.search(handle.read()):
            raise Unreadable("the PDF does not end with its cross-reference offset and %%EOF")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        return len(PdfReader(path).pages) > 0
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, IndexError, RecursionError):
        return False


def detect(kind: AssetKind, path: Path) -> str | None:
    """The format the file really is, among those that matter for `kind`."""
    wanted = RULES[kind].formats
    if wanted & {"PNG", "JPEG"}:
        return _image_format(kind, path)
    if "PDF" in wanted:
        return "PDF" if _is_pdf(path) else None
    return containers.video_format(path)


def check_size(kind: AssetKind, size: int) -> None:
    rule = RULES[kind]
    if size > rule.max_bytes:
        raise TooLarge(f"file: a {kind.value} may be at most {rule.limit_text}; this one is larger [LST-03]")


def check_content(kind: AssetKind, path: Path, filename: str) -> str:
    """Return the content type for a valid file; refuse anything else, whatever its name says."""
    check_size(kind, path.stat().st_size)
    rule = RULES[kind]
    expected = " or ".join(sorted(rule.formats))
    try:
        found = detect(kind, path)
    except (Unreadable, containers.NotAContainer) as exc:
        raise Invalid.at(
            "file", f"a {kind.value} must be {expected}; {filename!r} is not a well-formed one: {exc} [LST-03]"
        ) from None
    if found not in rule.formats:
        what = f"a {found} file" if found else "not a readable file of that type"
        raise Invalid.at(
            "file", f"a {kind.value} must be {expected} (checked by content, not name); {filename!r} is {what} [LST-03]"
        )
    return CONTENT_TYPES[found]
