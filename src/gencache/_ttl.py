"""Time to live: validation, the clock, and a deadline queue with amortised purging.

TTL is orthogonal to the replacement policy: an entry's deadline is set when it is
written (``now + ttl``) and is not extended by hits. An entry is live while
``now < deadline``. The clock is injectable so that tests never sleep.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
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
    """Deadlines of live keys, kept in deadline order.

    With one ``ttl`` for the whole cache and a monotonic clock, write order is deadline
    order, so an ``OrderedDict`` with re-written keys moved to the back is a priority
    queue with O(1) push, O(1) removal and O(1) peek at the earliest deadline.

    Not thread-safe: the owning cache holds its lock around every call.
    """

    __slots__ = ("_deadlines", "_ttl")

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._deadlines: OrderedDict[K, float] = OrderedDict()

    def set(self, key: K, now: float) -> None:
        """Give ``key`` the deadline ``now + ttl``. O(1)."""
        self._deadlines[key] = now + self._ttl
        self._deadlines.move_to_end(key)

    def expired(self, key: K, now: float) -> bool:
        """Whether ``key`` has a deadline at or before ``now``. O(1)."""
        deadline = self._deadlines.get(key)
        return deadline is not None and now >= deadline

    def discard(self, key: K) -> None:
        """Forget ``key``. O(1)."""
        self._deadlines.pop(key, None)

    def clear(self) -> None:
        """Forget every key."""
        self._deadlines.clear()

    def pop_expired(self, now: float, limit: int | None = None) -> Iterator[K]:
        """Remove and yield keys whose deadline has passed, earliest first.

        Stops at the first live key or after ``limit`` keys. Each key is yielded once over
        its lifetime, so purging costs O(1) amortised per write.
        """
        deadlines = self._deadlines
        count = 0
        while deadlines and (limit is None or count < limit):
            key, deadline = next(iter(deadlines.items()))
            if now < deadline:
                return
            del deadlines[key]
            count += 1
            yield key
