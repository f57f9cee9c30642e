"""Signing in and out, sessions, throttling, roles, CSRF and the security headers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from agora import clock
from agora.app import create_app
from agora.cli import app as cli_app
from agora.db import Database
from agora.models import LoginThrottle, Password, WebSession
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, OPERATOR, SELLER


def test_the_login_page_has_the_fixed_labels(browser: TestClient) -> None:
    page = browser.get("/login")
    assert page.status_code == 200
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert ">Sign in</button>" in page.text


def test_a_buyer_signs_in_and_out(browser: TestClient, db: Database) -> None:
    signed_in = sign_in(browser, *BUYER)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
    account = browser.get("/account")
    assert account.status_code == 200
    assert ">Sign out</button>" in account.text and 'action="/logout"' in account.text
    assert ">Sign out</button>" in browser.get("/").text  # on every signed-in page
    out = browser.post("/logout", data={"csrf_token": csrf_of(account)})
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert "You have signed out." in browser.get("/").text
    assert browser.get("/account").headers["location"] == "/login?next=/account"
    with db.reader() as session:
        assert session.scalars(select(WebSession)).all() == []


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(db: Database, offer_id: str) -> None:
    with TestClient(create_app(db), base_url="https://testserver", follow_redirects=False) as client:
        response = sign_in(client, *BUYER)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("agora_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie


def test_a_wrong_email_and_a_wrong_password_get_the_same_answer(browser: TestClient) -> None:
    wrong_password = sign_in(browser, BUYER[0], "not-the-password")
    wrong_email = sign_in(browser, "nobody@nowhere.example", BUYER[1])
    assert wrong_password.status_code == wrong_email.status_code == 401
    message = "The e-mail address or password is not right."
    assert message in wrong_password.text and message in wrong_email.text
    assert wrong_password.text.replace(BUYER[0], "X") == wrong_email.text.replace("nobody@nowhere.example", "X")
    assert "agora_session" not in browser.cookies


def test_repeated_failures_for_one_account_are_slowed_down(
    browser: TestClient, db: Database, manual_clock: clock.ManualClock
) -> None:
    for _ in range(5):
        assert sign_in(browser, BUYER[0], "guess").status_code == 401
    throttled = sign_in(browser, BUYER[0], BUYER[1])  # even the right password waits
    assert throttled.status_code == 429
    assert "Too many failed attempts" in throttled.text and throttled.headers["retry-after"] == "30"
    assert sign_in(browser, SELLER[0], SELLER[1]).status_code == 303  # other accounts are not held up
    browser.cookies.clear()
    manual_clock.advance(timedelta(seconds=31))
    assert sign_in(browser, BUYER[0], "guess").status_code == 401  # the sixth failure: 60 s now
    assert sign_in(browser, BUYER[0], BUYER[1]).headers["retry-after"] == "60"
    manual_clock.advance(timedelta(seconds=61))
    assert sign_in(browser, BUYER[0], BUYER[1]).status_code == 303
    with db.reader() as session:
        assert session.get(LoginThrottle, BUYER[0]) is None  # success forgets the failures


def test_unknown_addresses_are_throttled_alike(browser: TestClient, manual_clock: clock.ManualClock) -> None:
    for _ in range(5):
        sign_in(browser, "ghost@nowhere.example", "guess")
    assert sign_in(browser, "ghost@nowhere.example", "guess").status_code == 429


def test_a_session_ends_after_an_hour_without_a_request(browser: TestClient, manual_clock: clock.ManualClock) -> None:
    sign_in(browser, *BUYER)
    manual_clock.advance(timedelta(minutes=50))
    assert browser.get("/account").status_code == 200  # activity keeps it alive
    manual_clock.advance(timedelta(minutes=50))
    assert browser.get("/account").status_code == 200
    manual_clock.advance(timedelta(minutes=61))
    assert browser.get("/account").status_code == 303


@pytest.mark.parametrize(
    ("who", "page"),
    [(SELLER, "/account"), (BUYER, "/seller"), (BUYER, "/ops"), (OPERATOR, "/account"), (SELLER, "/ops")],
)
def test_another_role_gets_403(browser: TestClient, who: tuple[str, str], page: str) -> None:
    sign_in(browser, *who)
    refused = browser.get(page)
    assert refused.status_code == 403
    assert "open this page" in refused.text and ">Sign out</button>" in refused.text


def test_each_role_lands_on_its_own_page(browser: TestClient) -> None:
    assert sign_in(browser, *SELLER).headers["location"] == "/seller"
    assert browser.get("/seller").status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in_and_back(browser: TestClient) -> None:
    assert browser.get("/ops?tab=jobs").headers["location"] == "/login?next=/ops%3Ftab%3Djobs"
    assert sign_in(browser, *OPERATOR, next_="/ops?tab=jobs").headers["location"] == "/ops?tab=jobs"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_sign_in_never_redirects_off_the_site(browser: TestClient, target: str) -> None:
    assert sign_in(browser, *BUYER, next_=target).headers["location"] == "/account"


def test_a_post_without_its_csrf_token_is_403(browser: TestClient) -> None:
    browser.get("/login")
    refused = browser.post("/login", data={"email": BUYER[0], "password": BUYER[1]})
    assert refused.status_code == 403 and "did not come from this site" in refused.text
    forged = browser.post("/login", data={"email": BUYER[0], "password": BUYER[1], "csrf_token": "0" * 64})
    assert forged.status_code == 403
    sign_in(browser, *BUYER)
    assert browser.post("/logout").status_code == 403
    assert browser.get("/account").status_code == 200  # still signed in


def test_a_token_from_before_sign_in_is_worthless_after(browser: TestClient) -> None:
    before = csrf_of(browser.get("/login"))
    sign_in(browser, *BUYER)
    assert browser.post("/logout", data={"csrf_token": before}).status_code == 403


@pytest.mark.parametrize("path", ["/", "/login", "/search?q=vault", "/products/acme-vault", "/nope"])
def test_html_responses_carry_the_security_headers(browser: TestClient, path: str) -> None:
    response = browser.get(path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "<script>" not in response.text and " on" + "click=" not in response.text  # no inline script


def test_error_pages_are_pages_for_browsers_and_json_for_the_api(browser: TestClient) -> None:
    page = browser.get("/products/no-such-thing")
    assert page.status_code == 404 and "find that page" in page.text
    api = browser.get("/api/v1/catalog/no-such-thing")
    assert api.status_code == 404 and api.json()["error"] == "not_found"


def test_manifest_passwords_are_stored_as_argon2_hashes_only(db: Database, browser: TestClient) -> None:
    with db.reader() as session:
        hashes = session.scalars(select(Password.hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(BUYER[1] in h for h in hashes)


def test_agora_users_set_password(db: Database, browser: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_DATABASE_URL", str(db.engine.url.render_as_string(hide_password=False)))
    from agora import config

    config.reset_settings()
    result = CliRunner().invoke(cli_app, ["users", "set-password", BUYER[0]], input="brand-new-pass\nbrand-new-pass\n")
    assert result.exit_code == 0, result.output
    assert "password set for buyer 111122223333" in result.output
    assert "brand-new-pass" not in result.output
    assert sign_in(browser, *BUYER).status_code == 401
    assert sign_in(browser, BUYER[0], "brand-new-pass").status_code == 303
    unknown = CliRunner().invoke(cli_app, ["users", "set-password", "no@one.example"], input="abcdefgh1\nabcdefgh1\n")
    assert unknown.exit_code == 2


def test_signing_in_sweeps_away_expired_sessions(browser: TestClient, db: Database) -> None:
    start = clock.now()
    assert sign_in(browser, *BUYER).status_code == 303
    with clock.use_clock(clock.ManualClock(start + timedelta(hours=2))):
        other = TestClient(create_app(db), headers=browser.headers, follow_redirects=False)
        assert sign_in(other, *SELLER).status_code == 303
        with db.reader() as session:
            assert len(session.scalars(select(WebSession)).all()) == 1  # the buyer's idle one is gone
