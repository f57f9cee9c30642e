"""Fuzzing the native API from its own OpenAPI document (schemathesis, in process), once per role.

No request may get a 5xx, and every response must be what /openapi.json says: a documented status, its
content type, a body that validates against its schema. The marketplace is examples/demo.yaml, so ids,
codes and tokens are real and the generated requests reach the services, not only the parsers.

`make test` runs a few examples per operation and role (a minute or two); `make fuzz` runs
AGORA_FUZZ_EXAMPLES per operation (125: over 10,000 cases per role).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from starlette.applications import Starlette

from agora.app import create_app
from agora.db import open_database
from agora.manifest.loader import load_data
from agora.manifest.parse import parse_text

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"
EXAMPLES = int(os.environ.get("AGORA_FUZZ_EXAMPLES", "3"))
# The long run adds schemathesis's coverage phase (boundary values, every missing field, unexpected methods:
# thousands of explicit examples); the short one only generates.
PHASES = [Phase.explicit, Phase.generate] if EXAMPLES > 3 or os.environ.get("AGORA_FUZZ_COVERAGE") else [Phase.generate]

# Every role, and a second tenant of each kind that holds objects, with the demo's tokens.
ROLES = {
    "anonymous": None,
    "operator": "demo-ops-token",
    "seller": "demo-acme-token",
    "other_seller": "demo-northwind-token",
    "buyer": "demo-buyer-token",
    "other_buyer": "demo-globex-token",
}

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_app(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    """One demo marketplace for the whole module: what the fuzzer writes stays, as it would in a real
    deployment, and later cases meet it."""
    target = tmp_path_factory.mktemp("fuzz") / "agora.db"
    shutil.copyfile(_sqlite_template, target)
    db = open_database(f"sqlite:///{target}")
    with db.unit_of_work() as session:
        load_data(parse_text(DEMO.read_text(), DEMO.name), session)
    yield create_app(db)
    db.dispose()


# Cases sent per role and status class, counted over the module and printed at its end: the figure README
# gives for `make fuzz` (hypothesis stops early on an operation whose inputs it has exhausted, so the count
# is not simply examples × operations).
SENT: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    assert capture is not None
    with capture.global_and_fixture_disabled():
        print(f"\nfuzz cases, {EXAMPLES} examples an operation:")
        for role in ROLES:
            by_class = {status: n for (who, status), n in sorted(SENT.items()) if who == role}
            detail = ", ".join(f"{status}: {n:,}" for status, n in by_class.items())
            print(f"  {role}: {sum(by_class.values()):,} ({detail})")


# The document is read from an app without a database (building it opens none); each case is sent to the
# module's app. (A lazy `from_fixture` schema would be the natural fit, but it breaks on pytest 9's nodes.)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(open_database("sqlite://")))


def _fuzz(role: str) -> Any:
    """The test for one role (schemathesis makes one test item per schema, so roles are separate tests)."""
    token = ROLES[role]
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @schema.parametrize()
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=EXAMPLES <= 3,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=PHASES,
    )
    def test(case: Any, fuzzed_app: Starlette) -> None:
        # An exception in the app propagates from here with a curl command that sends the case again.
        response = case.call_and_validate(app=fuzzed_app, headers=headers, checks=CHECKS)
        SENT[role, f"{response.status_code // 100}xx"] += 1

    return test


test_fuzz_anonymous = _fuzz("anonymous")
test_fuzz_operator = _fuzz("operator")
test_fuzz_seller = _fuzz("seller")
test_fuzz_other_seller = _fuzz("other_seller")
test_fuzz_buyer = _fuzz("buyer")
test_fuzz_other_buyer = _fuzz("other_buyer")
