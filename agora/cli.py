"""`agora …`: the command line over the same services as the API."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from agora.identities.cli import users_app
from agora.manifest.parse import ManifestError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from agora.db import Database

# Heavy modules (SQLAlchemy, Alembic, FastAPI) are imported inside the commands that use them, so
# `agora --help` and short commands start quickly.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Agora: a self-hostable software marketplace.")
keys_app = typer.Typer(no_args_is_help=True, help="API tokens and SDK key pairs.")
app.add_typer(keys_app, name="keys")
mail_app = typer.Typer(no_args_is_help=True, help="The notifications outbox.")
app.add_typer(mail_app, name="mail")
app.add_typer(users_app, name="users")
usage_app = typer.Typer(no_args_is_help=True, help="Usage records: archiving closed months.")
app.add_typer(usage_app, name="usage")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Bar:
    """A Rich progress bar on stderr, started at its first report, so a command that fails before doing
    anything shows none."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.what, total=total or None)
        assert self.task is not None
        self.progress.update(self.task, completed=done, total=total or None)  # none known yet: 0/?


@contextmanager
def progress_bar(what: str, *, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """Progress of a long command, `what` counted as `done/total`, on stderr — only when both stdout and
    stderr are a terminal and the output is not --json; piped, stdout carries exactly the same bytes."""
    if quiet or not (out.is_terminal and err.is_terminal):
        yield None
        return
    bar = _Bar(what)
    try:
        yield bar
    finally:
        if bar.progress is not None:
            bar.progress.stop()


def fail(lines: list[str], code: int = 2) -> NoReturn:
    for line in lines:
        err.print(line, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _database() -> Database:
    from agora import migrate as migrations
    from agora.db import open_database

    db = open_database()
    migrations.upgrade(db)
    return db


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from agora import migrate as migrations

    db = _database()
    out.print(f"database at revision {migrations.current_revision(db)}")


@app.command()
def load(
    file: Annotated[Path, typer.Argument(help="manifest, YAML or JSON")],
    if_empty: Annotated[bool, typer.Option("--if-empty", help="only load into a database with no sellers")] = False,
    print_credentials: Annotated[
        bool, typer.Option("--print-credentials", help="print the tokens and keys the manifest lists")
    ] = False,
) -> None:
    """Apply a marketplace manifest. Idempotent; a bad file changes nothing and exits with status 2."""
    from sqlalchemy import func, select

    from agora.manifest.loader import load_data
    from agora.manifest.parse import read_file
    from agora.models import Seller

    try:
        data = read_file(file)
    except ManifestError as exc:
        fail([str(p) for p in exc.problems])
    db = _database()
    with db.unit_of_work() as session:
        if if_empty and session.scalar(select(func.count()).select_from(Seller)):
            out.print(f"{file}: the database already has sellers; not loaded (--if-empty)")
            report = None
        else:
            try:
                with progress_bar("entries applied", quiet=False) as progress:
                    report = load_data(data, session, progress=progress)
            except ManifestError as exc:
                fail([str(p) for p in exc.problems])
    if report is not None:
        if report.changed:
            out.print(f"loaded {file}: {report.summary()}")
        else:
            out.print(f"{file} is already loaded: nothing changed")
    if print_credentials:
        from agora.manifest.loader import parse_manifest

        _print_credentials(parse_manifest(data))


def _print_credentials(manifest: object) -> None:
    from agora.manifest.schema import Manifest

    assert isinstance(manifest, Manifest)
    out.print("Demo credentials (Authorization: Bearer <token>):")
    for kind, items in (("operator", manifest.operators), ("seller", manifest.sellers)):
        for item in items:
            for token in item.api_tokens:
                out.print(f"  {kind:<8} {item.id:<14} token {token}")
    for buyer in manifest.buyers:
        for token in buyer.api_tokens:
            out.print(f"  buyer    {buyer.account:<14} token {token}")
    for kind, owners in (("seller", manifest.sellers), ("buyer", manifest.buyers)):
        for owner in owners:
            for key in owner.access_keys:
                out.print(f"  {kind:<8} SDK key {key.id} / {key.secret}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="run jobs in separate `agora worker`s")] = False,
    workers: Annotated[int, typer.Option(min=1, help="server processes sharing the port")] = 1,
    access_log: Annotated[bool, typer.Option(help="log every request")] = True,
    graceful_timeout: Annotated[
        int, typer.Option(help="on SIGTERM, seconds in-flight requests are given to finish")
    ] = 30,
) -> None:
    """Serve the API, the SDK-compatible endpoints and the web UI on one port."""
    import uvicorn

    from agora import observability

    _database().dispose()  # migrate once, before any server process starts
    out.print(f"Agora is serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    os.environ["AGORA_RUN_WORKER"] = "0" if no_worker else "1"
    uvicorn.run(
        "agora.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=graceful_timeout,
        **observability.server_options(port=port, workers=workers, access_log=access_log),
        # httptools with a deadline and a size bound on request headers (uvicorn has neither); bodies are
        # bounded in size and read time by agora.limits, idle keep-alive connections by uvicorn (5 s).
        http="agora.http_protocol:BoundedHttpToolsProtocol",
        timeout_keep_alive=5,
    )


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="manifest with an `events:` timeline, YAML or JSON")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    until: Annotated[str | None, typer.Option(help="bill through this month (YYYY-MM)")] = None,
) -> None:
    """Run a manifest's events on a throw-away marketplace under a simulated clock and print the invoices,
    the messages sent and the events refused. The same file always prints the same bytes."""
    import json
    import re

    from agora.billing import simulate as simulation
    from agora.manifest.parse import read_file

    if until is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", until):
        fail([f"--until: {until!r} is not a month like 2026-03"])
    try:
        with progress_bar("months simulated", quiet=as_json) as progress:
            result = simulation.run(read_file(file), until=until, progress=progress)
    except ManifestError as exc:
        fail([str(p) for p in exc.problems])
    if as_json:
        out.print(json.dumps(result, indent=2, ensure_ascii=False), markup=False)
        return
    for invoice in result["invoices"]:
        out.print(f"{invoice['buyer']}  {invoice['period']}  {invoice['kind']:<8} {invoice['total']:>12} USD")
        for line in invoice["lines"]:
            out.print(
                f"    {line['product']:<24} {line['charge']:<18} {line['amount']:>10}  {line['explain']}", markup=False
            )
    for message in result["notifications"]:
        out.print(f"{message['at']}  mail {message['kind']:<16} to {message['to']}: {message['subject']}", markup=False)
    for refusal in result["refused"]:
        out.print(f"{refusal['at']}  refused {refusal['event']}: {refusal['error']}", markup=False)


@app.command()
def bill(
    period: Annotated[str, typer.Option(help="the month to close, YYYY-MM")],
    as_json: Annotated[bool, typer.Option("--json", help="print the invoices as JSON")] = False,
) -> None:
    """Close a month's billing for every buyer and print the invoices it closed; running it again changes
    nothing (BIL-03)."""
    import json
    import re

    from agora import clock
    from agora.billing import runs
    from agora.tasks import register_all

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        fail([f"--period: {period!r} is not a month like 2026-03"])
    register_all()
    db = _database()
    try:
        with progress_bar("buyers invoiced", quiet=as_json) as progress:
            invoices = runs.close(db, period, progress)
    except runs.PeriodOpen as exc:
        fail([f"--period: {exc} (now {clock.now():%Y-%m-%d %H:%M} UTC)"])
    done, total = runs.invoiced(db, period)
    if done < total:
        err.print(
            f"warning: {done} of {total} buyers of {period} invoiced; another worker holds the rest and has not"
            f" moved for {runs.STALL_SECONDS:.0f} s. Run `agora bill --period {period}` again to finish the"
            " month: a dead worker's jobs are taken back then, and nothing is invoiced twice.",
            markup=False,
        )
    if as_json:
        from agora.billing.service import BILL_KEYS, design_shape

        shaped = [design_shape(invoice, BILL_KEYS) for invoice in invoices]
        out.print(json.dumps({"invoices": shaped}, indent=2), markup=False)
        return
    for invoice in invoices:
        out.print(
            f"{invoice['buyer']}  {invoice['period']}  {invoice['kind']:<8} {invoice['total']:>12} USD"
            f"  ({len(invoice['lines'])} lines)"
        )
    out.print(f"{len(invoices)} invoice(s) for {period}")


@app.command()
def worker(
    lease_seconds: Annotated[
        float, typer.Option(help="how long a claimed job is held before others may retake it")
    ] = 300.0,
    poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.5,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="exit once no job is due")] = False,
) -> None:
    """Run durable jobs until stopped: SIGTERM/SIGINT stop claiming and let the current job finish; a second
    one abandons it (its lease lapses to another worker)."""
    from agora import observability
    from agora.jobs import Worker
    from agora.tasks import register_all

    observability.configure_logging()
    register_all()
    db = _database()
    from agora.billing.service import start_day_sums

    with db.unit_of_work() as session:
        start_day_sums(session)  # each day's usage summed as it ends, for the month's close
        if db.dialect == "postgresql":  # usage_records' monthly partitions, created ahead daily from now on
            from agora.metering import partitions

            partitions.start(session)
    runner = Worker(db, lease=timedelta(seconds=lease_seconds), poll_interval=poll)
    if until_idle:
        ran = runner.run_until_idle()
        out.print(f"ran {ran} job(s); none due")
        return
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)  # rolls the current job's transaction back
        logging.getLogger("agora.jobs").info("stopping: no new job is claimed; the current one finishes")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    runner.run_forever(stop)


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="where to write the backup (never overwritten)")],
    pg_dump: Annotated[str | None, typer.Option(help="the pg_dump to run (PostgreSQL; default: on PATH)")] = None,
) -> None:
    """Back the database up while Agora runs: SQLite's online backup API, or pg_dump's custom format on
    PostgreSQL. Restoring: deploy/README.md."""
    from agora import backup as backups
    from agora.config import get_settings

    try:
        out.print(backups.backup(get_settings().database_url, file, pg_dump=pg_dump), markup=False)
    except backups.BackupError as exc:
        fail([str(exc)])


