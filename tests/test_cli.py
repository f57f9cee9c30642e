"""The real `agora` command, run as a subprocess in the test's directory (SQLite at ./var/agora.db)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from agora import auth, migrate
from agora.app import create_app
from agora.db import Database, open_database
from agora.manifest.loader import apply, load_file
from agora.models import AccessKey, ApiToken, Base, Operator, Product, Seller

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"
DEMO_MANIFEST = load_file(DEMO)


def agora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        cwd=Path.cwd(),
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def database() -> Iterator[Database]:
    """The database the CLI uses (AGORA_DATABASE_URL), opened in this process to look at."""
    db = open_database()
    yield db
    db.dispose()


@pytest.fixture
def loaded(database: Database) -> Database:
    """The demo, loaded in-process: the same code as `agora load`, without a second interpreter start."""
    migrate.upgrade(database)
    with database.unit_of_work() as session:
        apply(DEMO_MANIFEST, session)
    return database


def snapshot(db: Database) -> dict[str, list[Any]]:
    with db.reader() as session:
        return {
            table.name: [tuple(row) for row in session.execute(select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }


def count(db: Database, model: Any) -> int:
    with db.reader() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def me(db: Database, token: str) -> tuple[int, Any]:
    """Who the app says the bearer of `token` is."""
    with TestClient(create_app(db)) as client:
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def printed(label: str, stdout: str) -> str:
    found = re.search(rf"^\s*{label}:\s+(\S+)$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def test_migrate_creates_the_schema(database: Database) -> None:
    result = agora("migrate")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at revision ")
    assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(database.engine).get_table_names())


def test_load_applies_the_demo_and_a_second_run_changes_nothing(database: Database) -> None:
    first = agora("load", str(DEMO))

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"loaded {DEMO}: ")
    sellers, products = len(DEMO_MANIFEST.sellers), len(DEMO_MANIFEST.products)
    assert f"{sellers} sellers ({sellers} created)" in first.stdout
    assert f"{products} products ({products} created)" in first.stdout
    assert (count(database, Seller), count(database, Product)) == (sellers, products)
    before = snapshot(database)

    second = agora("load", str(DEMO))

    assert second.returncode == 0, second.stderr
    assert second.stdout == f"{DEMO} is already loaded: nothing changed\n"
    assert snapshot(database) == before


SHAPE_PROBLEMS = (
    """\
sellers:
  - {id: acme, name: Acme Corp, tax_form: W-10}
buyers:
  - {account: "1111222233334", email: ops@bluebird.example}
products:
  - code: acme-analytics
    seller: acme
    kind: saas
    title: Acme Analytics
    short_descripton: Dashboards
    highlights: [HIGHLIGHTS]
    pricing: {hourly: {m5.large: "-0.10"}}
""".replace("HIGHLIGHTS", "x" * 1001),
    [
        "sellers[0].tax_form: must be one of 'W-9', 'W-8' or 'none', got 'W-10' [SEL-02]",
        "buyers[0].account: must be exactly 12 digits, got '1111222233334'",
        "products[0].highlights: highlights may have at most 1,000 characters in all, got 1001 [LST-03]",
        "products[0].pricing.hourly.m5.large: must not be negative",
        "products[0].short_descripton: unknown field (did you mean 'short_description'?)",
    ],
)
REFERENCE_PROBLEMS = (
    """\
products:
  - {code: brand-new, seller: nobody, kind: saas, title: Brand New}
  - code: acme-crm
    seller: acme
    kind: saas
    title: Acme CRM
    state: public
    enterprise_only: true
    refund_policy: "Pro-rata refund of unused contract months on request: billing@acme.example"
    pricing:
      contract:
        dimensions:
          - {name: seats, description: Named user seats, prices: {"1": "12", "12": "120", "24": "228", "36": "324"}}
          - {name: sandboxes, description: Extra sandbox environments, prices: {"12": "500", "36": "1350"}}
