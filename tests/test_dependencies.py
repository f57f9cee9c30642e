"""Every dependency pyproject.toml declares is chosen: imported by Agora, its tests or its benchmarks, or
needed by name for a stated reason (a driver picked by URL, a tool `make test` runs)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Used without an `import` of their own, each for the reason given.
NOT_IMPORTED = {
    "jinja2": "renders the web UI through fastapi.templating.Jinja2Templates",
    "psycopg": "the PostgreSQL driver SQLAlchemy loads for postgresql+psycopg:// URLs",
    "python-multipart": "parses the multipart asset uploads FastAPI's Form/File parameters read",
    "httpx2": "the HTTP client starlette.testclient, behind FastAPI's TestClient, imports (httpx is deprecated there)",
    "ruff": "lint and format, run by `make test`",
    "mypy": "type checking, run by `make test`",
    "types-pyyaml": "type stubs mypy reads for PyYAML",
}


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [_name(r) for r in [*project["dependencies"], *extras]]


def _imported() -> set[str]:
    modules: set[str] = set()
    for folder in ("agora", "agora_agent", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8-sig"), str(path))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def test_every_declared_dependency_is_imported_or_needed_for_a_stated_reason() -> None:
    providers = packages_distributions()
    used = {_name(dist) for module in _imported() for dist in providers.get(module, [])}
    unused = [name for name in _declared() if name not in used and name not in NOT_IMPORTED]
    assert unused == [], f"declared but never imported: {unused}"


def test_each_dependency_is_declared_once() -> None:
    declared = _declared()
    assert sorted(name for name in set(declared) if declared.count(name) > 1) == []
