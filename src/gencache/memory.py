"""``InMemoryCache``: LangChain's in-memory cache, made thread-safe, O(1) and observable."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence, Sized
from typing import Any

from langchain_core.outputs import Generation

from gencache._base import _GENERATION_TYPES, GenCache, check_generations
from gencache._index import GENERATIONS, LLM_STRING, PROMPT, Cells, Slot, find, insert, remove
from gencache._keys import check_key
from gencache._policies import Policy, check_maxsize
from gencache._ttl import Deadlines, Timer, check_timer, check_ttl, default_timer
from gencache.stats import GIL_ENABLED, CacheStats, Counter

__all__ = ["InMemoryCache"]

# Distinct llm_strings are few (one per model configuration); keep at most this many
# canonical copies so that entries share them instead of each holding its own.
_MAX_SHARED_LLM_STRINGS = 256
# Expired entries removed per write, so that no single call pays for a mass expiry.
_PURGE_PER_WRITE = 16


class InMemoryCache(GenCache):
    """A drop-in for ``langchain_core.caches.InMemoryCache``, safe under threads.

    With the defaults it behaves like LangChain's class: unbounded, or bounded by
    ``maxsize`` with the oldest entry removed first. It adds an LRU policy, a TTL and
    statistics, and fixes the original's defects: re-updating a key in a full cache evicts
    nothing, concurrent threads never raise, and eviction is O(1) whatever ``maxsize``.

    Thread safety: every method may be called from any thread and from coroutines. Writes
    hold a lock for O(1) work; hits under the default FIFO policy without TTL take no lock
    on GIL builds (one atomic dict read and one atomic counter increment). LRU and TTL
    lookups, and every call on free-threaded builds, take the lock. Not process-safe:
    each process has its own cache.

    A hit returns a new ``list`` holding the cached ``Generation`` objects themselves:
    changing the list never changes the cache, and the objects are shared, not copied,
    because copying them would make every hit cost microseconds instead of nanoseconds.
    Treat them as read-only (LangChain's chat path only replaces a cached message with
    a zero-cost copy, which is idempotent).

    Costs: ``lookup`` and ``update`` are O(1) plus hashing the prompt (the llm_string is
    compared, not hashed); ``clear`` is O(n); ``len()`` and :meth:`stats` are O(1) plus
    the purge of expired entries. Entries with equal llm_strings share one copy.

    Args:
        maxsize: The maximum number of entries, or ``None`` for no bound.
        ttl: Seconds an entry stays fresh after it is written, or ``None`` for no expiry.
        policy: ``"fifo"`` (default, as LangChain) or ``"lru"``.
        timer: The clock used for TTL, in seconds (``time.monotonic`` by default).

    Raises:
        TypeError: If an argument has the wrong type (``maxsize=1.5``, ``ttl="10"``).
        ValueError: If ``maxsize <= 0``, ``ttl`` is not finite and positive, or
            ``policy`` is unknown.
    """

    def __init__(
        self,
        *,
        maxsize: int | None = None,
        ttl: float | None = None,
        policy: str | Policy = "fifo",
        timer: Timer = default_timer,
    ) -> None:
        self._maxsize = check_maxsize(maxsize)
        self._ttl = check_ttl(ttl)
        self._policy = Policy.parse(policy)
        self._timer = check_timer(timer)
        self._lru = self._policy.refresh_on_use
        self._lock = threading.Lock()
        self._cells: Cells = {}
        self._get = self._cells.get
        self._deadlines: Deadlines[int] | None = None
        # Oldest first. A plain FIFO cache only ever removes its oldest slot, so a deque
        # suffices; LRU and TTL remove from the middle and need an OrderedDict, keyed by
        # id(slot) (unique while the queue holds the slot).
        self._fifo: deque[Slot] | None = None
        self._queue: OrderedDict[int, Slot] | None = None
        # ``_order`` is whichever of the two is in use: every live slot is in it exactly
        # once, so its length is the cache's size.
        self._order: Sized
        if self._ttl is None and not self._lru:
            self._fifo = self._order = deque()
        else:
            self._queue = self._order = OrderedDict()
        if self._ttl is not None:
            self._deadlines = Deadlines(self._ttl)
        self._shared_llm_strings: dict[str, str] = {}
        self._last_llm_string = ""
        # Only a FIFO hit without TTL can be served without the lock.
        self._lock_free_hits = GIL_ENABLED and self._fifo is not None
        self._hits = Counter()
        self._misses = Counter()
        self._updates = 0
        self._evictions = 0
        self._expirations = 0

    @property
    def maxsize(self) -> int | None:
        """The maximum number of entries, or ``None``."""
        return self._maxsize

    @property
    def ttl(self) -> float | None:
        """Seconds an entry stays fresh, or ``None``."""
        return self._ttl

    @property
    def policy(self) -> Policy:
        """The replacement policy."""
        return self._policy

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return a new list of the generations cached for the pair, or ``None``.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        try:
            slot = self._get(prompt)
        except TypeError:  # unhashable prompt
            check_key(prompt, llm_string)
            raise
        # slot = [prompt, llm_string, *generations]: the slice is the hit's new list.
        if type(slot) is list and slot[1] == llm_string and self._lock_free_hits:
            next(self._hits)
            return slot[2:]
        return self._lookup_slow(prompt, llm_string, slot is None)

    def _lookup_slow(self, prompt: str, llm_string: str, absent: bool) -> list[Generation] | None:
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        if absent and GIL_ENABLED:  # nothing to expire or refresh: no lock needed
            next(self._misses)
            return None
        if not self._lock.acquire(False):
            self._wait_for_lock()
        try:
            slot = find(self._cells, prompt, llm_string)
            deadlines = self._deadlines
            if (
                slot is not None
                and deadlines is not None
                and deadlines.expired(id(slot), self._timer())
            ):
                self._remove(slot)
                self._expirations += 1
                slot = None
            if slot is None:
                next(self._misses)
                return None
            if self._lru:
                self._queue.move_to_end(id(slot))  # type: ignore[union-attr]
            next(self._hits)
            value: list[Generation] = slot[GENERATIONS:]
        finally:
            self._lock.release()
        return value

    # One frame on purpose: each extra call on this hot path costs ~40 ns.
    def update(  # noqa: PLR0912, PLR0915
        self, prompt: str, llm_string: str, return_val: Sequence[Generation]
    ) -> None:
        """Cache ``return_val`` for the pair, replacing any previous value.

        A key already present is replaced in place and evicts nothing. A new key in a full
        cache first drops an expired entry if there is one, else evicts by policy.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``, or
                ``return_val`` is not a sequence of ``Generation``.
        """
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        value: Sequence[Generation] = return_val
        if type(return_val) is list:  # the common case, checked inline for speed
            for item in return_val:
                if type(item) not in _GENERATION_TYPES:
                    value = check_generations(return_val)
                    break
        else:
            value = check_generations(return_val)
        # acquire/release: ~100 ns cheaper than ``with`` on CPython 3.11.
        if not self._lock.acquire(False):
            self._wait_for_lock()
        try:
            deadlines = self._deadlines
            now = 0.0
            if deadlines is not None:
                now = self._timer()
                self._purge(now, _PURGE_PER_WRITE)  # before the find: it may drop our slot
            cells = self._cells
            cell = cells.get(prompt)
            if cell is None:
                slot = None
            elif type(cell) is list and cell[LLM_STRING] == llm_string:
                slot = cell
            else:
                slot = find(cells, prompt, llm_string)
            if slot is not None and deadlines is not None and deadlines.expired(id(slot), now):
                self._remove(slot)  # an expired entry is never "replaced"
                self._expirations += 1
                slot = None
            if slot is not None:
                slot[GENERATIONS:] = value
                if self._lru:
                    self._queue.move_to_end(id(slot))  # type: ignore[union-attr]
            else:
                if (
                    self._maxsize is not None
                    and len(self._order) >= self._maxsize
                    # Prefer dropping an expired entry to evicting a live one.
                    and not (deadlines is not None and self._purge(now, 1))
                ):
                    # Plain FIFO evicts inline (a call costs ~50 ns on this path).
                    fifo = self._fifo
                    if fifo is not None and cells.get(fifo[0][PROMPT]) is fifo[0]:
                        del cells[fifo.popleft()[PROMPT]]
                        self._evictions += 1
                    else:
                        self._evict()
                shared = self._last_llm_string
                if llm_string != shared:
                    shared = self._share(llm_string)
                slot = [prompt, shared, *value]
                # Removals above cannot add a cell, so "no cell" is still true; any other
                # case goes through insert(), which reads the cell afresh.
                if cell is None:
                    cells[prompt] = slot
                else:
                    insert(cells, slot)
                if self._fifo is not None:
                    self._fifo.append(slot)
                else:
                    self._queue[id(slot)] = slot  # type: ignore[index]
            if deadlines is not None:
                deadlines.set(id(slot), now)
            self._updates += 1
        finally:
            self._lock.release()

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry. Keyword arguments are accepted and ignored, as in LangChain.

        Statistics are lifetime counters and are not reset.
        """
        with self._lock:
            self._cells.clear()
            if self._fifo is not None:
                self._fifo.clear()
            if self._queue is not None:
                self._queue.clear()
            if self._deadlines is not None:
                self._deadlines.clear()
            self._shared_llm_strings.clear()

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`: runs inline, as the work is O(1) and never waits on I/O."""
        return self.lookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`: runs inline, as the work is O(1) and never waits on I/O."""
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`: runs inline."""
        self.clear(**kwargs)

    def __len__(self) -> int:
        """Return the number of live (unexpired) entries."""
        with self._lock:
            self._purge(self._timer(), None)
            return len(self._order)

    def stats(self) -> CacheStats:
        """Return a snapshot of the counters; expired entries are purged first."""
        with self._lock:
            self._purge(self._timer(), None)
            return CacheStats(
                hits=self._hits.value,
                misses=self._misses.value,
                updates=self._updates,
                evictions=self._evictions,
                expirations=self._expirations,
                size=len(self._order),
                maxsize=self._maxsize,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(maxsize={self._maxsize!r}, ttl={self._ttl!r}, "
            f"policy={self._policy.value!r})"
        )

    def _wait_for_lock(self) -> None:
        """Take the lock when another thread holds it.

        Under the GIL the holder is not running while we are, so a blocking acquire would
        make this thread the lock's next owner while it still waits for the GIL; the
        owner-in-waiting then blocks every other writer, and each write becomes a GIL
        hand-off (a lock convoy: 4 threads ran 4x slower than 1). Yielding the GIL until
        the lock is free keeps ownership with running threads only.
        """
        if not GIL_ENABLED:
            self._lock.acquire()
            return
        while not self._lock.acquire(False):
            time.sleep(0)

    # -- helpers; the caller holds the lock ---------------------------------------------

    def _share(self, llm_string: str) -> str:
        # update() has already compared with the last llm_string (the usual case).
        shared = self._shared_llm_strings.get(llm_string)
        if shared is None:
            if len(self._shared_llm_strings) >= _MAX_SHARED_LLM_STRINGS:
                return llm_string
            self._shared_llm_strings[llm_string] = shared = llm_string
        self._last_llm_string = shared
        return shared

    def _evict(self) -> None:
        if self._fifo is not None:
            victim = self._fifo.popleft()
        else:
            key, victim = self._queue.popitem(last=False)  # type: ignore[union-attr]
            if self._deadlines is not None:
                self._deadlines.discard(key)
        remove(self._cells, victim)
        self._evictions += 1

    def _remove(self, slot: Slot) -> None:
        # Only LRU/TTL caches remove from the middle, and they keep a queue.
        remove(self._cells, slot)
        self._queue.pop(id(slot), None)  # type: ignore[union-attr]
        if self._deadlines is not None:
            self._deadlines.discard(id(slot))

    def _purge(self, now: float, limit: int | None) -> int:
        """Remove up to ``limit`` expired entries (all if ``None``); return how many."""
        if self._deadlines is None:
            return 0
        removed = 0
        for key in self._deadlines.pop_expired(now, limit):
            remove(self._cells, self._queue.pop(key))  # type: ignore[union-attr]
            removed += 1
        self._expirations += removed
        return removed
