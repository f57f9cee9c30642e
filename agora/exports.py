"""The one CSV writer: every CSV Agora hands out goes through it, so no cell reaches a spreadsheet as a formula.

A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
gets a leading `'`, as OWASP advises: a buyer's instance named `=HYPERLINK("http://evil.example/","x")`
shows as text in the seller's usage export instead of a link. A cell that is a plain decimal number is left
alone, so `-12.50` (a refund line) stays a number that sums; a number is not a formula in any spreadsheet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.responses import Response

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> str:
    """`rows` are sequences in the order of `header`, or mappings keyed by it (other keys are left out)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        cells = [row.get(name) for name in header] if isinstance(row, Mapping) else row
        writer.writerow([safe_cell(cell) for cell in cells])
    return out.getvalue()


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]], filename: str | None = None
) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else None
    return Response(csv_text(header, rows), media_type="text/csv", headers=headers)
