"""The seller-side metering agent: what a seller's software embeds to measure usage and report it hourly.

Standard library only, so any Python product can vendor it. It implements the metering guide's helpers:

- measurement (MTR-08): *provisioned* quantities (sampled — the last sample of the hour — or the hour's
  maximum), *concurrent* quantities (sampled, maximum, or the number of distinct ids seen in the hour) and
  *accumulated* quantities (the hour's sum);
- the schedule (MTR-08): a report every hour at the minute the software started, for the hour just past;
- the failure mode (MTR-07), chosen once: *fail open* keeps running, *partial* keeps running degraded,
  *fail closed* stops the software — but never before 2 hours of continuous failure. Unsent records are
  kept and sent with the next report, so a failure delays usage; it does not lose it (MTR-02).

`send` is any callable that delivers a list of records and raises on failure: a boto3
`batch_meter_usage`, a POST to Agora's `/api/v1/usage`, or a test double.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

MIN_FAIL_CLOSED = timedelta(hours=2)  # MTR-07
HOUR = timedelta(hours=1)
M = TypeVar("M", bound="_Measure")


class FailureMode(StrEnum):
    OPEN = "fail_open"
    PARTIAL = "partial"
    CLOSED = "fail_closed"


class State(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # reports are failing; fail-open and partial software keeps running
    STOPPED = "stopped"  # fail-closed software after `closed_after` of continuous failure


@dataclass(frozen=True)
class Policy:
    mode: FailureMode
    closed_after: timedelta = MIN_FAIL_CLOSED

    def __post_init__(self) -> None:
        if self.mode is FailureMode.CLOSED and self.closed_after < MIN_FAIL_CLOSED:
            raise ValueError("fail-closed software must keep running through 2 hours of continuous failure [MTR-07]")


@dataclass(frozen=True)
class Record:
    dimension: str
    quantity: int
    timestamp: datetime  # the UTC hour the usage belongs to (MTR-01)


class _Measure:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        self.value = 0
        self.seen = False
        self.ids: set[Hashable] = set()

    def quantity(self) -> int | None:
        """The hour's quantity; None when nothing was measured (nothing is sent for it)."""
        if self.mode == "distinct":
            return len(self.ids) if self.seen else None
        return self.value if self.seen else None


class Provisioned(_Measure):
    """Provisioned capacity (hosts, seats configured): the last sample of the hour, or its maximum."""

    def __init__(self, mode: str = "sample") -> None:
        if mode not in ("sample", "max"):
            raise ValueError("provisioned quantities are sampled or the hour's maximum [MTR-08]")
        super().__init__(mode)

    def record(self, value: int) -> None:
        self.value = value if self.mode == "sample" or not self.seen else max(self.value, value)
        self.seen = True


class Concurrent(_Measure):
    """Concurrent use (active users): sampled, the hour's maximum, or the distinct ids seen in the hour."""

    def __init__(self, mode: str = "max") -> None:
        if mode not in ("sample", "max", "distinct"):
            raise ValueError("concurrent quantities are sampled, the maximum or a distinct count [MTR-08]")
        super().__init__(mode)

    def record(self, value: int = 0, *, ids: set[Hashable] | None = None) -> None:
        if self.mode == "distinct":
            self.ids |= ids or set()
        else:
            self.value = value if self.mode == "sample" or not self.seen else max(self.value, value)
        self.seen = True


class Accumulated(_Measure):
    """Accumulated use (requests, GB processed): the sum over the hour."""

    def __init__(self) -> None:
        super().__init__("sum")

    def record(self, value: int) -> None:
        if value < 0:
            raise ValueError("usage is never negative [MTR-04]")
        self.value += value
        self.seen = True


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("times are timezone-aware UTC")
    return instant.astimezone(UTC)


@dataclass
class Agent:
    """Measures, reports hourly at the start minute, and tells the software whether it may keep running."""

    send: Callable[[list[Record]], None]
    started_at: datetime
    policy: Policy
    measures: dict[str, _Measure] = field(default_factory=dict)
    pending: list[Record] = field(default_factory=list)
    failing_since: datetime | None = None
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.started_at = _utc(self.started_at)
        self.window_start = self.started_at
        self.next_report = self.started_at + HOUR

    def provisioned(self, dimension: str, mode: str = "sample") -> Provisioned:
        return self._add(dimension, Provisioned(mode))

    def concurrent(self, dimension: str, mode: str = "max") -> Concurrent:
        return self._add(dimension, Concurrent(mode))

    def accumulated(self, dimension: str) -> Accumulated:
        return self._add(dimension, Accumulated())

    def _add(self, dimension: str, measure: M) -> M:
        if dimension in self.measures:
            raise ValueError(f"{dimension} is already measured")
        self.measures[dimension] = measure
        return measure

    def tick(self, now: datetime) -> State:
        """Call often (e.g. every minute): reports when a report is due, then answers the state."""
        now = _utc(now)
        due = now >= self.next_report
        while now >= self.next_report:
            self._close_window()
            self.window_start = self.next_report
            self.next_report += HOUR
        if due or (self.pending and self.failing_since is not None):  # after a failure, retry every tick
            self._flush(now)
        return self.state(now)

    def _close_window(self) -> None:
        hour = self.window_start.replace(minute=0, second=0, microsecond=0)
        for dimension, measure in sorted(self.measures.items()):
            quantity = measure.quantity()
            if quantity is not None:
                self.pending.append(Record(dimension, quantity, hour))
            measure.reset()

    def _flush(self, now: datetime) -> None:
        if not self.pending:
            return
        try:
            self.send(list(self.pending))
        except Exception as error:  # any delivery failure: keep the records, count the outage
            self.failing_since = self.failing_since or now
            self.last_error = f"{type(error).__name__}: {error}"
            return
        self.pending.clear()
        self.failing_since = None
        self.last_error = None

    def state(self, now: datetime) -> State:
        if self.failing_since is None:
            return State.OK
        if self.policy.mode is FailureMode.CLOSED and _utc(now) - self.failing_since >= self.policy.closed_after:
            return State.STOPPED
        return State.DEGRADED
