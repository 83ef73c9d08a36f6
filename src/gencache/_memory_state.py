"""The state of an ``InMemoryCache`` and the work done on it under the cache's token.

:class:`MemoryState` owns every attribute of :class:`gencache.InMemoryCache` (its
``__slots__`` and their construction), the token lock, the locked read (:meth:`_find`) and
write (:meth:`_put`), and the expiry and sharing helpers those use. The hot paths that reach
them (``lookup``, ``update``) are in :mod:`gencache.memory`; single-flight and the async
methods in :mod:`gencache._memory_flight`; ``stats``, ``len`` and ``explain`` in
:mod:`gencache._memory_report`. Not a cache on its own: it has no ``lookup`` or ``update``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from langchain_core.outputs import Generation

from gencache._accounting import Accountant, check_prices
from gencache._admission import check_admit
from gencache._cache import CacheOptions, GenCache, check_options
from gencache._chat_prompt import canonical_prompt
from gencache._control import DEFAULT, Options
from gencache._expiries import Expiries
from gencache._flight import SingleFlight
from gencache._generations import Generations
from gencache._index import (
    COST,
    GENERATIONS,
    HIT,
    KEY,
    LLM_STRING,
    WRITTEN,
    Cells,
    Key,
    Slot,
    find,
    insert,
    remove,
    scope_of,
    scoped,
)
from gencache._log import RateLimitedLog
from gencache._policies import Order, Policy, check_maxsize, new_order
from gencache._runs import RUN_STARTED, RUNS_SEEN, watch_runs
from gencache._token import Token
from gencache._ttl import Deadlines, Timer, check_seconds, check_timer, check_ttl, default_timer
from gencache._usage import NOTED, usage_of
from gencache.stats import GIL_ENABLED, Counter

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DRAIN_AT", "HIT_LOG", "MemoryState"]

_log = logging.getLogger("gencache.memory")

# Distinct llm_strings are few (one per model configuration); keep at most this many
# canonical copies so that entries share them instead of each holding its own.
_MAX_SHARED_LLM_STRINGS = 256
# Expired entries removed per write, so that no single call pays for a mass expiry.
_PURGE_PER_WRITE = 16
# Options that are never in force (see MemoryState._plain_options).
_NEVER: Final = object()
HIT_LOG: Final = 65_536  # hits noted between two drains of the savings ledger, at most
# A write drains the log once it holds this many (a constant: ``HIT_LOG // 2`` on the
# write path cost ~15 ns a write).
DRAIN_AT: Final = HIT_LOG // 2
_TOOK_MAX = 1_000_000  # provider timings kept (one float per entry written in a run)


class MemoryState(GenCache):
    """The attributes of :class:`gencache.InMemoryCache` and its work under the lock.

    Thread safety: the methods named "the caller holds the lock" must be called with the
    cache's token held (:meth:`_locked`, or the try-pop written out on the hot paths);
    :meth:`_find` takes it itself. Costs: O(1) each unless stated otherwise.
    """

    # Slots, although LangChain's BaseCache gives every instance a __dict__ anyway: CPython
    # 3.11 stops sharing instance-dict keys past 30 attributes, and every ``self._x`` on
    # the hot paths then takes a slower lookup. A slot read is the fastest attribute read
    # (measured: -215 CPU instructions per hit, -380 per eviction, of ~4,500 and ~7,500).
    # An attribute missing here still works (it lands in __dict__), only slower.
    __slots__ = (
        "_acct",
        "_admit",
        "_bypassed",
        "_canonical",
        "_cells",
        "_claim",
        "_cleared",
        "_coalesced",
        "_deadlines",
        "_evicted",
        "_expirations",
        "_expiries",
        "_flight",
        "_get",
        "_hit_log",
        "_hits",
        "_land_now",
        "_last_llm_string",
        "_llm_tokens",
        "_lock",
        "_lock_free_hits",
        "_lock_free_misses",
        "_log",
        "_maxsize",
        "_misses",
        "_note_hit",
        "_order",
        "_plain_options",
        "_policy",
        "_queue",
        "_refused",
        "_reorders",
        "_replaced",
        "_rewrite",
        "_shared_llm_strings",
        "_skipped",
        "_timer",
        "_token",
        "_took",
        "_ttl",
    )

    def __init__(
        self,
        *,
        maxsize: int | None = None,
        ttl: float | None = None,
        policy: str | Policy = "fifo",
        timer: Timer = default_timer,
        **options: Unpack[CacheOptions],
    ) -> None:
        """Check the arguments and build the empty cache (see :class:`gencache.InMemoryCache`)."""
        self._maxsize = check_maxsize(maxsize)
        self._ttl = check_ttl(ttl)
        self._policy = Policy.parse(policy)
        self._timer = check_timer(timer)
        check_options(options)
        self._canonical = options.get("canonical_keys", True)
        self._admit = check_admit(options.get("admit"))
        timeout = check_seconds("flight_timeout", options.get("flight_timeout", 60.0))
        # Single-flight: flights keyed by the entry's digest, computed on misses only.
        self._flight = SingleFlight(timeout, None) if options.get("single_flight") else None
        self._acct = Accountant(
            check_prices(options.get("prices")),
            None,
            zero_usage=options.get("zero_usage_on_hit", False),
            mark=options.get("mark_hits", False),
            backend=type(self).__name__,
        )
        self._rewrite = options.get("zero_usage_on_hit", False) or options.get("mark_hits", False)
        # Hits note their slot here (one atomic deque append, ~25 ns); what they saved is
        # added up from the slots' own usage metadata when stats() or a write drains it.
        # Bounded: more than 65,536 hits between two drains undercount the savings.
        self._hit_log: deque[Slot] = deque(maxlen=HIT_LOG)
        self._note_hit = self._hit_log.append
        # Provider seconds of the entries written in a LangChain run, by id(slot): what a
        # hit of that slot saved in time. Bounded; a reused id only blurs a statistic.
        self._took: dict[int, float] = {}
        # Tokens of entries written by an LLM that reports them in llm_output only (see
        # gencache._usage), by id(slot), noted at write time. Bounded as _took.
        self._llm_tokens: dict[int, tuple[int, int]] = {}
        watch_runs()
        self._coalesced = Counter()
        # The cache's mutex (gencache._token): whoever pops the token owns the cache. The
        # hot paths inline the pop and append on _token (~30 ns, where threading.Lock's
        # non-blocking acquire and release cost ~120 ns, a sixth of an update).
        self._lock = Token()
        self._token = self._lock.token
        self._cells: Cells = {}
        self._get = self._cells.get
        # Deadlines exist once an entry can expire: from the start with a ttl, else from
        # the first write with a per-call ttl (see _start_deadlines). Every slot that can
        # expire must be removable from the middle of the order.
        self._deadlines: Deadlines[int] | None = None
        self._order: Order = new_order(self._policy, removable=self._ttl is not None)
        # The order's hot half, kept at hand: for the default FIFO order a plain deque.
        self._queue = self._order.queue
        if self._ttl is not None:
            self._deadlines = Deadlines(self._ttl)
        self._reorders = self._order.reorders
        # update() takes its one-frame path when the options in force are these: DEFAULT,
        # or never when an admission hook must see every answer. One identity test
        # covers both.
        plain = self._admit is None
        self._plain_options: object = DEFAULT if plain else _NEVER
        # ... which lands the key's flight after its write, with single-flight.
        self._land_now = None if self._flight is None else self._flight.flights.land
        self._shared_llm_strings: dict[str, str] = {}
        self._last_llm_string = ""
        # A hit may skip the lock only if it neither moves the slot nor must check expiry.
        self._lock_free_hits = (
            GIL_ENABLED and not self._reorders and self._deadlines is None and not self._rewrite
        )
        # Misses take no lock either, unless single-flight must see them.
        self._lock_free_misses = GIL_ENABLED and self._flight is None
        # ... and with single-flight, an uncontended one claims its flight without a lock.
        self._claim = (
            self._flight.flights.claim if GIL_ENABLED and self._flight is not None else None
        )
        self._hits = Counter()
        self._misses = Counter()
        self._bypassed = Counter()
        self._skipped = Counter()
        self._refused = Counter()
        # Slots removed by the policy. Inserts are not counted: they are derived (size +
        # evictions + expirations + clears), which saves a write an increment.
        self._evicted = 0
        # When the entries removed as expired expired: explain() names it (gencache._expiries).
        self._expiries = Expiries()
        self._replaced = 0  # in-place re-updates
        self._expirations = 0
        self._cleared = 0  # live slots dropped by clear()
        self._log = RateLimitedLog(_log)

    # -- the lock -----------------------------------------------------------------------

    def _locked(self) -> Token:
        """The cache's lock, for ``with``: for the calls that are not on a hot path."""
        return self._lock

    def _count(self, counter: Counter) -> None:
        """Count an event off the hot path; free-threaded builds count under the lock."""
        if GIL_ENABLED:
            next(counter)
        else:
            with self._locked():
                next(counter)

    def _key(self, prompt: str, scope: str | None) -> Key:
        """The index key of ``prompt`` in ``scope``."""
        return scoped(scope, canonical_prompt(prompt) if self._canonical else prompt)

    def _find(
        self, key: Key, llm_string: str, opts: Options, *, count_miss: bool
    ) -> list[Generation] | None:
        """The lookup under the lock: expiry, max_age, recency, counting."""
        max_age = opts.max_age
        try:
            self._token.pop()
        except IndexError:
            self._lock.wait()
        try:
            slot = find(self._cells, key, llm_string)
            if slot is not None:
                deadlines = self._deadlines
                now = None
                if deadlines is not None and deadlines.expired(id(slot), now := self._timer()):
                    self._expired(slot, deadlines)
                    slot = None
                elif max_age is not None:
                    if now is None:
                        now = self._timer()
                    if now - slot[WRITTEN] >= max_age:
                        slot = None  # too old for this call, still fresh for others: kept
            if slot is None:
                if count_miss:
                    next(self._misses)
                return None
            if self._reorders:
                self._order.touch(id(slot))
            next(self._hits)
            self._note_hit(slot)
            value = self._hit_list(slot)
            written = slot[WRITTEN]
        finally:
            self._token.append(True)
        if self._rewrite:
            value = self._acct.hit("", value, {}, self._timer() - written)
        return value

    # -- helpers; the caller holds the lock ---------------------------------------------

    def _hit_list(self, slot: Slot) -> list[Generation]:
        """The read-only list a hit of ``slot`` returns; holds the lock.

        Built at the first hit since the write, and kept in the slot only where hits take
        no lock (see gencache._index): a kept list is returned by lock-free hits as it is.
        """
        value: list[Generation] | None = slot[HIT]
        if value is None:
            value = Generations(slot[GENERATIONS:])
            if self._lock_free_hits:
                slot[HIT] = value
        return value

    def _put(  # noqa: PLR0912 - written out in one frame, as update()
        self, key: Key, llm_string: str, value: list[Generation], now: float, ttl: float | None
    ) -> None:
        """Write the entry, with deadlines if it or the cache has a ttl; holds the lock.

        The same steps as update()'s one-frame path, plus expiry; written out the same
        way, as this is every write of a TTL cache.
        """
        deadlines = self._deadlines
        if deadlines is not None:
            self._purge(now, _PURGE_PER_WRITE)  # before the find: it may drop our slot
            self._expiries.forget((key, llm_string))  # written again: not "expired"
        elif ttl is not None:
            deadlines = self._start_deadlines()
        cells = self._cells
        cell = cells.get(key)
        if cell is not None:
            slot = cell if cell[LLM_STRING] == llm_string else find(cells, key, llm_string)
            if slot is not None:
                if deadlines is not None and deadlines.expired(id(slot), now):
                    self._remove(slot)  # an expired entry is never "replaced"
                    self._expirations += 1  # (and is written again below: no note)
                else:
                    slot[GENERATIONS:] = value
                    slot[HIT] = None
                    slot[WRITTEN] = now
                    slot[COST] = None
                    if self._reorders:
                        self._order.touch(id(slot))
                    self._replaced += 1
                    if deadlines is not None:
                        deadlines.set(id(slot), now, ttl)
                    return
        queue = self._queue
        maxsize = self._maxsize
        if (
            maxsize is not None
            and len(queue) >= maxsize
            # Prefer dropping an expired entry to evicting a live one.
            and not (deadlines is not None and self._purge(now, 1))
        ):
            victim = queue.popleft()
            if deadlines is not None:
                deadlines.discard(id(victim))
            remove(cells, victim)
            self._evicted += 1
        shared = self._last_llm_string
        if llm_string != shared:
            shared = self._share(llm_string)
        slot = [key, shared, now, None, None] + value  # noqa: RUF005 - exact size
        # One dict operation when the key has no cell (the removals above may have
        # changed it, so it is read afresh).
        if cells.setdefault(key, slot) is not slot:
            insert(cells, slot)
        queue.append(slot)
        if RUNS_SEEN and (started := RUN_STARTED.get()) is not None:
            self._time(slot, now, started)
        if NOTED:
            self._note_tokens(slot, value)
        if deadlines is not None:
            # The same float object as slot[WRITTEN]: a deadline costs no new object.
            deadlines.set(id(slot), now, ttl)

    def _time(self, slot: Slot, now: float, started: float) -> None:
        """Remember how long the provider took for ``slot`` (the run's time so far)."""
        took = self._took
        if len(took) >= _TOOK_MAX:
            took.clear()
        took[id(slot)] = max(0.0, time.monotonic() - started)

    def _note_tokens(self, slot: Slot, value: list[Generation]) -> None:
        """Remember the tokens noted for ``value``'s run, if its LLM reported them apart."""
        tokens = usage_of(value)
        if tokens is not None:
            if len(self._llm_tokens) >= _TOOK_MAX:
                self._llm_tokens.clear()
            self._llm_tokens[id(slot)] = tokens

    def _start_deadlines(self) -> Deadlines[int]:
        """Make entries able to expire, for the first write with a per-call ttl."""
        deadlines: Deadlines[int] = Deadlines(self._ttl)
        self._order = self._order.with_removal()  # O(n) once, for the default FIFO order
        self._queue = self._order.queue
        self._deadlines = deadlines
        self._lock_free_hits = False
        for slot in self._order:  # hits take the lock from now on: none may skip it
            slot[HIT] = None
        return deadlines

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

    def _expired(self, slot: Slot, deadlines: Deadlines[int]) -> None:
        """Remove an expired ``slot``, remembering when it expired (for ``explain()``)."""
        deadline = deadlines.deadline(id(slot))
        if deadline is not None:
            self._expiries.note((slot[KEY], slot[LLM_STRING]), deadline, scope_of(slot))
        self._remove(slot)
        self._expirations += 1

    def _remove(self, slot: Slot) -> None:
        # Only caches with deadlines remove from the middle, and their order is removable.
        remove(self._cells, slot)
        self._order.remove(slot)
        if self._deadlines is not None:
            self._deadlines.discard(id(slot))

    def _purge(self, now: float, limit: int | None) -> int:
        """Remove up to ``limit`` expired entries (all if ``None``); return how many."""
        if self._deadlines is None:
            return 0
        expired = self._deadlines.pop_expired(now, limit)
        if expired:
            order, cells, note = self._order, self._cells, self._expiries.note
            for handle, deadline in expired:
                slot = order.take(handle)
                remove(cells, slot)
                note((slot[KEY], slot[LLM_STRING]), deadline, scope_of(slot))
            self._expirations += len(expired)
        return len(expired)
