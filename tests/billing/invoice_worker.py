"""A real worker process for the interrupted-close test: it runs invoice jobs only, and in the first one it
claims it writes the invoices, then waits inside the open transaction, holding the job, until killed.

`python -m tests.billing.invoice_worker DATABASE_URL STARTED_FILE`
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from agora import jobs
from agora.billing import service
from agora.db import open_database
from agora.tasks import register_all

INVOICE_JOB = "billing.invoice_buyers"


def main() -> None:
    url, started = sys.argv[1], Path(sys.argv[2])
    register_all()

    @jobs.handler(INVOICE_JOB)
    def invoice_then_hang(session: Session, payload: dict[str, Any]) -> None:
        service.invoice_buyers(session, payload)
        if not started.exists():
            session.flush()
            started.write_text(",".join(str(b) for b in payload["buyer_ids"]))
            time.sleep(600)  # killed here, holding the job with its invoices uncommitted

    worker = jobs.Worker(open_database(url), poll_interval=0.05, only=frozenset({INVOICE_JOB}))
    worker.run_forever(threading.Event())


if __name__ == "__main__":
    main()
