"""``InMemoryCache``: LangChain's in-memory cache, made thread-safe, O(1) and observable."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from langchain_core.outputs import Generation

from gencache._accounting import Accountant, check_prices, cost_of
from gencache._admission import check_admit
from gencache._cache import (
    GENERATION_TYPES,
    CacheOptions,
    GenCache,
    check_generations,
    check_options,
    check_scope,
)
from gencache._control import DEFAULT, Options, current_options
from gencache._explain import MAX_SCANNED, Candidate, Explanation, explain
from gencache._flight import RUN_STARTED, SingleFlight, owner_of_this_call, watch_runs
from gencache._index import (
    GENERATIONS,
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
from gencache._keys import canonical_prompt, check_key, digest
from gencache._log import RateLimitedLog
from gencache._policies import Order, Policy, check_maxsize, new_order
from gencache._protocol import Key as EntryKey
from gencache._ttl import Deadlines, Timer, check_seconds, check_timer, check_ttl, default_timer
from gencache.stats import GIL_ENABLED, CacheStats, Counter

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["InMemoryCache"]

_log = logging.getLogger(__name__)

# Distinct llm_strings are few (one per model configuration); keep at most this many
# canonical copies so that entries share them instead of each holding its own.
_MAX_SHARED_LLM_STRINGS = 256
# Expired entries removed per write, so that no single call pays for a mass expiry.
_PURGE_PER_WRITE = 16
# Options that are never in force (see InMemoryCache._plain_options).
_NEVER: Final = object()
_HIT_LOG = 65_536  # hits noted between two drains of the savings ledger, at most
_TOOK_MAX = 1_000_000  # provider timings kept (one float per entry written in a run)


class InMemoryCache(GenCache):
    """A drop-in for ``langchain_core.caches.InMemoryCache``, safe under threads.

    With the defaults it behaves like LangChain's class: unbounded, or bounded by
    ``maxsize`` with the oldest entry removed first. It adds an LRU policy, a TTL, per-call
    options (:func:`gencache.control`), canonical chat keys, an admission hook and
    statistics, and fixes the original's defects: re-updating a key in a full cache evicts
    nothing, concurrent threads never raise, and eviction is O(1) whatever ``maxsize``.

    Thread safety: every method may be called from any thread and from coroutines. Writes
    hold the cache's lock for O(1) work. On GIL builds, misses, and hits under the FIFO
    policy while no entry can expire, take no lock (one atomic dict read and one atomic
    counter increment). LRU hits, hits in a cache with a ``ttl`` or that has stored an
    entry with a per-call ``ttl``, lookups inside ``control(max_age=...)`` or
    ``control(scope=...)``, and every call on free-threaded builds, take the lock. The
    lock is a one-token deque, 4x cheaper than ``threading.Lock`` (see
    ``_wait_for_lock``). Not process-safe: each process has its own cache.

    Keys: with ``canonical_keys=True`` (the default) an entry is keyed by
    :func:`gencache._keys.canonical_prompt` of the prompt, so a chat history that differs
    only in fields never sent to a provider hits; ``False`` keys it byte for byte, as
    LangChain does. Entries written inside ``control(scope=...)`` are visible only to
    lookups in the same scope.

    A hit returns a new ``list`` holding the cached ``Generation`` objects themselves:
    changing the list never changes the cache, and the objects are shared, not copied,
    because copying them would make every hit cost microseconds instead of nanoseconds.
    Treat them as read-only (LangChain's chat path only replaces a cached message with
    a zero-cost copy, which is idempotent). An empty answer (``[]``) is not stored
    (counted as skipped): an empty hit would make every LangChain call raise.

    Costs: ``lookup`` and ``update`` are O(1) plus hashing the prompt (the llm_string is
    compared, not hashed), reading the per-call options (one ``ContextVar.get``) and, on
    a miss or a write, the canonical prompt; an entry with a per-call ``ttl`` costs
    O(log n) to write. ``clear()`` is O(n), ``clear(scope=...)`` O(n). ``len()`` and
    :meth:`stats` are O(1) plus the purge of expired entries. Entries with equal
    llm_strings share one copy. The first write with a per-call ``ttl`` into a FIFO cache
    built without ``ttl`` costs O(n) once (the cache switches to an order that can remove
    expired entries).

    Args:
        maxsize: The maximum number of entries, or ``None`` for no bound.
        ttl: Seconds an entry stays fresh after it is written, or ``None`` for no expiry
            (``control(ttl=...)`` overrides it for the writes made inside).
        policy: ``"fifo"`` (default, as LangChain) or ``"lru"``, or a
            :class:`gencache.Policy`.
        timer: The clock used for TTL and ``max_age``, in seconds (``time.monotonic`` by
            default).
        canonical_keys: Key chat prompts by their canonical form; ``False`` keys them
            byte for byte, as LangChain does.
        admit: ``(prompt, llm_string, generations) -> bool`` deciding what is stored
            (e.g. :func:`gencache.complete_only`), or ``None`` to store every answer.
            Refused answers are counted as refused; one that makes ``admit`` raise is not
            stored, is counted as refused and is logged (rate-limited).

    Raises:
        TypeError: If an argument has the wrong type (``maxsize=1.5``, ``ttl="10"``,
            ``canonical_keys=1``, a non-callable ``admit``).
        ValueError: If ``maxsize <= 0``, ``ttl`` is not finite and positive, or
            ``policy`` is unknown.
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
        "_cleared",
        "_coalesced",
        "_deadlines",
        "_expirations",
        "_flight",
        "_get",
        "_hit_log",
        "_hits",
        "_inserted",
        "_last_llm_string",
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
        self._hit_log: deque[Slot] = deque(maxlen=_HIT_LOG)
        self._note_hit = self._hit_log.append
        # Provider seconds of the entries written in a LangChain run, by id(slot): what a
        # hit of that slot saved in time. Bounded; a reused id only blurs a statistic.
        self._took: dict[int, float] = {}
        watch_runs()
        self._coalesced = Counter()
        # The cache's mutex: it holds one token while the cache is free, and whoever pops
        # the token owns the cache. Deque pops and appends are atomic (on free-threaded
        # builds too), and this try-pop costs ~30 ns where threading.Lock's non-blocking
        # acquire and release cost ~120 ns, a sixth of an update. See _wait_for_lock().
        self._token: deque[bool] = deque((True,))
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
        plain = self._admit is None and self._flight is None
        self._plain_options: object = DEFAULT if plain else _NEVER
        self._shared_llm_strings: dict[str, str] = {}
        self._last_llm_string = ""
        # A hit may skip the lock only if it neither moves the slot nor must check expiry.
        self._lock_free_hits = (
            GIL_ENABLED and not self._reorders and self._deadlines is None and not self._rewrite
        )
        # Misses take no lock either, unless single-flight must see them.
        self._lock_free_misses = GIL_ENABLED and self._flight is None
        self._hits = Counter()
        self._misses = Counter()
        self._bypassed = Counter()
        self._skipped = Counter()
        self._refused = Counter()
        # Writes count one event each; evictions are derived in stats():
        # evictions = inserted - size - expirations - cleared.
        self._inserted = 0  # new slots
        self._replaced = 0  # in-place re-updates
        self._expirations = 0
        self._cleared = 0  # live slots dropped by clear()
        self._log = RateLimitedLog(_log)

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

    # -- lookups ------------------------------------------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return a new list of the generations cached for the pair, or ``None``.

        Inside ``control(read=False)`` no lookup is made (counted as bypassed); inside
        ``control(max_age=...)`` an entry written that long ago or longer is a miss (and
        stays stored); inside ``control(scope=...)`` only that scope's entries answer.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        opts = current_options()
        if opts is DEFAULT:
            get = self._get  # a call on an attribute read is cheaper than self._get()
            try:
                cell = get(prompt)
            except TypeError:  # unhashable prompt
                check_key(prompt, llm_string)
                raise
            if cell is not None:
                # cell = [key, llm_string, written_at, *generations]: the slice is the
                # hit's new list. A bucket never matches here (see gencache._index).
                if cell[LLM_STRING] == llm_string and self._lock_free_hits:
                    next(self._hits)
                    self._note_hit(cell)
                    return cell[GENERATIONS:]
                # The prompt is a stored key, so it is canonical: canonical_prompt() is
                # idempotent, and a stored key is always its output.
                return self._lookup_slow(prompt, llm_string, opts, prompt)
            if type(prompt) is str and type(llm_string) is str:
                key = canonical_prompt(prompt) if self._canonical else prompt
                if key is prompt and self._lock_free_misses:
                    next(self._misses)  # nothing to expire or refresh: no lock needed
                    return None
                return self._lookup_slow(prompt, llm_string, opts, key)
        return self._lookup_slow(prompt, llm_string, opts, None)

    def _lookup_slow(
        self, prompt: str, llm_string: str, opts: Options, key: Key | None
    ) -> list[Generation] | None:
        """:meth:`lookup` with the lock: LRU, TTL, per-call options, free-threaded builds."""
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        if not opts.read:
            self._count(self._bypassed)
            return None
        if key is None:
            key = self._key(prompt, opts.scope)
        flight = self._flight if opts.write else None
        entry = None
        if flight is not None:
            owner: Hashable = ("thread", threading.get_ident())
            entry = self._entry_key(key, prompt, llm_string, opts.scope)
            if (other := flight.waiting(entry.digest, owner)) is not None:
                return self._shared(entry, other.wait(flight.timeout), other.seconds)
        value = self._find(key, llm_string, opts, count_miss=flight is None)
        if value is not None or flight is None or entry is None:
            return value
        shared, seconds, _ = flight.miss(entry, owner, _nothing)
        return self._shared(entry, shared, seconds)

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

    def _find(
        self, key: Key, llm_string: str, opts: Options, *, count_miss: bool
    ) -> list[Generation] | None:
        """The lookup under the lock: expiry, max_age, recency, counting."""
        max_age = opts.max_age
        try:
            self._token.pop()
        except IndexError:
            self._wait_for_lock()
        try:
            slot = find(self._cells, key, llm_string)
            if slot is not None:
                deadlines = self._deadlines
                now = None
                if deadlines is not None and deadlines.expired(id(slot), now := self._timer()):
                    self._remove(slot)
                    self._expirations += 1
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
            value: list[Generation] = slot[GENERATIONS:]
            written = slot[WRITTEN]
        finally:
            self._token.append(True)
        if self._rewrite:
            value = self._acct.hit("", value, {}, self._timer() - written)
        return value

    # -- writes -------------------------------------------------------------------------

    # The default configuration's path is written out in one frame on purpose: each
    # extra call on it costs ~40 ns, a third of the eviction's own cost. The policy's
    # part of it is its queue's append / popleft / len, which are a plain deque's C
    # methods for the default FIFO order (see gencache._policies).
    def update(  # noqa: PLR0912, PLR0915
        self, prompt: str, llm_string: str, return_val: Sequence[Generation]
    ) -> None:
        """Cache ``return_val`` for the pair, replacing any previous value.

        A key already present is replaced in place and evicts nothing. A new key in a full
        cache first drops an expired entry if there is one, else evicts by policy. Nothing
        is stored (counted as skipped) for an empty ``return_val`` or inside
        ``control(write=False)``, nor (counted as refused) when ``admit`` refuses it.
        Inside ``control(ttl=...)`` the entry expires after that many seconds.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``, or
                ``return_val`` is not a sequence of ``Generation``.
        """
        if type(prompt) is not str or type(llm_string) is not str:
            check_key(prompt, llm_string)
        opts = current_options()
        if type(return_val) is list and return_val:  # the common case, checked inline
            value: list[Generation] = return_val
            for item in return_val:
                if type(item) not in GENERATION_TYPES:
                    value = check_generations(return_val)
                    break
        else:
            value = check_generations(return_val)
            if not value:
                self._update_slow(prompt, llm_string, value, opts)
                return
        if opts is not self._plain_options:
            self._update_slow(prompt, llm_string, value, opts)
            return
        if len(self._hit_log) > _HIT_LOG // 2:  # keep the savings exact: drain in time
            self._drain()
        key = canonical_prompt(prompt) if self._canonical else prompt
        timer = self._timer  # see lookup(): cheaper than self._timer()
        now = timer()
        try:
            self._token.pop()
        except IndexError:
            self._wait_for_lock()
        try:
            if self._deadlines is not None:
                self._put(key, llm_string, value, now, None)
                return
            cells = self._cells
            cell = cells.get(key)
            if cell is not None:
                slot = cell if cell[LLM_STRING] == llm_string else find(cells, key, llm_string)
                if slot is not None:
                    slot[GENERATIONS:] = value
                    slot[WRITTEN] = now
                    if self._reorders:
                        self._order.touch(id(slot))
                    self._replaced += 1
                    return
            queue = self._queue
            maxsize = self._maxsize
            if maxsize is not None and len(queue) >= maxsize:
                victim = queue.popleft()
                # One dict operation when the victim has a cell of its own (nearly always).
                victim_cell = cells.pop(victim[KEY])
                if victim_cell is not victim:
                    cells[victim[KEY]] = victim_cell
                    remove(cells, victim)
            shared = self._last_llm_string
            if llm_string != shared:
                shared = self._share(llm_string)
            # Concatenation allocates the exact size; [..., *value] over-allocates 40 bytes.
            slot = [key, shared, now] + value  # noqa: RUF005
            # The eviction cannot add a cell, so "no cell" is still true; any other case
            # goes through insert(), which reads the cell afresh.
            if cell is None:
                cells[key] = slot
            else:
                insert(cells, slot)
            queue.append(slot)
            self._inserted += 1
            if (started := RUN_STARTED.get()) is not None:
                self._time(slot, now, started)
        finally:
            self._token.append(True)

    def _update_slow(
        self, prompt: str, llm_string: str, value: list[Generation], opts: Options
    ) -> None:
        """:meth:`update` with per-call options, an ``admit`` hook or an empty answer."""
        self._drain()
        if not opts.write or not value:  # an empty hit would break every LangChain call
            self._count(self._skipped)
            if self._flight is not None:  # releases this key's waiters: they pay
                self._land(self._key(prompt, opts.scope), prompt, llm_string, opts, [])
            return
        admit = self._admit
        if admit is not None:
            # Outside the lock: the hook is the caller's code, and may be slow.
            try:
                admitted = admit(prompt, llm_string, value)
            except Exception as exc:  # the provider was paid: never fail the call
                self._count(self._refused)
                self._log.warning(
                    "admit",
                    "gencache: admit raised %s: %s; the answer is not stored",
                    type(exc).__name__,
                    exc,
                )
                return
            if not admitted:
                self._count(self._refused)
                self._land(self._key(prompt, opts.scope), prompt, llm_string, opts, value)
                return
        key = self._key(prompt, opts.scope)
        now = self._timer()
        with self._locked():
            self._put(key, llm_string, value, now, opts.ttl)
        self._land(key, prompt, llm_string, opts, value)

    def _land(
        self, key: Key, prompt: str, llm_string: str, opts: Options, value: list[Generation]
    ) -> None:
        """Give waiters for this key the answer (stored or not): single-flight only."""
        if self._flight is not None:
            entry = self._entry_key(key, prompt, llm_string, opts.scope)
            self._flight.flights.land(entry.digest, value or None)

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
        elif ttl is not None:
            deadlines = self._start_deadlines()
        cells = self._cells
        cell = cells.get(key)
        if cell is not None:
            slot = cell if cell[LLM_STRING] == llm_string else find(cells, key, llm_string)
            if slot is not None:
                if deadlines is not None and deadlines.expired(id(slot), now):
                    self._remove(slot)  # an expired entry is never "replaced"
                    self._expirations += 1
                else:
                    slot[GENERATIONS:] = value
                    slot[WRITTEN] = now
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
        shared = self._last_llm_string
        if llm_string != shared:
            shared = self._share(llm_string)
        slot = [key, shared, now] + value  # noqa: RUF005 - exact size
        # One dict operation when the key has no cell (the removals above may have
        # changed it, so it is read afresh).
        if cells.setdefault(key, slot) is not slot:
            insert(cells, slot)
        queue.append(slot)
        self._inserted += 1
        if (started := RUN_STARTED.get()) is not None:
            self._time(slot, now, started)
        if deadlines is not None:
            # The same float object as slot[WRITTEN]: a deadline costs no new object.
            deadlines.set(id(slot), now, ttl)

    # -- everything else ----------------------------------------------------------------

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry, or only one scope's with ``clear(scope="...")``.

        Other keyword arguments are accepted and ignored, as in LangChain. Statistics
        are lifetime counters and are not reset. O(n) either way.

        Raises:
            TypeError: If ``scope`` is neither a ``str`` nor ``None``.
            ValueError: If ``scope`` is ``""``.
        """
        scope = check_scope(kwargs.get("scope"))
        if self._flight is not None:
            self._flight.flights.clear()
        with self._locked():
            if scope is None:
                self._cleared += len(self._queue)
                self._cells.clear()
                self._order.clear()
                if self._deadlines is not None:
                    self._deadlines.clear()
                self._shared_llm_strings.clear()
                return
            dropped = self._order.retain(lambda slot: scope_of(slot) != scope)
            for slot in dropped:
                remove(self._cells, slot)
                if self._deadlines is not None:
                    self._deadlines.discard(id(slot))
            self._cleared += len(dropped)

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
        shared, seconds, _ = await flight.amiss(entry, owner, _anothing)
        return self._shared(entry, shared, seconds)

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
                updates=self._inserted + self._replaced,
                evictions=self._inserted - size - self._expirations - self._cleared,
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
        return explain(asked, llm_string, opts.scope, candidates, now=now, max_age=opts.max_age)

    def _time(self, slot: Slot, now: float, started: float) -> None:
        """Remember how long the provider took for ``slot`` (the run's time so far)."""
        took = self._took
        if len(took) >= _TOOK_MAX:
            took.clear()
        took[id(slot)] = max(0.0, time.monotonic() - started)

    def _drain(self) -> None:
        """Add what the noted hits saved to the ledger (from the slots' usage metadata)."""
        log = self._hit_log
        while log:
            try:
                slot = log.popleft()
            except IndexError:  # another thread drained it
                return
            seconds = self._took.get(id(slot))
            self._acct.ledger.add(cost_of(slot[LLM_STRING], slot[GENERATIONS:], seconds))

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
        except :meth:`clear` and the first per-call ttl, which are O(n).
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

    # -- helpers; the caller holds the lock ---------------------------------------------

    def _start_deadlines(self) -> Deadlines[int]:
        """Make entries able to expire, for the first write with a per-call ttl."""
        deadlines: Deadlines[int] = Deadlines(self._ttl)
        self._order = self._order.with_removal()  # O(n) once, for the default FIFO order
        self._queue = self._order.queue
        self._deadlines = deadlines
        self._lock_free_hits = False
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
            order, cells = self._order, self._cells
            for handle in expired:
                remove(cells, order.take(handle))
            self._expirations += len(expired)
        return len(expired)


def _nothing(entry: EntryKey) -> list[Generation] | None:
    return None  # memory has no other process to poll


async def _anothing(entry: EntryKey) -> list[Generation] | None:
    return None
