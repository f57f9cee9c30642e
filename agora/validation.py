"""What every input must be before it reaches a service or the database: the edge's shared types and checks.

- Whole numbers are bounded by the column that holds them: an id or a cursor by a 64-bit integer (SQLite's
  driver raises `OverflowError` for a larger one instead of finding nothing), a quantity by what a purchase
  can sensibly be.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

# An id in a path, query or body: any value a 64-bit key column can hold (other values are 422).
Id = Annotated[int, Ge(0), Le(INT64_MAX)]
