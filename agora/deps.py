"""Request-scoped dependencies: the database, the unit of work, the request id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from agora.db import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed before the response is sent, rolled back on any error.

    Routes use it with `scope="function"` (see `Uow`) so a failed commit is never reported as success.
    """
    with get_db(request).unit_of_work() as session:
        session.info["request_id"] = getattr(request.state, "request_id", None)
        yield session


Uow = Annotated[Session, Depends(get_session, scope="function")]
