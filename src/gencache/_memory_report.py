"""What an ``InMemoryCache`` says about itself: ``len()``, ``stats()`` and ``explain()``.

Also the accounting glue behind :attr:`gencache.CacheStats.saved`: hits note their slot in
a bounded log (one atomic append), and :meth:`MemoryReport._drain` adds up what they saved
from the slots' usage metadata and the provider timings kept when they were written.
"""

from __future__ import annotations

import itertools
from typing import Any

from gencache._accounting import cost_of
from gencache._control import current_options
from gencache._explain import MAX_SCANNED, Candidate, Explanation, explain
from gencache._index import COST, GENERATIONS, KEY, LLM_STRING, WRITTEN, find, scope_of
from gencache._keys import check_key
from gencache._memory_state import MemoryState
from gencache.stats import CacheStats

__all__ = ["MemoryReport"]


class MemoryReport(MemoryState):
    """``len()``, ``stats()``, ``explain()`` and the savings drain of an ``InMemoryCache``.

    Thread safety: as the cache's (any thread); each takes the cache's lock.
    """

    __slots__ = ()

    def __len__(self) -> int:
        """Return the number of live (unexpired) entries."""
        with self._locked():
            self._purge(self._timer(), None)
            return len(self._queue)

    def stats(self) -> CacheStats:
        """Return a snapshot of the counters; expired entries are purged first."""
        self._drain()
        saved, by_model = self._acct.ledger.snapshot()
        with self._locked():
            self._purge(self._timer(), None)
            size = len(self._queue)
            return CacheStats(
                hits=self._hits.value,
                misses=self._misses.value,
                updates=size + self._evicted + self._expirations + self._cleared + self._replaced,
                evictions=self._evicted,
                expirations=self._expirations,
                size=size,
                maxsize=self._maxsize,
                bypassed=self._bypassed.value,
                skipped=self._skipped.value,
                refused=self._refused.value,
                coalesced=self._coalesced.value,
                saved=saved,
                by_model=by_model,
            )

    def explain(self, prompt: str, llm_string: str) -> Explanation:
        """Say whether :meth:`lookup` would hit now, and why not, naming what differs.

        No side effects (statistics, recency, expiry removal). O(entries), at most
        :data:`gencache._explain.MAX_SCANNED` compared, under the lock.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        check_key(prompt, llm_string)
        opts = current_options()
        if not opts.read:
            reason = ("read disabled by gencache.control(read=False)",)
            return Explanation(False, "Miss: reads are disabled here.", reason)
        key = self._key(prompt, opts.scope)
        asked = key if isinstance(key, str) else key[1]
        now = self._timer()
        with self._locked():
            deadlines = self._deadlines
            slot = find(self._cells, key, llm_string)
            if slot is not None:
                expires = None if deadlines is None else deadlines.deadline(id(slot))
                fresh = expires is None or expires > now
                young = opts.max_age is None or now - slot[WRITTEN] < opts.max_age
                if fresh and young:
                    return Explanation(True, "Hit: this request is stored.")
            candidates = [
                Candidate(
                    s[KEY] if isinstance(s[KEY], str) else s[KEY][1],
                    s[LLM_STRING],
                    scope_of(s),
                    None if deadlines is None else deadlines.deadline(id(s)),
                    s[WRITTEN],
                )
                for s in itertools.islice(self._order, MAX_SCANNED)
            ]
            # Removed as expired (a lookup that missed, or a purge), and not written since.
            gone = slot is None
            expired_at = self._expiries.expired((key, llm_string), now) if gone else None
        return explain(
            asked,
            llm_string,
            opts.scope,
            candidates,
            now=now,
            max_age=opts.max_age,
            expired_at=expired_at,
        )

    def _drain(self) -> None:
        """Add what the noted hits saved to the ledger (from the slots' usage metadata).

        The hits are counted per entry first, and each entry's cost is read from its
        generations once, at its first hit, and kept in the slot: reading it (model,
        tokens) for every hit cost ~5 us a hit, ten times the hit itself. O(hits noted)
        dict updates plus O(entries hit) ledger additions, under one lock.
        """
        log = self._hit_log
        hits: dict[int, list[Any]] = {}  # id(slot) -> [slot, hits]; the log keeps slots alive
        while log:
            try:
                slot = log.popleft()
            except IndexError:  # another thread drained it
                break
            counted = hits.get(id(slot))
            if counted is None:
                hits[id(slot)] = [slot, 1]
            else:
                counted[1] += 1
        costs = []
        for handle, (slot, calls) in hits.items():
            cost = slot[COST]
            if cost is None:  # first hit since it was written: read it once
                seconds = self._took.get(handle)
                tokens = self._llm_tokens.get(handle)
                slot[COST] = cost = cost_of(slot[LLM_STRING], slot[GENERATIONS:], seconds, tokens)
            costs.append((cost, calls))
        self._acct.ledger.add_all(costs)
