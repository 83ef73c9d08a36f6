"""``InMemoryCache``: LangChain's in-memory cache, made thread-safe, O(1) and observable."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence, Sized
from contextlib import contextmanager
from typing import Any

from langchain_core.outputs import Generation

from gencache._base import _GENERATION_TYPES, GenCache, check_generations
from gencache._index import (
    GENERATIONS,
    LLM_STRING,
    PROMPT,
    Cells,
    Slot,
    find,
    insert,
    remove,
)
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
    hold the cache's lock for O(1) work; on GIL builds, misses and hits under the default
    FIFO policy without TTL take no lock (one atomic dict read and one atomic counter
    increment). LRU and TTL hits, and every call on free-threaded builds, take the lock.
    The lock is a one-token deque, 4x cheaper than ``threading.Lock`` (see
    ``_wait_for_lock``). Not process-safe: each process has its own cache.

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
        # The cache's mutex: it holds one token while the cache is free, and whoever pops
        # the token owns the cache. Deque pops and appends are atomic (on free-threaded
        # builds too), and this try-pop costs ~30 ns where threading.Lock's non-blocking
        # acquire and release cost ~120 ns, a sixth of an update. See _wait_for_lock().
        self._token: deque[bool] = deque((True,))
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
        # Writes count one event each; evictions are derived in stats():
        # evictions = inserted - size - expirations - cleared.
        self._inserted = 0  # new slots
        self._replaced = 0  # in-place re-updates
        self._expirations = 0
        self._cleared = 0  # live slots dropped by clear()

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
            cell = self._get(prompt)
        except TypeError:  # unhashable prompt
            check_key(prompt, llm_string)
            raise
        if cell is not None:
            # cell = [prompt, llm_string, *generations]: the slice is the hit's new list.
            # A bucket never matches here (see gencache._index).
            if cell[1] == llm_string and self._lock_free_hits:
                next(self._hits)
                return cell[2:]
        elif GIL_ENABLED and type(prompt) is str and type(llm_string) is str:
            next(self._misses)  # nothing to expire or refresh: no lock needed
            return None
        return self._lookup_slow(prompt, llm_string)

    def _lookup_slow(self, prompt: str, llm_string: str) -> list[Generation] | None:
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        try:
            self._token.pop()
        except IndexError:
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
            self._token.append(True)
        return value

    # The default configuration's path is written out in one frame on purpose: each
    # extra call on it costs ~40 ns, a third of the eviction's own cost.
    def update(  # noqa: PLR0912
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
        if type(return_val) is list:  # the common case, checked inline for speed
            value: list[Generation] = return_val
            for item in return_val:
                if type(item) not in _GENERATION_TYPES:
                    value = check_generations(return_val)
                    break
        else:
            value = check_generations(return_val)
        try:
            self._token.pop()
        except IndexError:
            self._wait_for_lock()
        try:
            fifo = self._fifo
            if fifo is None:
                self._update_ordered(prompt, llm_string, value)
                return
            cells = self._cells
            cell = cells.get(prompt)
            if cell is not None:
                slot = cell if cell[LLM_STRING] == llm_string else find(cells, prompt, llm_string)
                if slot is not None:
                    slot[GENERATIONS:] = value
                    self._replaced += 1
                    return
            maxsize = self._maxsize
            if maxsize is not None and len(fifo) >= maxsize:
                victim = fifo.popleft()
                # One dict operation when the victim has a cell of its own (nearly always).
                victim_cell = cells.pop(victim[PROMPT])
                if victim_cell is not victim:
                    cells[victim[PROMPT]] = victim_cell
                    remove(cells, victim)
            shared = self._last_llm_string
            if llm_string != shared:
                shared = self._share(llm_string)
            # Concatenation allocates the exact size; [..., *value] over-allocates 40 bytes.
            slot = [prompt, shared] + value  # noqa: RUF005
            # The eviction cannot add a cell, so "no cell" is still true; any other case
            # goes through insert(), which reads the cell afresh.
            if cell is None:
                cells[prompt] = slot
            else:
                insert(cells, slot)
            fifo.append(slot)
            self._inserted += 1
        finally:
            self._token.append(True)

    def _update_ordered(self, prompt: str, llm_string: str, value: list[Generation]) -> None:
        """:meth:`update` for LRU and TTL caches, which keep a queue; holds the lock."""
        queue: OrderedDict[int, Slot] = self._queue  # type: ignore[assignment]
        deadlines = self._deadlines
        now = 0.0
        if deadlines is not None:
            now = self._timer()
            self._purge(now, _PURGE_PER_WRITE)  # before the find: it may drop our slot
        cells = self._cells
        slot = find(cells, prompt, llm_string)
        if slot is not None and deadlines is not None and deadlines.expired(id(slot), now):
            self._remove(slot)  # an expired entry is never "replaced"
            self._expirations += 1
            slot = None
        if slot is not None:
            slot[GENERATIONS:] = value
            if self._lru:
                queue.move_to_end(id(slot))
            self._replaced += 1
        else:
            if (
                self._maxsize is not None
                and len(queue) >= self._maxsize
                # Prefer dropping an expired entry to evicting a live one.
                and not (deadlines is not None and self._purge(now, 1))
            ):
                key, victim = queue.popitem(last=False)
                if deadlines is not None:
                    deadlines.discard(key)
                remove(cells, victim)
            slot = [prompt, self._share(llm_string)] + value  # noqa: RUF005 - exact size
            insert(cells, slot)
            queue[id(slot)] = slot
            self._inserted += 1
        if deadlines is not None:
            deadlines.set(id(slot), now)

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry. Keyword arguments are accepted and ignored, as in LangChain.

        Statistics are lifetime counters and are not reset.
        """
        with self._locked():
            self._cleared += len(self._order)
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
        with self._locked():
            self._purge(self._timer(), None)
            return len(self._order)

    def stats(self) -> CacheStats:
        """Return a snapshot of the counters; expired entries are purged first."""
        with self._locked():
            self._purge(self._timer(), None)
            size = len(self._order)
            return CacheStats(
                hits=self._hits.value,
                misses=self._misses.value,
                updates=self._inserted + self._replaced,
                evictions=self._inserted - size - self._expirations - self._cleared,
                expirations=self._expirations,
                size=size,
                maxsize=self._maxsize,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(maxsize={self._maxsize!r}, ttl={self._ttl!r}, "
            f"policy={self._policy.value!r})"
        )

    def _wait_for_lock(self) -> None:
        """Take the cache's token when another thread holds it.

        Yield the GIL (or the CPU) until the token is back. Under the GIL the holder is not
        running while we are, so a blocking wait would make this thread the next owner
        while it still waits for the GIL; the owner-in-waiting would then block every
        other writer, and each write would become a GIL hand-off (a lock convoy: 4 threads
        ran 4x slower than 1 with a blocking ``threading.Lock``). Yielding keeps ownership
        with running threads only. The wait is never long: the holder does O(1) work,
        except :meth:`clear`, which is O(n).
        """
        while True:
            time.sleep(0)
            try:
                self._token.pop()
            except IndexError:
                continue
            return

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cache's token: for the calls that are not on a hot path."""
        try:
            self._token.pop()
        except IndexError:
            self._wait_for_lock()
        try:
            yield
        finally:
            self._token.append(True)

    # -- helpers; the caller holds the lock ---------------------------------------------

    def _share(self, llm_string: str) -> str:
        # The canonical copy of llm_string, remembered as the last one (the usual case,
        # which update() checks before calling).
        shared = self._shared_llm_strings.get(llm_string)
        if shared is None:
            if len(self._shared_llm_strings) >= _MAX_SHARED_LLM_STRINGS:
                return llm_string
            self._shared_llm_strings[llm_string] = shared = llm_string
        self._last_llm_string = shared
        return shared

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
