"""``StoreCache``: the template every persistent backend plugs into.

A call is one pipeline, each step owned by one module::

    key (gencache._keys) -> per-call options (gencache._control) -> front layer
        -> store (gencache._protocol.Store) -> codec (gencache.codec) -> stats -> errors

Backends implement only :class:`~gencache._protocol.Store` (raw reads and writes of
encoded entries) and, optionally, a :class:`~gencache._protocol.FrontLayer` (an in-process
layer of decoded hits, such as Redis's near cache). Everything else happens here, once,
for every backend: the canonical key (a digest that names the scope), ``read=False`` /
``write=False`` / ``ttl`` / ``max_age`` / ``scope`` from :func:`gencache.control`, the
admission hook, the stored document naming its own key (a value copied under another
key is a miss), expiry times, statistics, and the error policy.

Error policy: with ``strict=False`` (the default) a backend failure, or any unexpected
exception from a backend, is logged (rate-limited) and the call behaves as a miss, or
skips the write, so the LLM application keeps working. With ``strict=True`` it raises
:class:`~gencache.errors.BackendError`. An entry that cannot be decoded, or that names
another key, is a miss, is deleted (compare-and-delete: never a newer entry) and is
logged; it never raises. A value the codec cannot store is a skipped write with a
warning (``BackendError`` when strict): the provider was paid, the call must not fail.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.outputs import Generation

from gencache._accounting import Accountant, check_prices
from gencache._admission import check_admit
from gencache._cache import (
    CacheOptions,
    GenCache,
    check_bool,
    check_generations,
    check_options,
    check_scope,
)
from gencache._control import Options, current_options
from gencache._explain import Explanation, explain_store
from gencache._flight import Leases, SingleFlight
from gencache._keys import RecentKeys, canonical_prompt
from gencache._log import RateLimitedLog
from gencache._protocol import Entry, FrontHit, FrontLayer, Key, Store
from gencache._reads import Reads
from gencache._runs import owner_of_this_call, watch_runs
from gencache._savings import SavingsStore
from gencache._ttl import Timer, check_seconds
from gencache._writes import ErrorPolicy, Writes
from gencache.stats import CacheStats, Counter, Savings

__all__ = ["StoreCache"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

_log = logging.getLogger(__name__)

_Sizes = Callable[[], tuple[int, int]]  # (evictions, expirations) a backend counted


class StoreCache(GenCache):
    """The cache template over a :class:`~gencache._protocol.Store`.

    Thread-safe when the store is (every gencache store is). Costs: a lookup is the key
    (SHA-256 of the pair, plus the canonical prompt for chat prompts that hold AI
    messages), one store read and one decode; an update is one encode and one store
    write. Statistics count this process's calls.

    Args:
        store: The backend.
        strict: Raise :class:`~gencache.errors.BackendError` instead of degrading.
        ttl: Seconds an entry stays fresh after it is written, or ``None`` (the default
            for writes without a ``ttl`` from :func:`gencache.control`).
        timer: Wall-clock time in seconds, for ``created_at``, expiry and ``max_age``.
        front: An optional layer of decoded hits in front of the store.
        counts: Returns the ``(evictions, expirations)`` the store made, for stats.
        maxsize: The store's size bound, reported by :meth:`stats`.
        leases: Single-flight leases in the store, for processes sharing it.
        savings: Where the store keeps what hits saved, across processes.
        **options: What every cache takes (:class:`~gencache._cache.CacheOptions`).
    """

    def __init__(
        self,
        store: Store,
        *,
        strict: bool = False,
        ttl: float | None = None,
        timer: Timer = time.time,
        front: FrontLayer | None = None,
        counts: _Sizes | None = None,
        maxsize: int | None = None,
        leases: Leases | None = None,
        savings: SavingsStore | None = None,
        **options: Unpack[CacheOptions],
    ) -> None:
        self._store = store
        self._strict = check_bool("strict", strict)
        check_options(options)
        self._canonical = options.get("canonical_keys", True)
        self._keys = RecentKeys(self._canonical)
        self._admit = check_admit(options.get("admit"))
        self._ttl = ttl
        self._timer = timer
        self._front = front
        self._counts = counts
        self._bound = maxsize
        self._describe = store.self_describing
        self._hits = Counter()
        self._misses = Counter()
        self._updates = Counter()
        self._bypassed = Counter()
        self._skipped = Counter()
        self._refused = Counter()
        self._coalesced = Counter()
        self._counter_lock = threading.Lock()
        self._log = RateLimitedLog(_log)
        policy = ErrorPolicy(self._strict, self._log)
        self._failed = policy.failed
        timeout = check_seconds("flight_timeout", options.get("flight_timeout", 60.0))
        single = options.get("single_flight", False)
        self._flight = SingleFlight(timeout, leases) if single else None
        self._acct = Accountant(
            check_prices(options.get("prices")),
            savings,
            zero_usage=options.get("zero_usage_on_hit", False),
            mark=options.get("mark_hits", False),
            backend=type(self).__name__,
        )
        self._reads = Reads(store, self._acct, timer, self._log)
        self._writes = Writes(
            self._acct,
            policy,
            admit=self._admit,
            ttl=ttl,
            timer=timer,
            describe=self._describe,
            skipped=self._skipped,
            refused=self._refused,
        )
        watch_runs()  # provider timing for savings, and single-flight's failure signal
        if (flush := self._acct.finalizer()) is not None:
            weakref.finalize(self, flush)  # what is batched at exit is written, not lost

    # -- key ------------------------------------------------------------------------------

    def _key(self, prompt: str, llm_string: str, scope: str | None) -> Key:
        return self._keys.key(prompt, llm_string, scope)  # a repeated request: no digest

    # -- the read half ----------------------------------------------------------------------

    def _counted(self, value: list[Generation] | None) -> list[Generation] | None:
        next(self._hits if value is not None else self._misses)
        return value

    def _shared(
        self, key: Key, value: list[Generation] | None, seconds: float | None, read: bool
    ) -> list[Generation] | None:
        """An answer another caller paid for (single-flight): a hit, as a new list.

        ``read``: it was read from the store, whose read already counted its saving.
        """
        if value is None:
            return self._counted(None)
        next(self._coalesced)
        next(self._hits)
        if not read:
            self._acct.shared(key.digest, key.llm_string, value, seconds)
        # Copies: LangChain's hit path replaces ``.message`` on the generations it gets,
        # and these are the owner's own objects.
        return [generation.model_copy() for generation in value]

    def _front_hit(self, key: Key, opts: Options) -> tuple[list[Generation] | None, object]:
        front = self._front
        if front is None:
            return None, None
        if opts.max_age is None and (hit := front.get(key.digest)) is not None:
            next(self._hits)
            # Its saving counted and its rewrite made as for a read; without a rewrite,
            # the layer's read-only copy itself (no copy per hit).
            return self._reads.front_hit(key, hit), None
        return None, front.reserve(key.digest)

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return the cached generations for the pair, or ``None``.

        With ``single_flight=True``, a miss while another thread, task or process is
        already calling the provider for the same key waits for that answer (at most
        ``flight_timeout``) and returns it as a hit.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
            BackendError: Only with ``strict=True``, when the backend fails.
        """
        opts = current_options()
        key = self._key(prompt, llm_string, opts.scope)
        if not opts.read:
            next(self._bypassed)
            return None
        hit, token = self._front_hit(key, opts)
        if hit is not None:
            return hit
        flight = self._flight if opts.write else None
        owner: Hashable = threading.get_ident()
        if flight is not None and (other := flight.waiting(key.digest, owner)) is not None:
            self._fill(key, token, None, None)  # someone is paying already: wait for it
            return self._shared(key, flight.wait(other), other.seconds, False)
        try:
            record = self._store.read(key)
        except Exception as exc:
            self._fill(key, token, None, None)
            self._failed(exc, "lookup")  # raises when strict: not a miss, an error
            next(self._misses)
            return None
        value, expires, bad, fresh = self._reads.open(key, record, opts)
        if bad:
            self._reads.drop(key, record)
        self._fill(key, token, fresh, expires)
        if value is not None or not opts.write:
            return self._counted(value)
        self._acct.pending.note(owner, key.digest)
        if flight is None:
            return self._counted(None)
        shared, seconds, read = flight.miss(key, owner, self._reader(opts))
        return self._shared(key, shared, seconds, read)

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`; never blocks the event loop (waiters await)."""
        opts = current_options()
        key = self._key(prompt, llm_string, opts.scope)
        if not opts.read:
            next(self._bypassed)
            return None
        hit, token = self._front_hit(key, opts)
        if hit is not None:
            return hit
        flight = self._flight if opts.write else None
        owner = owner_of_this_call()
        if flight is not None and (other := flight.waiting(key.digest, owner)) is not None:
            self._fill(key, token, None, None)
            answer = await other.await_(flight.timeout, flight.flights.lock)
            return self._shared(key, answer, other.seconds, False)
        try:
            record = await self._store.aread(key)
        except Exception as exc:
            self._fill(key, token, None, None)
            self._failed(exc, "lookup")  # raises when strict: not a miss, an error
            next(self._misses)
            return None
        value, expires, bad, fresh = self._reads.open(key, record, opts)
        if bad:
            await self._reads.adrop(key, record)
        self._fill(key, token, fresh, expires)
        if value is not None or not opts.write:
            return self._counted(value)
        self._acct.pending.note(owner, key.digest)
        if flight is None:
            return self._counted(None)
        shared, seconds, read = await flight.amiss(key, owner, self._areader(opts))
        return self._shared(key, shared, seconds, read)

    def _reader(self, opts: Options) -> Callable[[Key], list[Generation] | None]:
        """Read and decode one key (for a single-flight poll across processes)."""
        return lambda key: self._reads.open(key, self._store.read(key), opts)[0]

    def _areader(self, opts: Options) -> Callable[[Key], Awaitable[list[Generation] | None]]:
        async def read(key: Key) -> list[Generation] | None:
            return self._reads.open(key, await self._store.aread(key), opts)[0]

        return read

    def _fill(self, key: Key, token: object, hit: FrontHit | None, expires: float | None) -> None:
        if self._front is not None:
            self._front.fill(key.digest, token, hit, expires)

    def stored_savings(self) -> dict[str, Savings]:
        """What hits saved per model, for every process that used this store.

        Pending savings of this process are written first.

        Raises:
            BackendError: If the backend fails, whatever ``strict`` says (inspection).
        """
        return self._acct.stored()

    def flush(self) -> None:
        """Write what this process has batched (savings) to the store now."""
        self._acct.flush()

    # -- the write half ---------------------------------------------------------------------

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store ``return_val`` for the pair, replacing any previous value.

        Raises:
            TypeError: If a key part is not a ``str``, or ``return_val`` is not a sequence
                of ``Generation``.
            BackendError: Only with ``strict=True``, when the backend fails or the answer
                cannot be stored.
        """
        opts = current_options()
        key = self._key(prompt, llm_string, opts.scope)
        value = check_generations(return_val)
        try:
            write = self._writes.prepare(key, value, opts, threading.get_ident())
            if write is None:
                return
            try:
                self._store.write(key, *write)
            except Exception as exc:
                self._failed(exc, "update")
                return
            finally:
                if self._front is not None:
                    self._front.invalidate([key.digest])
            self._writes.written(key, write[2])
            next(self._updates)
        finally:
            if self._flight is not None:  # waiters get the answer, stored or not
                self._flight.flights.land(key.digest, value or None)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`; never blocks the event loop."""
        opts = current_options()
        key = self._key(prompt, llm_string, opts.scope)
        value = check_generations(return_val)
        try:
            write = self._writes.prepare(key, value, opts, owner_of_this_call())
            if write is None:
                return
            try:
                await self._store.awrite(key, *write)
            except Exception as exc:
                self._failed(exc, "update")
                return
            finally:
                if self._front is not None:
                    self._front.invalidate([key.digest])
            self._writes.written(key, write[2])
            next(self._updates)
        finally:
            if self._flight is not None:
                self._flight.flights.land(key.digest, value or None)

    def restore(
        self,
        prompt: str,
        llm_string: str,
        generations: Sequence[Generation],
        *,
        created_at: float,
        expires_at: float | None = None,
        scope: str | None = None,
    ) -> bool:
        """Write an entry with given times (what ``gencache import`` calls).

        Returns:
            ``False``, writing nothing, if ``expires_at`` has passed; else ``True``.

        Raises:
            TypeError: As :meth:`update`.
            BackendError: Whatever ``strict`` says: the caller asked for this write.
        """
        key = self._key(prompt, llm_string, check_scope(scope))
        value = check_generations(generations)
        if expires_at is not None and expires_at <= self._timer():
            return False
        payload = self._writes.restored(key, value, created_at, expires_at)
        self._store.write(key, payload, created_at, expires_at)
        if self._front is not None:
            self._front.invalidate([key.digest])
        self._writes.written(key, expires_at)
        next(self._updates)
        return True

    # -- why did this miss? -----------------------------------------------------------------

    def explain(self, prompt: str, llm_string: str) -> Explanation:
        """Say whether :meth:`lookup` would hit now, and why not, naming what differs.

        Reads the entry under the key without side effects (no statistics, no recency,
        no deletion), then, on a miss, compares against at most
        :data:`gencache._explain.MAX_SCANNED` stored entries: O(entries scanned).

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
            BackendError: If the backend fails, whatever ``strict`` says.
        """
        opts = current_options()
        key = self._key(prompt, llm_string, opts.scope)
        if not opts.read:
            return Explanation(
                False,
                "Miss: reads are disabled here.",
                ("read disabled by gencache.control(read=False)",),
            )
        keyed = canonical_prompt if self._canonical else _same
        return explain_store(
            self._store,
            key,
            keyed,
            now=self._timer(),
            max_age=opts.max_age,
            expiries=self._writes.expiries,
        )

    # -- everything else --------------------------------------------------------------------

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of this cache, or of one scope (``scope=``); never anything else.

        Other keyword arguments are accepted and ignored, as in LangChain.
        """
        scope = check_scope(kwargs.get("scope"))
        if self._flight is not None:
            self._flight.flights.clear()
        self._writes.expiries.clear(scope)
        try:
            self._store.clear(scope)
        except Exception as exc:
            self._failed(exc, "clear")
        finally:
            if self._front is not None:
                self._front.invalidate(None)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`; never blocks the event loop."""
        scope = check_scope(kwargs.get("scope"))
        if self._flight is not None:
            self._flight.flights.clear()
        self._writes.expiries.clear(scope)
        try:
            await self._store.aclear(scope)
        except Exception as exc:
            self._failed(exc, "clear")
        finally:
            if self._front is not None:
                self._front.invalidate(None)

    def entries(self, *, expired: bool = False) -> Iterator[Entry]:
        """Yield every live entry, for inspection and export (O(n), paged by the store).

        With ``expired=True``, also the expired entries the store has not removed yet.

        Raises:
            BackendError: If the backend fails, whatever ``strict`` says.
        """
        return self._store.entries(expired=expired)

    def __len__(self) -> int:
        """Return the number of live entries (a backend query)."""
        try:
            return self._store.size()
        except Exception as exc:
            self._failed(exc, "len")
            return 0

    def stats(self) -> CacheStats:
        """Return this process's counters and the backend's current size."""
        size = len(self)  # first: a backend may purge expired entries while counting
        evictions, expirations = self._counts() if self._counts is not None else (0, 0)
        saved, by_model = self._acct.snapshot()
        self._acct.flush()
        with self._counter_lock:
            return CacheStats(
                hits=self._hits.value,
                misses=self._misses.value,
                updates=self._updates.value,
                evictions=evictions,
                expirations=expirations,
                size=size,
                maxsize=self._bound,
                bypassed=self._bypassed.value,
                skipped=self._skipped.value,
                refused=self._refused.value,
                coalesced=self._coalesced.value,
                saved=saved,
                by_model=by_model,
            )


def _same(prompt: str) -> str:
    return prompt
