"""Fixtures of the web tests: the seeded market on every dialect, a browser-like client, signing in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from agora.app import create_app
from agora.db import Database
from tests.web.market import seed

HTML = {"accept": "text/html,application/xhtml+xml"}
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@pytest.fixture
def offer_id(db: Database) -> str:
    return seed(db)


@pytest.fixture
def browser(db: Database, offer_id: str) -> Iterator[TestClient]:
    """A client that asks for pages the way a browser does and keeps its cookies."""
    with TestClient(create_app(db), headers=HTML, follow_redirects=False) as client:
        yield client


def csrf_of(page: Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str, next_: str | None = None) -> Response:
    form = {"email": email, "password": password, "csrf_token": csrf_of(client.get("/login"))}
    if next_:
        form["next"] = next_
    return client.post("/login", data=form)
