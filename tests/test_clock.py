from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agora import clock


def test_the_manual_clock_moves_only_when_told() -> None:
    moved = clock.ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    with clock.use_clock(moved):
        assert clock.now() == datetime(2026, 3, 1, tzinfo=UTC)
        moved.advance(timedelta(hours=5))
        assert clock.now() == datetime(2026, 3, 1, 5, tzinfo=UTC)
        moved.set(datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2))))
        assert clock.now() == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert clock.now() != moved.now(), "leaving the block restores the system clock"
    assert clock.now().tzinfo is not None


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        clock.ManualClock(datetime(2026, 3, 1))
