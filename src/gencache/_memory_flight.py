"""Single-flight glue and the async methods of ``InMemoryCache``.

With ``single_flight=True`` a miss that another caller is already paying for waits for that
caller's answer instead of calling the provider too; the flights are keyed by the entry's
digest (:func:`gencache._keys.digest`), computed on misses only. The async methods run
inline, as the cache's work is O(1) and never waits on I/O; only a single-flight miss awaits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.outputs import Generation

from gencache._control import Options, current_options
from gencache._flight import owner_of_this_call
from gencache._index import Key
from gencache._keys import check_key, digest
from gencache._memory_state import MemoryState
from gencache._protocol import Key as EntryKey

__all__ = ["MemoryFlight", "poll_nothing"]


class MemoryFlight(MemoryState):
    """The single-flight steps and the async twins of :class:`gencache.InMemoryCache`.

    Thread safety: as the cache's (any thread, any coroutine).
    """

    __slots__ = ()

    def _entry_key(self, key: Key, prompt: str, llm_string: str, scope: str | None) -> EntryKey:
        """The entry's identity for single-flight: a digest, computed on misses only."""
        canonical = key if isinstance(key, str) else key[1]
        return EntryKey(digest(canonical, llm_string, scope), prompt, llm_string, scope)

    def _shared(
        self, entry: EntryKey, value: list[Generation] | None, seconds: float | None
    ) -> list[Generation] | None:
        """An answer another caller paid for (single-flight): a hit; ``None``: a miss."""
        if value is None:
            self._count(self._misses)
            return None
        self._count(self._coalesced)
        self._count(self._hits)
        self._acct.shared(entry.digest, entry.llm_string, value, seconds)
        return value.copy()

    def _land(
        self, key: Key, prompt: str, llm_string: str, opts: Options, value: list[Generation]
    ) -> None:
        """Give waiters for this key the answer (stored or not): single-flight only."""
        if self._flight is not None:
            entry = self._entry_key(key, prompt, llm_string, opts.scope)
            self._flight.flights.land(entry.digest, value or None)

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
        entry = self._entry_key(key, prompt, llm_string, opts.scope)
        if (other := flight.waiting(entry.digest, owner)) is not None:
            answer = await other.await_(flight.timeout, flight.flights.lock)
            return self._shared(entry, answer, other.seconds)
        value = self._find(key, llm_string, opts, count_miss=False)
        if value is not None:
            return value
        shared, seconds, _ = await flight.amiss(entry, owner, _apoll_nothing)
        return self._shared(entry, shared, seconds)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`: runs inline, as the work is O(1) and never waits on I/O."""
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`: runs inline."""
        self.clear(**kwargs)


def poll_nothing(entry: EntryKey) -> list[Generation] | None:
    """Poll for another process's answer: there is none, memory has no other process."""
    return None


async def _apoll_nothing(entry: EntryKey) -> list[Generation] | None:
    return None
