"""Running AWS's vendored reference scripts, unmodified, against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.compat.catalog.market import SELLER_KEY, Live

SRC = Path(__file__).parent / "reference" / "python" / "src"


def run_script(
    live: Live, relative: str, *args: str, key: tuple[str, str] = SELLER_KEY
) -> subprocess.CompletedProcess[str]:
    """The script as a seller would run it: endpoint and credentials from the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=live.url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID=key[0],
        AWS_SECRET_ACCESS_KEY=key[1],
        AWS_MAX_ATTEMPTS="1",
        PYTHONPATH=str(SRC),
    )
    script = SRC / "catalog_api" / relative
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=script.parent, capture_output=True, text=True, timeout=120
    )
