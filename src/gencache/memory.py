"""``InMemoryCache``: LangChain's in-memory cache, made thread-safe, O(1) and observable."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from threading import get_ident
from typing import Any

from langchain_core.outputs import Generation

from gencache._cache import GENERATION_TYPES, check_generations, check_scope
from gencache._chat_prompt import canonical_prompt
from gencache._control import DEFAULT, IN_USE, Options, current_options
from gencache._index import (
    COST,
    GENERATIONS,
    HIT,
    KEY,
    LLM_STRING,
    WRITTEN,
    Key,
    find,
    insert,
    remove,
    scope_of,
)
from gencache._keys import check_key
from gencache._memory_flight import MemoryFlight
from gencache._memory_report import MemoryReport
from gencache._memory_state import DRAIN_AT
from gencache._policies import Policy
from gencache._runs import RUN_STARTED, RUNS_SEEN
from gencache._usage import NOTED

__all__ = ["InMemoryCache"]


class InMemoryCache(MemoryReport, MemoryFlight):
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
    ``gencache._token``). Not process-safe: each process has its own cache.

    Keys: with ``canonical_keys=True`` (the default) an entry is keyed by
    :func:`gencache._chat_prompt.canonical_prompt` of the prompt, so a chat history that differs
    only in fields never sent to a provider hits; ``False`` keys it byte for byte, as
    LangChain does. Entries written inside ``control(scope=...)`` are visible only to
    lookups in the same scope.

    A hit returns a read-only list (a ``list`` subclass: a method that would change it
    raises ``TypeError``, so a hit can never change the cache; ``list(hit)`` is a copy to
    change): where hits take no lock, the entry's own, shared by its hits as LangChain's
    cache shares its stored list; elsewhere one per hit. The ``Generation`` objects are
    the cache's own, not copies, because copying them would make every hit cost
    microseconds instead of nanoseconds. Treat them as read-only (LangChain's chat path
    only replaces a cached message with a zero-cost copy, which is idempotent). An empty
    answer (``[]``) is not stored (counted as skipped): an empty hit would make every
    LangChain call raise.

    Costs: ``lookup`` and ``update`` are O(1) plus hashing the prompt (the llm_string is
    compared, not hashed), reading the per-call options (one ``ContextVar.get``, skipped
    until a ``control()`` block was ever entered) and, on a miss or a write, the
    canonical prompt; an entry with a per-call ``ttl`` costs O(log n) to write.
    ``clear()`` is O(n), ``clear(scope=...)`` O(n). ``len()`` and :meth:`stats` are O(1)
    plus the purge of expired entries and adding up the savings of the hits noted since
    the last call (O(hits) dict updates, O(entries hit) costs). Entries with equal
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

    # Every attribute is a slot of MemoryState (gencache._memory_state), which also builds
    # the cache (its __init__ takes the arguments above) and holds the lock and the locked
    # read and write that the hot paths below share with the rest of the class.
    __slots__ = ()

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

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:  # noqa: PLR0912
        """Return the generations cached for the pair (a read-only list), or ``None``.

        Inside ``control(read=False)`` no lookup is made (counted as bypassed); inside
        ``control(max_age=...)`` an entry written that long ago or longer is a miss (and
        stays stored); inside ``control(scope=...)`` only that scope's entries answer.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
        """
        if IN_USE:  # some control() block was entered: this call's options may differ
            opts = current_options()
            if opts is not DEFAULT:
                return self._lookup_slow(prompt, llm_string, opts, None)
        try:
            cell = self._get(prompt)
        except TypeError:  # unhashable prompt
            check_key(prompt, llm_string)
            raise
        if cell is not None:
            # cell = [key, llm_string, written_at, cost, hit, *generations]: hit is the
            # read-only list every hit returns, built by the first one under the lock
            # (writers replace the generations and reset hit under it), and only in a
            # cache whose hits take no lock: a set hit needs no other test (~8 ns, 2 % of
            # LangChain's lookup). A bucket never matches here (see gencache._index).
            if cell[LLM_STRING] == llm_string:
                hit: list[Generation] | None = cell[HIT]
                if hit is None:  # the first hit since the write: ~90 ns more, once
                    if not self._lock_free_hits:
                        return self._lookup_slow(prompt, llm_string, DEFAULT, prompt)
                    try:
                        self._token.pop()
                    except IndexError:
                        self._lock.wait()
                    try:
                        hit = self._hit_list(cell)
                    finally:
                        self._token.append(True)
                next(self._hits)
                self._note_hit(cell)
                return hit
            # The prompt is a stored key, so it is canonical: canonical_prompt() is
            # idempotent, and a stored key is always its output.
            return self._lookup_slow(prompt, llm_string, DEFAULT, prompt)
        if type(prompt) is str and type(llm_string) is str:
            # Only a JSON list can be a chat prompt (see canonical_prompt). "[" and "\\"
            # are adjacent code points, so '"[" <= prompt < "\\"' says "starts with [" in
            # two compares of the first character: ~20 ns cheaper than prompt[:1] == "[",
            # ~30 ns than startswith (memory update: 776 -> 721 ns). Any other prompt is
            # its own key: tested first, a miss skips the rest (1.16 -> 1.04x in paired
            # batches against LangChain's miss).
            if "[" <= prompt < "\\":
                key = canonical_prompt(prompt) if self._canonical else prompt
            elif self._lock_free_misses:  # its own key, and nothing to expire or refresh
                next(self._misses)
                return None
            else:
                key = prompt
            if key is prompt:
                if self._lock_free_misses:
                    next(self._misses)  # nothing to expire or refresh: no lock needed
                    return None
                # Single-flight: an uncontended miss claims the key's flight without a
                # lock (see gencache._flights); a claim taken already goes below.
                claim = self._claim
                if claim is not None and claim((key, llm_string), get_ident()):
                    next(self._misses)
                    return None
            # absent: the prompt is its own key and had no cell, so nothing is stored for
            # it (a read under the lock would find what this one just found), unless a
            # claim failed above: the owner may have stored it since.
            absent = key is prompt and self._flight is None
            return self._lookup_slow(prompt, llm_string, DEFAULT, key, absent=absent)
        return self._lookup_slow(prompt, llm_string, DEFAULT, None)

    def _lookup_slow(
        self,
        prompt: str,
        llm_string: str,
        opts: Options,
        key: Key | None,
        *,
        absent: bool = False,
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
        if flight is None:
            return self._find(key, llm_string, opts, count_miss=True)
        owner: Hashable = get_ident()
        # Flights are this process's only: the index key and llm_string identify the entry
        # exactly, at the cost of a tuple (a digest would cost a SHA-256 per miss and write).
        flight_key = (key, llm_string)
        if (other := flight.waiting(flight_key, owner)) is not None:
            return self._shared(llm_string, flight.wait(other), other.seconds)
        if not absent and (value := self._find(key, llm_string, opts, count_miss=False)):
            return value
        shared, seconds = flight.local_miss(flight_key, owner)
        return self._shared(llm_string, shared, seconds)

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
        opts = current_options() if IN_USE else DEFAULT  # see lookup()
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
        if len(self._hit_log) > DRAIN_AT:  # keep the savings exact: drain in time
            self._drain()
        # Starts with "[" (see lookup()), tested first: most prompts do not.
        key = canonical_prompt(prompt) if "[" <= prompt < "\\" and self._canonical else prompt
        timer = self._timer  # see lookup(): cheaper than self._timer()
        now = timer()
        try:
            self._token.pop()
        except IndexError:
            self._lock.wait()
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
                    slot[HIT] = None
                    slot[WRITTEN] = now
                    slot[COST] = None
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
                self._evicted += 1
            shared = self._last_llm_string
            if llm_string != shared:
                shared = self._share(llm_string)
            # Concatenation allocates the exact size; [..., *value] over-allocates 40 bytes.
            slot = [key, shared, now, None, None] + value  # noqa: RUF005
            # The eviction cannot add a cell, so "no cell" is still true; any other case
            # goes through insert(), which reads the cell afresh.
            if cell is None:
                cells[key] = slot
            else:
                insert(cells, slot)
            queue.append(slot)
            if RUNS_SEEN and (started := RUN_STARTED.get()) is not None:
                self._time(slot, now, started)
            if NOTED:
                self._note_tokens(slot, value)
        finally:
            self._token.append(True)
            if (land := self._land_now) is not None:  # single-flight: wake the waiters
                land((key, llm_string), value)

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
        try:  # the lock, written out: a with statement costs two calls per write
            self._token.pop()
        except IndexError:
            self._lock.wait()
        try:
            self._put(key, llm_string, value, now, opts.ttl)
        finally:
            self._token.append(True)
        self._land(key, prompt, llm_string, opts, value)

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
        self._expiries.clear(scope)
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

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(maxsize={self._maxsize!r}, ttl={self._ttl!r}, "
            f"policy={self._policy.value!r})"
        )
