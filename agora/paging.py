"""One way to page every list of the native API.

A list takes `limit` (how many items, 1 to 1,000 unless the route says otherwise) and `after` (the `id` of
the last item of the previous page) and answers, when more items follow, a `Link: <…>; rel="next"` header
whose URL is the same request with `after` set. Response bodies keep their shapes (a bare list stays a
list), so paging is invisible to a client that never needed it.

Keyset paging, never offsets: a page costs one index range scan however deep it is, and an item inserted
while a client walks the list neither repeats nor skips one. A list keeps its own order (products by code,
invoices by period, …); the cursor is still an id, and the page continues after that item's place in the
order. A cursor outside the caller's list is refused (422) rather than looked up, so it tells nothing about
other tenants' items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Query, Request, Response
from sqlalchemy import Row, Select, literal, tuple_
from sqlalchemy.orm import Session

from agora.errors import Invalid

MAX_ID = 2**63 - 1  # the largest id a BIGINT holds; a larger cursor could only overflow the query
LINK_DESCRIPTION = (
    'Present when more items follow: `<URL>; rel="next"`, the URL of the next page (this request with `after`).'
)


@dataclass
class Page:
    limit: int
    after: int | None
    request: Request
    response: Response
    next_after: int | None = None  # the cursor of the next page, once `rows` found that one exists

    def next_url(self, last_id: int) -> str:
        return str(self.request.url.include_query_params(after=last_id, limit=self.limit))

    def link(self, last_id: int | None, response: Response | None = None) -> None:
        """Announce the next page (if `last_id` is given) on the route's response, or on the `response` a
        route builds itself (a CSV export)."""
        if last_id is not None:
            (response or self.response).headers["Link"] = f'<{self.next_url(last_id)}>; rel="next"'

    def rows(
        self,
        session: Session,
        statement: Select[*tuple[Any, ...]],
        order: Sequence[Any],
        key: Callable[[Row[*tuple[Any, ...]]], tuple[Any, ...]] | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Row[*tuple[Any, ...]]]:
        """One page of `statement`'s rows in the order of the `order` columns, the last of which is the
        item's id; `key` reads those values back from a row (by default: the row's first entity's id).
        The columns must not be NULL. Sets the `Link` header when a next page exists."""
        values = key or (lambda row: (row[0].id,))
        statement = statement.order_by(None).order_by(*(c.desc() if newest_first else c.asc() for c in order))
        if self.after is not None:
            start: tuple[Any, ...] = (self.after,)
            if len(order) > 1:
                found = session.execute(statement.where(order[-1] == self.after).limit(1)).first()
                if found is None:
                    raise Invalid.at("after", "is not the id of an item of this list", "unknown cursor")
                start = values(found)
            # Row-value comparison, each value bound with its column's type (a UTC datetime column on SQLite
            # stores text of its own format; a bare Python value would compare in another).
            position = tuple_(*order)
            bound = tuple_(*(literal(v, c.type) for c, v in zip(order, start, strict=True)))
            statement = statement.where(position < bound if newest_first else position > bound)
        found_rows = list(session.execute(statement.limit(self.limit + 1)))
        page = found_rows[: self.limit]
        self.next_after = values(page[-1])[-1] if len(found_rows) > self.limit else None
        self.link(self.next_after)
        return page

    def scalars(
        self, session: Session, statement: Select[*tuple[Any, ...]], order: Sequence[Any], **kw: Any
    ) -> list[Any]:
        """`rows` for a statement of one entity: the entities themselves."""
        return [row[0] for row in self.rows(session, statement, order, **kw)]


def paging(default: int = 100, maximum: int = 1000) -> Callable[..., Page]:
    """The `limit` and `after` query parameters of a list, as a dependency."""

    def dependency(
        request: Request,
        response: Response,
        limit: int = Query(default, ge=1, le=maximum, description=f"items per page (1 to {maximum})"),
        after: int | None = Query(
            None, ge=0, le=MAX_ID, description="the `id` of the last item of the previous page (see the `Link` header)"
        ),
    ) -> Page:
        return Page(limit, after, request, response)

    dependency.agora_paging = True  # type: ignore[attr-defined]
    return dependency


Paging = paging()
