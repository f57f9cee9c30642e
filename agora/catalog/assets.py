"""Asset rules (LST-03): what each kind of upload must be, checked by content, with its limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image, UnidentifiedImageError

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


RULES: dict[AssetKind, AssetRule] = {
    AssetKind.LOGO: AssetRule(int(7.5 * MB), "7.5 MB", 1, frozenset({"PNG"})),
    AssetKind.SCREENSHOT: AssetRule(5 * MB, "5 MB", 10, frozenset({"PNG", "JPEG"})),
    AssetKind.CERTIFICATION: AssetRule(2 * MB, "2 MB", 6, frozenset({"PNG", "JPEG"})),
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


class TooLarge(AgoraError):
    status_code = 413
    code = "too_large"


class TooMany(AgoraError):
    status_code = 409
    code = "too_many_assets"


def _image_format(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.verify()
            return image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _is_pdf(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.read(5) != b"%PDF-":
            return False
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        return len(PdfReader(path).pages) > 0
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, IndexError):
        return False


def _video_format(path: Path) -> str | None:
    with path.open("rb") as handle:
        data = handle.read(12)
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "MP4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "WEBM"
    return None


def detect(kind: AssetKind, path: Path) -> str | None:
    """The format the file really is, among those that matter for `kind`."""
    wanted = RULES[kind].formats
    if wanted & {"PNG", "JPEG"}:
        return _image_format(path)
    if "PDF" in wanted:
        return "PDF" if _is_pdf(path) else None
    return _video_format(path)


def check_size(kind: AssetKind, size: int) -> None:
    rule = RULES[kind]
    if size > rule.max_bytes:
        raise TooLarge(f"file: a {kind.value} may be at most {rule.limit_text}; this one is larger [LST-03]")


def check_content(kind: AssetKind, path: Path, filename: str) -> str:
    """Return the content type for a valid file; refuse anything else, whatever its name says."""
    check_size(kind, path.stat().st_size)
    rule = RULES[kind]
    found = detect(kind, path)
    if found not in rule.formats:
        expected = " or ".join(sorted(rule.formats))
        what = f"a {found} file" if found else "not a readable file of that type"
        raise Invalid(
            f"file: a {kind.value} must be {expected} (checked by content, not name); {filename!r} is {what} [LST-03]"
        )
    return CONTENT_TYPES[found]
