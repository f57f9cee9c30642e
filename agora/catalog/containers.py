"""Video containers (MP4, WebM) read by their structure, not by a magic number: with hachoir's parsers, told
to refuse what they would otherwise repair, every top-level box or element must fit the file exactly, the
file must start as its format starts, and the movie must hold a video track. HTML behind an `ftyp` box,
or a real video with a page appended, is not a video."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hachoir.core import config as hachoir_config
from hachoir.parser.container.mkv import MkvFile
from hachoir.parser.container.mp4 import MP4File
from hachoir.stream import InputIOStream

# hachoir prints what it repairs or skips to the terminal; a refusal here says why in its own words.
hachoir_config.quiet = True

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MATROSKA_VIDEO_TRACK = 1


class NotAContainer(Exception):
    """The file is not a well-formed container of the format it starts like; the message says why."""


class _StrictMP4(MP4File):
    autofix = False  # hachoir "repairs" a box that overruns the file by cutting it; we refuse it


class _StrictMatroska(MkvFile):
    autofix = False


def video_format(path: Path) -> str | None:
    """ "MP4" or "WEBM" for a well-formed video; None when the file starts like neither; NotAContainer when
    it starts like one but is not one."""
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) >= 8 and head[4:8] == b"ftyp":
            handle.seek(0)
            _check(_mp4, handle)
            return "MP4"
        if head.startswith(_EBML_MAGIC):
            handle.seek(0)
            _check(_webm, handle)
            return "WEBM"
    return None


def _check(parse: Any, handle: Any) -> None:
    try:
        parse(InputIOStream(handle, source="upload", tags=[]))
    except NotAContainer:
        raise
    except Exception as exc:
        # A parser of hostile bytes fails in many ways (ParserError, MissingField, struct and value errors,
        # deep recursion); each means the same here: not a well-formed file.
        raise NotAContainer(str(exc) or type(exc).__name__) from None


def _fields(field_set: Any, prefix: str) -> Iterator[Any]:
    for field in field_set:
        if field.name.startswith(prefix):
            yield field


def _mp4(stream: InputIOStream) -> None:
    movie = _StrictMP4(stream)
    atoms = list(_fields(movie, "atom["))  # every top-level box, each of the size it declares, to the end
    tags = [atom["tag"].value for atom in atoms]
    if not tags or tags[0] != "ftyp":
        raise NotAContainer("an MP4 starts with its ftyp box")
    if tags.count("moov") != 1:
        raise NotAContainer("an MP4 has one moov box")
    moov = atoms[tags.index("moov")]
    for trak in _fields(moov[2], "atom["):
        if trak["tag"].value != "trak":
            continue
        for mdia in _fields(trak[2], "atom["):
            if mdia["tag"].value != "mdia":
                continue
            for hdlr in _fields(mdia[2], "atom["):
                if hdlr["tag"].value == "hdlr" and hdlr["hdlr/subtype"].value == "vide":
                    return
    raise NotAContainer("the MP4 has no video track")


def _webm(stream: InputIOStream) -> None:
    movie = _StrictMatroska(stream)
    elements = list(movie)  # every top-level element, each of the size it declares, to the end
    if not elements or not elements[0].name.startswith("EBML["):
        raise NotAContainer("a WebM starts with its EBML header")
    doc_type = next((f for f in elements[0] if f.name == "DocType"), None)
    if doc_type is None or doc_type["string"].value != "webm":
        raise NotAContainer("the EBML header does not declare a webm document")
    others = [e.name for e in elements[1:] if not e.name.startswith(("Segment[", "Void["))]
    if others or len(elements) < 2:
        raise NotAContainer("a WebM is its header and segments, nothing else")
    for segment in elements[1:]:
        if not segment.name.startswith("Segment["):
            continue
        for tracks in _fields(segment, "Tracks["):
            for entry in _fields(tracks, "TrackEntry["):
                kind = next((f for f in entry if f.name == "TrackType"), None)
                if kind is not None and kind["enum"].value == _MATROSKA_VIDEO_TRACK:
                    return
    raise NotAContainer("the WebM has no video track")
