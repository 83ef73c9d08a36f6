"""Cache statistics: an immutable snapshot and the thread-safe counters behind it."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

__all__ = ["CacheStats"]

#: Whether this interpreter runs with the GIL (always true before CPython 3.13).
GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A point-in-time snapshot of a cache's counters.

    Attributes:
        hits: Lookups answered from the cache.
        misses: Lookups not answered (absent, expired or undecodable entries).
        updates: Successful writes.
        evictions: Entries removed to respect ``maxsize``.
        expirations: Entries removed because their TTL had passed.
        size: Live entries at the time of the snapshot.
        maxsize: The size bound, or ``None`` when unbounded.
    """

    hits: int
    misses: int
    updates: int
    evictions: int
    expirations: int
    size: int
    maxsize: int | None

    @property
    def lookups(self) -> int:
        """All lookups: ``hits + misses``."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """``hits / lookups``, or ``0.0`` before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


if TYPE_CHECKING:
    _CountBase = itertools.count[int]
else:
    _CountBase = itertools.count


class Counter(_CountBase):
    """A monotonic counter: ``next(counter)`` increments it, :attr:`value` reads it.

    ``next()`` on an ``itertools.count`` is a single C call, atomic on GIL builds (about
    20 ns; CPython's ``threading`` module numbers threads the same way), so hot paths
    count without a lock. On free-threaded builds the owning cache increments under its
    lock. Reads must be serialised by the owner's lock.
    """

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        self._reads = 0

    @property
    def value(self) -> int:
        """The number of increments so far. O(1)."""
        # Reading an itertools.count means advancing it; subtract our own reads.
        value: int = next(self) - self._reads
        self._reads += 1
        return value
