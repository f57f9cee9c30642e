"""The one clock. Nothing in Agora calls `datetime.now()`: tests and `simulate` move this clock instead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = ensure_utc(instant)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now = self._now + delta


_current: Clock = SystemClock()


def now() -> datetime:
    return _current.now()


def get_clock() -> Clock:
    return _current


def set_clock(clock: Clock) -> None:
    global _current
    _current = clock


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    previous = _current
    set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: Agora only handles timezone-aware UTC instants")
    return value.astimezone(UTC)
