"""What every input must be before it reaches a service or the database: the edge's shared types and checks.

- Whole numbers are bounded by the column that holds them: an id or a cursor by a 64-bit integer (SQLite's
  driver raises `OverflowError` for a larger one instead of finding nothing), a quantity by what a purchase
  can sensibly be (`MAX_QUANTITY`), and a charge computed from them by `MAX_CHARGE_CENTS`.
- Instants are timezone-aware and within 1970-01-01 .. 9000-12-31 UTC (`MIN_INSTANT` .. `MAX_INSTANT`): far
  enough on both sides for any contract, near enough that adding a term or a month never leaves `datetime`.
  Months (`YYYY-MM`) are of the same years.
- Text is valid Unicode without NUL: a JSON string may spell a lone UTF-16 surrogate (`"\\ud800"`), which no
  encoder can write back out, and PostgreSQL cannot store NUL. `check_text` refuses both, naming the field, in
  every JSON body, query string and path of the native API, before any field is validated.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from annotated_types import Ge, Le
from pydantic import AfterValidator
from starlette.requests import Request

from agora.errors import Invalid
from agora.money import from_cents, to_cents

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

# An id in a path, query or body: any value a 64-bit key column can hold (other values are 422).
Id = Annotated[int, Ge(0), Le(INT64_MAX)]

# How many of a thing one purchase buys (instances of an annual purchase, units of a contract dimension).
# The services refuse zero and negatives with their own rule; this is the ceiling.
MAX_QUANTITY = 1_000_000
Quantity = Annotated[int, Le(MAX_QUANTITY)]

# One charge computed from a price and a quantity: at most $10 trillion, so that it and the sums of many such
# charges on invoices and statements stay far inside the 64-bit cents columns.
MAX_CHARGE_CENTS = 10**15


def charge_cents(amount: Decimal, loc: str) -> int:
    """`amount` in cents (rounded once, BIL-04), or 422 at `loc` when it is more than one charge may be."""
    cents = to_cents(amount)
    if cents > MAX_CHARGE_CENTS:
        raise Invalid.at(
            loc,
            f"makes a charge of {from_cents(cents)}, more than the {from_cents(MAX_CHARGE_CENTS)} one charge may be",
        )
    return cents


MIN_YEAR = 1970
MAX_YEAR = 9000
MIN_INSTANT = datetime(MIN_YEAR, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(MAX_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)
_RANGE = f"{MIN_INSTANT:%Y-%m-%d} .. {MAX_INSTANT:%Y-%m-%d} UTC"


def _instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. 2026-06-30T00:00:00Z")
    # Compared before converting: converting an instant near year 1 or 9999 to UTC can leave `datetime`.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be within {_RANGE}")
    utc = value.astimezone(UTC)
    if not MIN_INSTANT <= utc <= MAX_INSTANT:
        raise ValueError(f"must be within {_RANGE}")
    return utc


# Every instant an API caller gives: timezone-aware, in range, returned in UTC.
Instant = Annotated[datetime, AfterValidator(_instant)]

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def check_month(value: str) -> str:
    """A billing period, `YYYY-MM`, in the years instants may have."""
    found = _MONTH.fullmatch(value)
    if found is None:
        raise ValueError("must be a month like 2026-03")
    if not MIN_YEAR <= int(found.group(1)) <= MAX_YEAR:
        raise ValueError(f"must be a month of the years {MIN_YEAR} to {MAX_YEAR}")
    return value


Month = Annotated[str, AfterValidator(check_month)]


# --- text ---------------------------------------------------------------------------------------------------


_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or written back out, or None."""
    found = _UNWRITABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "is not valid Unicode (it holds a lone UTF-16 surrogate)"


def bad_text(document: Any, root: str = "", *, brackets: bool = False) -> list[tuple[str, str]]:
    """Every key or string of a parsed JSON document that `text_problem` refuses, located from `root` as FastAPI
    locates fields (`body.a.0`), or with `brackets` as the SDK doors do (`Records[0].Key`). A walk with its own
    stack: a document nested as deep as the JSON parser allows must not exhaust Python's."""
    found = []
    stack: list[tuple[str, Any]] = [(root, document)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                found.append((loc, problem))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                problem = text_problem(key)
                if problem:
                    # The key itself cannot be written in the message; its place can.
                    found.append((loc, f"has a key that {problem}"))
                else:
                    stack.append((f"{loc}.{key}" if loc else key, item))
        elif isinstance(value, list):
            for n in reversed(range(len(value))):
                stack.append((f"{loc}[{n}]" if brackets else f"{loc}.{n}", value[n]))
    return found


_BAD_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def json_may_hold_bad_text(body: bytes) -> bool:
    """Whether parsing `body` as JSON may yield a string `text_problem` refuses; False only when it cannot, so a
    caller may skip `bad_text`'s walk (the metering hot path). Strict UTF-8 without NUL bytes holds no lone
    surrogate itself; only an escape can then spell one or a NUL. Anything else may: Python's JSON decoder
    reads bytes with `surrogatepass` and detects UTF-16 and UTF-32 by their NUL bytes."""
    if b"\x00" in body:
        return True
    try:
        body.decode()
    except UnicodeDecodeError:
        return True
    return b"\\u" in body and _BAD_ESCAPE.search(body) is not None


def clean_text(value: Any) -> Any:
    """`value` with every string made writable (NUL and lone surrogates become U+FFFD): for rendering what
    was stored before `check_text` guarded the edge."""
    if isinstance(value, str):
        return _UNWRITABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_text(item) for item in value]
    return value


async def check_text(request: Request) -> None:
    """A dependency of every native API route: refuse invalid text in the path, the query and a JSON body."""
    problems: list[tuple[str, str]] = []
    for name, value in request.path_params.items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            problems.append((f"path.{name}", problem))
    query = request.scope.get("query_string", b"")
    if query:
        for pair in query.split(b"&"):
            name, _, raw = pair.partition(b"=")
            try:
                key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
                text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                problems.append(("query", "is not valid UTF-8"))
                continue
            problem = text_problem(key) or text_problem(text)
            if problem:
                problems.append((f"query.{key}" if text_problem(key) is None else "query", problem))
    content_type = request.headers.get("content-type", "")
    # FastAPI reads a body without a content type as JSON too.
    if request.method in ("POST", "PUT", "PATCH") and (not content_type or "json" in content_type):
        body = await request.body()
        if json_may_hold_bad_text(body):
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                document = None  # FastAPI answers the malformed body itself
            problems.extend(bad_text(document, "body"))
    if problems:
        raise Invalid.of(problems)
