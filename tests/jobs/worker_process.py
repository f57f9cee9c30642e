"""A real worker process for the crash test: runs `test.slow_append` jobs with a short lease.

The handler writes an audit event (its visible effect) and then, on the first attempt only, waits for a long
time inside the open transaction, which is where the test kills the process.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from agora import audit, jobs
from agora.db import open_database


@jobs.handler("test.slow_append")
def slow_append(session: Session, payload: dict[str, Any]) -> None:
    audit.record(session, actor="test", action="test.effect", target_type="job", target_id=payload["tag"])
    started = Path(payload["started_file"])
    if not started.exists():
        started.write_text("running")
        time.sleep(600)


def main() -> None:
    url, lease = sys.argv[1], float(sys.argv[2])
    worker = jobs.Worker(open_database(url), lease=timedelta(seconds=lease), poll_interval=0.1)
    worker.run_forever(threading.Event())


if __name__ == "__main__":
    main()
