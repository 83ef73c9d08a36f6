"""Single-flight glue and the async methods of ``InMemoryCache``.

With ``single_flight=True`` a miss that another caller is already paying for waits for that
caller's answer instead of calling the provider too; the flights are keyed by the entry's
index key and llm_string (exact, and cheaper than a digest: no other process shares them).
The async methods run inline, as the cache's work is O(1) and never waits on I/O; only a
single-flight miss awaits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.outputs import Generation

from gencache._control import Options, current_options
from gencache._index import Key
from gencache._keys import check_key
from gencache._memory_state import MemoryState
from gencache._runs import owner_of_this_call

__all__ = ["MemoryFlight"]


class MemoryFlight(MemoryState):
    """The single-flight steps and the async twins of :class:`gencache.InMemoryCache`.

    Thread safety: as the cache's (any thread, any coroutine).
    """

    __slots__ = ()

    def _shared(
        self, llm_string: str, value: list[Generation] | None, seconds: float | None
    ) -> list[Generation] | None:
        """An answer another caller paid for (single-flight): a hit; ``None``: a miss."""
        if value is None:
            self._count(self._misses)
            return None
        self._count(self._coalesced)
        self._count(self._hits)
        # No digest: it names an entry in a store's savings book, and memory keeps none.
        self._acct.shared("", llm_string, value, seconds)
        return value.copy()

    def _land(
        self, key: Key, prompt: str, llm_string: str, opts: Options, value: list[Generation]
    ) -> None:
        """Give waiters for this key the answer (stored or not): single-flight only."""
        if self._flight is not None:
            self._flight.flights.land((key, llm_string), value or None)

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`: runs inline, as the work is O(1) and never waits on I/O.

        With single-flight, a miss that waits for another caller's answer awaits it: the
        event loop is never blocked.
        """
        flight = self._flight
        opts = current_options()
        if flight is None or not opts.write or not opts.read:
            return self.lookup(prompt, llm_string)
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        key = self._key(prompt, opts.scope)
        owner = owner_of_this_call()
        flight_key = (key, llm_string)  # as in lookup()
        if (other := flight.waiting(flight_key, owner)) is not None:
            answer = await other.await_(flight.timeout, flight.flights.lock)
            return self._shared(llm_string, answer, other.seconds)
        value = self._find(key, llm_string, opts, count_miss=False)
        if value is not None:
            return value
        shared, seconds = await flight.alocal_miss(flight_key, owner)
        return self._shared(llm_string, shared, seconds)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`: runs inline, as the work is O(1) and never waits on I/O."""
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`: runs inline."""
        self.clear(**kwargs)
