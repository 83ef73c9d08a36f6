"""``Expiries``: when recent entries expire, so that ``explain()`` can say "expired".

``explain()`` names an expiry ("expired 12 s ago") from the entry itself while the
backend still holds it. Usually it does not: the lookup that missed removed the expired
entry (``InMemoryCache``), or Redis removed it at its ``PX``. So each cache remembers the
expiry time of the last :data:`SIZE` entries it wrote with an expiry (``SQLiteCache``,
``RedisCache``) or removed as expired (``InMemoryCache``), and ``explain()`` reads it when
nothing usable is stored for the request. What another process wrote is known only from
the store (``SQLiteCache`` keeps an expired row until a write purges it).

Thread-safe: one lock. :meth:`Expiries.note`, :meth:`Expiries.forget` and
:meth:`Expiries.expired` are O(1); :meth:`Expiries.clear` with a scope is O(:data:`SIZE`).
Memory: at most :data:`SIZE` keys and floats (~0.5 MB with 64-character digests).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

__all__ = ["SIZE", "Expiries"]

SIZE: Final = 4_096  # expiries remembered per cache, the most recent first kept


class Expiries:
    """The expiry times of a cache's most recent entries that can expire."""

    __slots__ = ("_lock", "_times")

    def __init__(self) -> None:
        self._times: OrderedDict[Hashable, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, key: Hashable, expires_at: float, scope: str | None) -> None:
        """Remember that the entry under ``key`` (in ``scope``) expires at ``expires_at``."""
        with self._lock:
            times = self._times
            times[key] = (expires_at, scope)
            times.move_to_end(key)
            if len(times) > SIZE:
                times.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        """Forget ``key`` (its entry was rewritten without an expiry)."""
        if self._times:  # the usual answer, read without the lock
            with self._lock:
                self._times.pop(key, None)

    def expired(self, key: Hashable, now: float) -> float | None:
        """When the entry under ``key`` expired, if it has; else ``None``."""
        with self._lock:
            found = self._times.get(key)
        if found is None or found[0] > now:
            return None
        return found[0]

    def clear(self, scope: str | None = None) -> None:
        """Forget every expiry (``None``), or one scope's."""
        with self._lock:
            if scope is None:
                self._times.clear()
                return
            for key in [k for k, (_, s) in self._times.items() if s == scope]:
                del self._times[key]
