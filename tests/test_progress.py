"""Long commands show progress on a terminal — `agora bill` (buyers invoiced), `agora load` (entries
applied), `agora simulate` (months simulated) — on stderr only, and nothing when piped or with --json:
stdout is the same bytes either way."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from agora import cli, clock, config
from agora.db import Database
from tests.billing.test_runs import meter
from tests.factories.metering import OTHER, SAAS, metered_market

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Terminal:
    """stdout and stderr as a terminal would have them: Rich consoles forced to act as on a TTY."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stdout, self.stderr = io.StringIO(), io.StringIO()
        monkeypatch.setattr(cli, "out", Console(file=self.stdout, force_terminal=True, highlight=False, soft_wrap=True))
        monkeypatch.setattr(cli, "err", Console(file=self.stderr, force_terminal=True, highlight=False, soft_wrap=True))


def run(*args: str) -> tuple[str, str]:
    """The command as when piped: (stdout, stderr)."""
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout, result.stderr


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    yield Terminal(monkeypatch)


@pytest.fixture
def billed_market(db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AGORA_DATABASE_URL", db_url)
    config.reset_settings()
    with clock.use_clock(clock.ManualClock(T0)) as moved:
        assert isinstance(moved, clock.ManualClock)
        metered_market(db, T0)
        moved.set(T0 + timedelta(days=2))
        meter(db, SAAS, "cust-1", "users", 10)
        meter(db, OTHER, "gx-1", "users", 100)
        moved.set(datetime(2026, 4, 2, tzinfo=UTC))
        yield


@pytest.mark.parametrize("as_json", [False, True])
def test_bill_shows_buyers_invoiced_on_a_terminal_and_prints_the_same_bytes_piped(
    billed_market: None, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    args = ["bill", "--period", "2026-03", *(["--json"] if as_json else [])]
    piped_out, piped_err = run(*args)
    assert piped_err == ""  # piped: no progress at all
    terminal = Terminal(monkeypatch)
    run(*args)  # a second close changes nothing and prints the same invoices (BIL-03)
    assert terminal.stdout.getvalue() == piped_out  # the progress never reaches stdout
    if as_json:
        assert terminal.stderr.getvalue() == ""  # --json stays quiet on a terminal too
    else:
        assert "buyers invoiced" in terminal.stderr.getvalue()


def manifest(buyers: int, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "region": "us-east-1",
        "sellers": [{"id": "acme", "name": "Acme", "tax_form": "W-9"}],
        "buyers": [{"account": f"{100000000000 + i}", "email": f"b{i}@buyer.example"} for i in range(buyers)],
        "products": [
            {
                "code": "vault",
                "seller": "acme",
                "kind": "ami",
                "title": "Vault",
                "short_description": "Secrets",
                "category": "security",
                "regions": ["us-east-1"],
                "refund_policy": "Full refund within 30 days",
                "state": "public",
                "pricing": {"hourly": {"m5.large": "0.10"}},
            }
        ],
        "subscriptions": [{"buyer": "100000000000", "product": "vault", "at": "2026-03-01T00:00:00Z"}],
    }
    if events is not None:
        document["events"] = events
    return document


def test_load_shows_entries_applied_on_a_terminal_and_prints_the_same_bytes_piped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "large.yaml"
    path.write_text(yaml.safe_dump(manifest(buyers=300)))
    outputs = []
    for name, on_terminal in (("piped", False), ("terminal", True)):
        monkeypatch.setenv("AGORA_DATABASE_URL", f"sqlite:///{tmp_path / name}.db")
        config.reset_settings()
        terminal = Terminal(monkeypatch) if on_terminal else None
        stdout, stderr = run("load", str(path))
        if terminal is None:
            assert stderr == ""
            outputs.append(stdout)
        else:
            outputs.append(terminal.stdout.getvalue())
            shown = terminal.stderr.getvalue()
            assert "entries applied" in shown and "303/303" in shown  # a seller, 300 buyers, a product, a subscription
    assert outputs[0] == outputs[1].replace(str(tmp_path / "terminal.db"), str(tmp_path / "piped.db"))


@pytest.mark.parametrize("as_json", [False, True])
def test_simulate_shows_months_simulated_on_a_terminal_and_prints_the_same_bytes_piped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    start = {"buyer": "100000000000", "product": "vault", "instance": "i-1", "instance_type": "m5.large"}
    events = [
        {"at": "2026-03-02T10:00:00Z", "instance_start": start},
        {"at": "2026-08-02T10:00:00Z", "instance_stop": {"instance": "i-1"}},
    ]
    path = tmp_path / "timeline.yaml"
    path.write_text(yaml.safe_dump(manifest(buyers=1, events=events)))
    args = ["simulate", str(path), *(["--json"] if as_json else [])]
    piped_out, piped_err = run(*args)
    assert piped_err == "" and "2026-08" in piped_out
    terminal = Terminal(monkeypatch)
    run(*args)
    assert terminal.stdout.getvalue() == piped_out  # the same file prints the same bytes
    if as_json:
        assert terminal.stderr.getvalue() == ""
    else:
        assert "months simulated" in terminal.stderr.getvalue() and "6/6" in terminal.stderr.getvalue()
