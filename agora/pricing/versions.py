"""Which price version governs a subscription at an instant (CHG-01/02): a pure function over versions.

Prices are never overwritten: each change is a new version with the instant its notice went out. Version 1
is the launch price. A later version governs new subscriptions from its notice on (CHG-01) and existing
ones from the first day of the month after notice + 90 days (CHG-02). Annual terms already bought keep
the price they were bought at (CHG-03); that is the purchase's own record, not this function's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agora.pricing.changes import price_change_applies_from


@dataclass(frozen=True)
class Version:
    number: int
    noticed_at: datetime
    pricing: dict[str, Any]


def applicable(versions: Sequence[Version], subscribed_at: datetime, at: datetime) -> Version:
    """The version whose prices apply to a subscription started at `subscribed_at`, at instant `at`."""
    if not versions:
        raise ValueError("a product on sale has at least its launch price version")
    ordered = sorted(versions, key=lambda v: v.number)
    current = ordered[0]
    for version in ordered[1:]:
        if version.noticed_at <= at and price_change_applies_from(subscribed_at, version.noticed_at) <= at:
            current = version
    return current