subscriptions:
  - {buyer: "111122223333", product: acme-crm, at: 2026-11-01T00:00:00Z,
     contract: {duration_months: 24, quantities: {sandboxes: 1}}}
""",
    [
        "products[0].seller: unknown seller 'nobody' [SEL-01]",
        "subscriptions[0].buyer: 'acme-crm' is sold to enterprise buyers only [LST-09]",
        "subscriptions[0].contract.duration_months: sandboxes has no 24-month price [PRC-10]",
    ],
)
TRUNCATED = (
    'sellers:\n  - {id: acme, name: "Acme Corp}\n',
    ["bad.yaml:3:1: while scanning a quoted scalar found unexpected end of stream"],
)


@pytest.mark.parametrize(
    ("content", "lines"), [SHAPE_PROBLEMS, REFERENCE_PROBLEMS, TRUNCATED], ids=["shape", "references", "truncated"]
)
def test_a_bad_file_exits_2_with_one_line_per_problem_and_changes_nothing(
    loaded: Database, content: str, lines: list[str]
) -> None:
    Path("bad.yaml").write_text(content)
    before = snapshot(loaded)

    result = agora("load", "bad.yaml")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == lines
    assert snapshot(loaded) == before


def test_load_if_empty_on_a_loaded_database_does_nothing(loaded: Database) -> None:
    Path("changed.yaml").write_text(DEMO.read_text().replace("name: Acme Corp", "name: Acme Corporation"))
    before = snapshot(loaded)

    result = agora("load", "--if-empty", "changed.yaml")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "changed.yaml: the database already has sellers; not loaded (--if-empty)\n"
    assert snapshot(loaded) == before


def test_keys_create_for_a_seller_prints_credentials_that_work(loaded: Database) -> None:
    result = agora("keys", "create", "--seller", "acme")

    assert result.returncode == 0, result.stderr
    token = printed("API token", result.stdout)
    key_id = printed("access key id", result.stdout)
    secret = printed("secret key", result.stdout)
    assert me(loaded, token) == (200, {"role": "seller", "handle": "acme"})
    with loaded.reader() as session:
        found = auth.access_key_secret(session, key_id)
        hashes = set(session.scalars(select(ApiToken.token_hash)))
        stored_secret = session.get_one(AccessKey, key_id).secret_encrypted
    assert found is not None and (found[0].handle, found[1]) == ("acme", secret)
    assert auth.hash_token(token) in hashes and secret not in stored_secret


def test_keys_create_for_a_new_operator_creates_it(loaded: Database) -> None:
    result = agora("keys", "create", "--operator", "newops")

    assert result.returncode == 0, result.stderr
    with loaded.reader() as session:
        assert session.scalars(select(Operator.handle).where(Operator.handle == "newops")).one() == "newops"
    assert me(loaded, printed("API token", result.stdout)) == (200, {"role": "operator", "handle": "newops"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seller", "nobody"], "--seller: no seller 'nobody'"),
        (["--seller", "acme", "--buyer", "111122223333"], "give exactly one of --seller, --buyer, --operator"),
    ],
    ids=["unknown-seller", "two-options"],
)
def test_keys_create_refuses_bad_options_with_status_2(loaded: Database, args: list[str], message: str) -> None:
    before = snapshot(loaded)

    result = agora("keys", "create", *args)

    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")
    assert snapshot(loaded) == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_answers_health_and_serves_the_openapi_document(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "agora", "serve", "--port", str(port), "--no-worker"],
        cwd=Path.cwd(),
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
            except httpx.TransportError:
                health = None
            if health is not None and health.status_code == 200:
                break
            time.sleep(0.1)
        assert health is not None and health.status_code == 200, (tmp_path / "serve.log").read_text()
        assert health.json() == {"status": "ok"}
        schema = httpx.get(f"{base}/openapi.json", timeout=5).json()
        assert schema["openapi"].startswith("3.")
        assert "/api/v1/me" in schema["paths"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
