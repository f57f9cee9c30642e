"""A reset link e-mailed through the outbox (DESIGN.md, "Signing in"): it tells nothing about which addresses
have accounts, works once for an hour, and signs the account out everywhere."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import clock
from agora.app import create_app
from agora.db import Database
from agora.models import LoginThrottle, Notification, WebSession
from tests.web.conftest import HTML, csrf_of, sign_in
from tests.web.market import BUYER, OPERATOR

LINK = re.compile(r"https?://[^\s/]+(/password-reset/[A-Za-z0-9_-]+)")


def ask(client: TestClient, email: str) -> None:
    page = client.get("/password-reset")
    answer = client.post("/password-reset", data={"email": email, "csrf_token": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert "we have sent it a link" in client.get("/login").text


def messages(db: Database) -> list[Notification]:
    with db.reader() as session:
        return list(session.scalars(select(Notification).where(Notification.kind == "password_reset")))


def link_in(message: Notification) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1)


def set_password(client: TestClient, path: str, password: str, confirm: str | None = None) -> int:
    form = client.get(path)
    data = {"password": password, "confirm": confirm or password, "csrf_token": csrf_of(form)}
    return client.post(path, data=data).status_code


def test_the_login_page_links_to_the_reset_form(browser: TestClient) -> None:
    assert 'href="/password-reset"' in browser.get("/login").text
    form = browser.get("/password-reset")
    assert form.status_code == 200 and '<label for="email">Email</label>' in form.text


def test_a_buyer_resets_the_password_through_the_mailed_link(browser: TestClient, db: Database) -> None:
    other = TestClient(create_app(db), headers=HTML, follow_redirects=False)
    assert sign_in(other, *BUYER).status_code == 303  # a session elsewhere, ended by the reset
    ask(browser, BUYER[0].upper())
    [message] = messages(db)
    assert message.to == BUYER[0] and message.subject == "Reset your Agora password"
    path = link_in(message)
    assert set_password(browser, path, "new-pass-1", "new-pass-2") == 422  # not the same twice
    assert set_password(browser, path, "short") == 422  # too short: the link still works
    assert set_password(browser, path, "a-new-password") == 303
    assert sign_in(browser, *BUYER).status_code == 401
    assert sign_in(browser, BUYER[0], "a-new-password").status_code == 303
    assert other.get("/account").status_code == 303  # signed out there
    assert browser.get(path).status_code == 410  # used once
    with db.reader() as session:
        assert len(session.scalars(select(WebSession)).all()) == 1


def test_an_unknown_address_gets_the_same_answer_and_no_message(browser: TestClient, db: Database) -> None:
    ask(browser, "nobody@nowhere.example")
    assert messages(db) == []


def test_one_link_per_address_every_two_minutes(browser: TestClient, db: Database) -> None:
    ask(browser, BUYER[0])
    ask(browser, BUYER[0])
    assert len(messages(db)) == 1


def test_a_link_expires_after_an_hour(browser: TestClient, db: Database) -> None:
    ask(browser, BUYER[0])
    path = link_in(messages(db)[0])
    later = clock.now() + timedelta(hours=1, seconds=1)
    with clock.use_clock(clock.ManualClock(later)):
        assert browser.get(path).status_code == 410
        assert set_password(browser, "/password-reset/unknown-token", "a-new-password") == 410


def test_a_reset_clears_the_failed_sign_ins(browser: TestClient, db: Database) -> None:
    for _ in range(5):
        sign_in(browser, BUYER[0], "wrong-password")
    ask(browser, BUYER[0])
    assert set_password(browser, link_in(messages(db)[0]), "a-new-password") == 303
    with db.reader() as session:
        assert session.get(LoginThrottle, BUYER[0]) is None
    assert sign_in(browser, BUYER[0], "a-new-password").status_code == 303


@pytest.mark.parametrize("token", ["x" * 500, "%00", "..%2f..%2fetc"])
def test_a_malformed_token_is_an_expired_link(browser: TestClient, token: str) -> None:
    assert browser.get(f"/password-reset/{token}").status_code in (404, 410, 422)  # a NUL is refused at the edge


def test_operators_never_read_a_reset_link_in_the_outbox(browser: TestClient, db: Database) -> None:
    """The outbox (API and console) hides the link's token: it would sign in as the recipient."""
    ask(browser, BUYER[0])
    path = link_in(messages(db)[0])
    token = path.rsplit("/", 1)[1]
    api = browser.get("/api/v1/notifications?kind=password_reset", headers={"Authorization": "Bearer demo-ops-token"})
    assert api.status_code == 200 and api.json() and token not in api.text
    assert "/password-reset/[hidden" in api.json()[0]["body"]
    browser.cookies.clear()
    assert sign_in(browser, *OPERATOR).status_code == 303
    console = browser.get("/ops/outbox")
    assert console.status_code == 200 and "Reset your Agora password" in console.text and token not in console.text
