"""Time to live: validation, the clock, and a deadline queue with amortised purging.

TTL is orthogonal to the replacement policy: an entry's deadline is set when it is
written (``now + ttl``, the ttl being the cache's or one given for that write) and is not
extended by hits. An entry is live while ``now < deadline``. The clock is injectable so
that tests never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Deadlines", "Timer", "check_seconds", "check_timer", "check_ttl"]

Timer = Callable[[], float]
K = TypeVar("K", bound=Hashable)


def check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float number of seconds.

    Raises:
        TypeError: If ``value`` is not a real number (``bool`` and ``str`` are refused).
        ValueError: If ``value`` is not finite, is negative, or is zero and
            ``allow_zero`` is false.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{name} must be a number of seconds, not {type(value).__name__} ({value!r})"
        raise TypeError(msg)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "greater than 0"
        msg = f"{name} must be a finite number of seconds {bound}, not {value!r}"
        raise ValueError(msg)
    return float(value)


def check_ttl(ttl: Any) -> float | None:
    """Return ``ttl`` in seconds as a float, or ``None`` for no expiry.

    Raises:
        TypeError: If ``ttl`` is not a real number (``bool`` and ``str`` are refused).
        ValueError: If ``ttl`` is not finite and positive (``0``, negatives, NaN, inf).
    """
    return None if ttl is None else check_seconds("ttl", ttl)


def check_timer(timer: Any) -> Timer:
    """Return ``timer`` if it is callable (``time.monotonic`` is the usual choice).

    Raises:
        TypeError: If ``timer`` is not callable.
    """
    if not callable(timer):
        msg = f"timer must be a callable returning seconds, not {type(timer).__name__}"
        raise TypeError(msg)
    return timer  # type: ignore[no-any-return]


default_timer: Timer = time.monotonic


class Deadlines(Generic[K]):
    """Deadlines of live keys: the cache's own ``ttl`` in O(1), per-entry ttls in a heap.

    Most entries share the cache's ``ttl``. With one ttl and a monotonic clock, write
    order is deadline order, so an ``OrderedDict`` of write times (re-written keys moved
    to the back) is a priority queue with O(1) push, O(1) removal and O(1) peek at the
    earliest deadline. It keeps the write time itself, not ``now + ttl``: the cache passes
    the float it also keeps in the entry, so a deadline costs no new object.

    Entries written with a ttl of their own (``gencache.control(ttl=...)``) do not fit
    that order; they go to a heap of ``(deadline, seq, key)`` with O(log n) push and
    lazy removal: a heap item is current only while ``key``'s deadline is still the
    item's. Stale items are dropped when they reach the top, and the heap is rebuilt when
    they outnumber the current ones, so it stays O(live overridden keys) in size.

    Not thread-safe: the owning cache holds its lock around every call.
    """

    __slots__ = ("_heap", "_seq", "_ttl", "_until", "_written")

    def __init__(self, ttl: float | None) -> None:
        self._ttl = ttl
        self._written: OrderedDict[K, float] = OrderedDict()  # keys under the cache's ttl
        self._until: dict[K, float] = {}  # deadlines of keys with a ttl of their own
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    @property
    def ttl(self) -> float | None:
        """The cache's own ttl, or ``None``."""
        return self._ttl

    def set(self, key: K, now: float, ttl: float | None = None) -> None:
        """Give ``key`` the deadline ``now + ttl``, or ``now`` plus the cache's ttl.

        With neither ttl, ``key`` never expires. O(1) for the cache's ttl, O(log n) for
        a ttl of its own.
        """
        if self._until:
            self._until.pop(key, None)
        if ttl is None:
            if self._ttl is not None:
                written = self._written
                written[key] = now
                written.move_to_end(key)
            return
        if self._written:
            self._written.pop(key, None)
        deadline = now + ttl
        self._until[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if len(self._heap) > 2 * len(self._until) + 64:
            self._heap = [(d, next(self._seq), k) for k, d in self._until.items()]
            heapq.heapify(self._heap)

    def deadline(self, key: K) -> float | None:
        """The deadline of ``key``, or ``None`` if it has none. O(1)."""
        if self._until:
            deadline = self._until.get(key)
            if deadline is not None:
                return deadline
        written = self._written.get(key)
        return None if written is None or self._ttl is None else written + self._ttl

    def expired(self, key: K, now: float) -> bool:
        """Whether ``key`` has a deadline at or before ``now``. O(1)."""
        # deadline() written out: this is on every TTL hit.
        if self._until:
            deadline = self._until.get(key)
            if deadline is not None:
                return now >= deadline
        written = self._written.get(key)
        return written is not None and now >= written + self._ttl  # type: ignore[operator]

    def discard(self, key: K) -> None:
        """Forget ``key``. O(1)."""
        self._written.pop(key, None)
        if self._until:
            self._until.pop(key, None)

    def clear(self) -> None:
        """Forget every key."""
        self._written.clear()
        self._until.clear()
        self._heap.clear()

    def __len__(self) -> int:
        """The number of keys with a deadline."""
        return len(self._written) + len(self._until)

    def pop_expired(self, now: float, limit: int | None = None) -> list[tuple[K, float]]:
        """Remove and return ``(key, deadline)`` for the keys whose deadline has passed.

        Stops when no deadline has passed or after ``limit`` keys. Each key is returned
        once over its lifetime, so purging costs O(1) amortised per write (O(log n) for
        keys with a ttl of their own). A list, not a generator: the usual answer is
        empty, and a list is the cheaper way to say so.
        """
        expired: list[tuple[K, float]] = []
        written, ttl = self._written, self._ttl
        if written and ttl is not None:
            for key, at in written.items():
                if now < at + ttl or len(expired) == limit:
                    break
                expired.append((key, at + ttl))
            for key, _ in expired:
                del written[key]
        heap = self._heap
        if heap and heap[0][0] <= now:
            until = self._until
            while heap and heap[0][0] <= now and len(expired) != limit:
                deadline, _, key = heapq.heappop(heap)
                if until.get(key) == deadline:  # else stale: re-set or discarded since
                    del until[key]
                    expired.append((key, deadline))
        return expired
