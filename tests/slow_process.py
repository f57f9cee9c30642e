"""The real `agora` command with a slow route and a slow job added, for the graceful shutdown tests:
`python -m tests.slow_process serve …` or `… worker …`.

`GET /test/slow?seconds=&started=FILE` writes FILE when it begins, then sleeps; the job `test.slow`
(payload `seconds`, `started`, `tag`) does the same, then records an audit event, its visible effect.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

import agora.app
from agora import audit, jobs
from agora.cli import main

_create_app = agora.app.create_app


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    app = _create_app(*args, **kwargs)

    @app.get("/test/slow")
    def slow(seconds: float, started: str) -> dict[str, float]:
        Path(started).write_text("in flight")
        time.sleep(seconds)
        return {"slept": seconds}

    return app


agora.app.create_app = create_app  # `agora serve` builds its app through this name


@jobs.handler("test.slow")
def slow_job(session: Session, payload: dict[str, Any]) -> None:
    Path(payload["started"]).write_text("running")
    time.sleep(payload["seconds"])
    audit.record(session, actor="test", action="test.slow_done", target_type="job", target_id=payload["tag"])


if __name__ == "__main__":
    sys.argv[0] = "agora"
    main()