@keys_app.command("create")
def keys_create(
    seller: Annotated[str | None, typer.Option(help="seller handle")] = None,
    buyer: Annotated[str | None, typer.Option(help="buyer account (12 digits)")] = None,
    operator: Annotated[str | None, typer.Option(help="operator handle (created if new)")] = None,
) -> None:
    """Create an API token and an SDK key pair, printed once."""
    from sqlalchemy import select

    from agora import audit
    from agora.errors import AgoraError
    from agora.identities import service
    from agora.manifest.schema import HANDLE_PATTERN
    from agora.models import Operator, Role

    chosen = [(r, v) for r, v in ((Role.SELLER, seller), (Role.BUYER, buyer), (Role.OPERATOR, operator)) if v]
    if len(chosen) != 1:
        fail(["give exactly one of --seller, --buyer, --operator"])
    role, handle = chosen[0]
    db = _database()
    try:
        with db.unit_of_work() as session:
            if role is Role.OPERATOR and session.scalar(select(Operator).where(Operator.handle == handle)) is None:
                import re

                if not re.match(HANDLE_PATTERN, handle):
                    fail([f"--operator: {handle!r} does not match {HANDLE_PATTERN}"])
                session.add(Operator(handle=handle, name=handle))
                session.flush()
                audit.record(session, actor="cli", action="operator.create", target_type="operator", target_id=handle)
            subject = service.find_subject(session, role, handle)
            created = service.create_credentials(session, role, subject.id, actor="cli")
    except AgoraError as exc:
        fail([f"--{role.value}: {exc.detail}"])
    out.print(f"{role.value} {handle}")
    out.print(f"  API token:      {created.token}")
    out.print(f"  access key id:  {created.access_key_id}")
    out.print(f"  secret key:     {created.secret}")
    out.print("Store these now: Agora keeps only a hash of the token and cannot show them again.")


