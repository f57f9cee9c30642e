"""A small per-process cache whose entries expire: for reads that every request repeats and that may be a
few seconds stale (access keys, product metadata). Never for anything money or entitlement depends on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of `key`, or `load()` when there is none younger than the TTL."""
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
