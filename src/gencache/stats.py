"""Cache statistics: an immutable snapshot and the thread-safe counters behind it."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

__all__ = ["CacheStats", "Savings"]

#: Whether this interpreter runs with the GIL (always true before CPython 3.13).
GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


@dataclass(frozen=True, slots=True)
class Savings:
    """What hits saved: provider calls, tokens, seconds, money.

    Attributes:
        calls: Provider calls not made.
        input_tokens: Prompt tokens not billed.
        output_tokens: Completion tokens not billed.
        seconds: Provider seconds not waited (for entries whose time was measured).
        money: In the price table's currency, or ``None`` when no price was known for
            any of the models.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    money: float | None = None

    def __add__(self, other: Savings) -> Savings:
        money = None
        if self.money is not None or other.money is not None:
            money = (self.money or 0.0) + (other.money or 0.0)
        return Savings(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.seconds + other.seconds,
            money,
        )


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
        bypassed: Lookups not made because ``gencache.control(read=False)`` was in force.
        skipped: Writes not made: ``control(write=False)``, an empty answer, or an
            answer the codec cannot store.
        refused: Writes the ``admit=`` hook refused.
        coalesced: Lookups answered by another caller's provider call (single-flight).
        saved: What this process's hits saved: calls, tokens, seconds, money.
        by_model: :attr:`saved` per model name (read-only).
    """

    hits: int
    misses: int
    updates: int
    evictions: int
    expirations: int
    size: int
    maxsize: int | None
    bypassed: int = 0
    skipped: int = 0
    refused: int = 0
    coalesced: int = 0
    saved: Savings = field(default_factory=Savings)
    by_model: Mapping[str, Savings] = field(default_factory=lambda: MappingProxyType({}))

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