@mail_app.command("list")
def mail_list(
    to: Annotated[str | None, typer.Option(help="only messages to this address")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. trial_welcome")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    body: Annotated[bool, typer.Option("--body", help="print each message's text too")] = False,
) -> None:
    """Messages the marketplace sent (or will send), newest first."""
    from sqlalchemy import select

    from agora.models import Notification

    db = _database()
    with db.reader() as session:
        query = select(Notification).order_by(Notification.id.desc()).limit(limit)
        if to:
            query = query.where(Notification.to == to)
        if kind:
            query = query.where(Notification.kind == kind)
        messages = list(session.scalars(query))
    if not messages:
        out.print("no messages")
    for message in messages:
        out.print(
            f"{message.created_at:%Y-%m-%d %H:%M} {message.state:<6} {message.kind:<18} {message.to}: {message.subject}"
        )
        if body:
            out.print("    " + message.body.replace("\n", "\n    "))


@usage_app.command("archive")
def usage_archive(
    before: Annotated[str, typer.Option(help="archive every month strictly before this one, YYYY-MM")],
    to: Annotated[Path | None, typer.Option(help="directory of the archive files (default: VAR_DIR/archive)")] = None,
) -> None:
    """Write each closed, invoiced month before --before to usage-YYYY-MM.jsonl.gz (with a .sha256 beside
    it), then drop its usage from the database (PostgreSQL: its monthly partition). Refuses, changing
    nothing, if any of those months is not closed and invoiced."""
    import re

    from agora.config import var_dir
    from agora.metering import archive

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", before):
        fail([f"--before: {before!r} is not a month like 2026-03"])
    db = _database()
    try:
        done = archive.archive(db, before, to if to is not None else var_dir() / "archive")
    except archive.ArchiveRefused as exc:
        fail([f"--before: {exc}"])
    for month in done:
        where = f"{month.path}  sha256 {month.sha256}" if month.path else "(an empty partition, nothing to write)"
        out.print(f"{month.period}  {month.records:>12,} records  {where}", markup=False)
    out.print(f"{len(done)} month(s) archived before {before}")


schema_app = typer.Typer(no_args_is_help=True, help="JSON Schemas of Agora's input files.")
app.add_typer(schema_app, name="schema")


@schema_app.command("manifest")
def schema_manifest() -> None:
    """Print the JSON Schema of a marketplace manifest, for editors to validate manifests as they are typed."""
    import json

    from agora.manifest.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
