"""The deploy/ example stays true to the code: every command line of the systemd units and the Procfile parses
with the real `agora` command's own parser (so a renamed or removed option fails here), the env file sets
only settings that exist, the nginx note lets through what Agora accepts, and systemd finds nothing wrong
with the units where systemd-analyze is installed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from agora import cli
from agora.catalog.assets import RULES, AssetKind
from agora.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
AGORA = "/opt/agora/.venv/bin/agora"  # where the units expect the install (deploy/README.md)


def directives(unit: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(f"{key}=")]


def agora_command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `agora`) of every agora command the units and the Procfile run."""
    found = []
    for unit in UNITS:
        for command in directives(unit, "ExecStart"):
            argv = shlex.split(command.replace("%%", "%"))
            if argv[:2] == ["/bin/sh", "-c"]:
                argv = shlex.split(argv[2].removeprefix("exec "))
            assert argv[0] == AGORA, f"{unit.name}: runs {argv[0]}, not {AGORA}"
            found.append((unit.name, argv[1:]))
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, command = line.split(":", 1)
            expanded = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command)  # ${PORT:-8000}: the shell's default
            argv = shlex.split(expanded)
            assert argv[0] == "agora", f"Procfile {kind}: runs {argv[0]}"
            found.append((f"Procfile {kind}", argv[1:]))
    return found


def test_the_units_and_the_procfile_exist_and_run_servers_workers_and_backups() -> None:
    names = {unit.name for unit in UNITS}
    assert {"agora-serve.service", "agora-worker@.service", "agora-backup.service"} <= names
    assert (DEPLOY / "systemd" / "agora-backup.timer").exists()
    commands = {argv[0] for _, argv in agora_command_lines()}
    assert {"serve", "worker", "backup", "migrate"} <= commands
    serve = [argv for where, argv in agora_command_lines() if where == "agora-serve.service"]
    assert serve and "--no-worker" in serve[0]  # jobs run in the worker units


@pytest.mark.parametrize(("where", "argv"), agora_command_lines(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_line_parses_with_the_agora_command(where: str, argv: list[str]) -> None:
    group = typer.main.get_command(cli.app)
    command = group.commands.get(argv[0])  # type: ignore[attr-defined]
    assert command is not None, f"{where}: `agora {argv[0]}` does not exist"
    try:  # options and their values, as the real command parses them (typer's own click raises UsageError)
        command.make_context(argv[0], list(argv[1:]))
    except Exception as exc:
        pytest.fail(f"{where}: agora {shlex.join(argv)}: {exc}")


def test_serve_help_lists_the_options_the_unit_uses() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agora", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},  # rich would cut long option names to the terminal's width
    )
    assert result.returncode == 0, result.stderr
    [serve] = [argv for where, argv in agora_command_lines() if where == "agora-serve.service"]
    for option in (arg for arg in serve if arg.startswith("--")):
        assert option in result.stdout


def test_the_env_file_sets_only_settings_that_exist() -> None:
    env = DEPLOY / "systemd" / "agora.env"
    for unit in UNITS:
        assert directives(unit, "EnvironmentFile") == ["/etc/agora/agora.env"], unit.name
    known = {f"AGORA_{name.upper()}" for name in Settings.model_fields} | {"FORWARDED_ALLOW_IPS"}
    keys = [
        line.lstrip("#").split("=", 1)[0] for line in env.read_text().splitlines() if re.match(r"^#?[A-Z_]+=", line)
    ]
    assert keys and set(keys) <= known, set(keys) - known
    assert {"AGORA_DATABASE_URL", "AGORA_SECRET_KEY", "AGORA_LOG_FORMAT", "AGORA_METRICS_TOKEN"} <= set(keys)


def _megabytes(size: str) -> int:
    return int(size.removesuffix("m")) * 1024 * 1024


def test_the_nginx_note_passes_what_agora_needs() -> None:
    conf = (DEPLOY / "nginx" / "agora.conf").read_text()
    for needed in (
        "proxy_set_header Host $http_host;",  # SigV4 signs the Host header as the client sent it
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout",
        "location = /metrics",
    ):
        assert needed in conf
    sizes = [_megabytes(size) for size in re.findall(r"client_max_body_size (\d+m);", conf)]
    largest_document = max(rule.max_bytes for kind, rule in RULES.items() if kind is not AssetKind.VIDEO)
    assert sizes[0] >= largest_document  # the server block's
    assert max(sizes) >= RULES[AssetKind.VIDEO].max_bytes  # the upload location's


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_with_the_units(tmp_path: Path) -> None:
    installed = str(Path(sys.executable).parent / "agora")  # the units' binary, as installed here
    names = []
    for unit in [*UNITS, DEPLOY / "systemd" / "agora-backup.timer"]:
        name = unit.name.replace("@.", "@1.")
        (tmp_path / name).write_text(unit.read_text().replace(AGORA, installed))
        names.append(f"./{name}")
    result = subprocess.run(
        ["systemd-analyze", "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
