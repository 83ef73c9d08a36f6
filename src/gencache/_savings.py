"""What a persistent cache saved, kept in the store across processes.

Hits add to in-process totals (per model) and per-entry hit counts; those are written to
the store in batches, like LRU touches: with the first hit after 256 are pending or after
a second, at :meth:`SavingsBook.flush` (``stats()``, ``close()``), never more than one
write per batch. ``gencache stats TARGET`` reads the totals back: what the cache saved
for every process that used it. A failed flush is logged and dropped (savings are
statistics, never worth failing a call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from gencache._log import RateLimitedLog
from gencache.stats import Savings

__all__ = ["SavingsBook", "SavingsStore"]

_log = logging.getLogger(__name__)

# A batch is written once it holds this many hits, or after _DELAY seconds: one store
# write per second at most for any hit rate below ~16,000 a second. The pending batch
# holds one counter per model and per entry hit, so it stays small.
_MAX_PENDING, _DELAY = 16_384, 1.0


class SavingsStore(Protocol):
    """What a store implements to keep savings: two batched calls."""

    def add_savings(self, by_model: Mapping[str, Savings], hits: Mapping[str, int]) -> None:
        """Add per-model savings and per-entry (digest) hit counts."""

    def savings(self) -> dict[str, Savings]:
        """The totals per model, for every process that used the store."""


class SavingsBook:
    """Pending savings of one cache, flushed to its store in batches. Thread-safe."""

    def __init__(self, store: SavingsStore) -> None:
        self._store = store
        self._by_model: dict[str, Savings] = {}
        self._hits: dict[str, int] = {}
        self._pending = 0
        self._due = 0.0
        self._lock = threading.Lock()
        self._log = RateLimitedLog(_log)

    def add(self, digest: str, model: str, saved: Savings) -> None:
        """Note one hit of ``digest``; flush if a batch is due. O(1), one write per batch."""
        now = time.monotonic()
        with self._lock:
            if not self._pending:
                self._due = now + _DELAY
            self._by_model[model] = self._by_model.get(model, Savings()) + saved
            self._hits[digest] = self._hits.get(digest, 0) + 1
            self._pending += 1
            due = self._is_due(now)
        if due:
            self.flush()

    def merge(self, by_model: Mapping[str, Savings], hits: Mapping[str, int]) -> None:
        """Add a batch counted elsewhere (to be written at the next flush). O(len(batch))."""
        with self._lock:
            if not self._pending:
                self._due = time.monotonic() + _DELAY
            for model, saved in by_model.items():
                self._by_model[model] = self._by_model.get(model, Savings()) + saved
            for digest, calls in hits.items():
                self._hits[digest] = self._hits.get(digest, 0) + calls
                self._pending += calls

    def flush_if_due(self) -> None:
        """:meth:`flush` if the batch is full or its delay has passed. O(1) otherwise."""
        with self._lock:
            due = self._is_due(time.monotonic())
        if due:
            self.flush()

    def _is_due(self, now: float) -> bool:
        """Whether the pending batch is to be written now; the caller holds the lock."""
        return self._pending >= _MAX_PENDING or (self._pending > 0 and now >= self._due)

    def flush(self) -> None:
        """Write what is pending (a failure is logged, and the batch dropped)."""
        with self._lock:
            if not self._pending:
                return
            by_model, hits = self._by_model, self._hits
            self._by_model, self._hits, self._pending = {}, {}, 0
        try:
            self._store.add_savings(by_model, hits)
        except Exception as exc:
            self._log.warning("savings", "gencache: could not record savings: %s", exc)
