"""The flights of one process: who is paying for which key now, and who waits for it.

The first lookup that misses a key *claims* it: it goes to the provider and its
``update`` *lands* the flight. Lookups of the same key that arrive meanwhile *wait* for
that answer (threads on an ``Event``, asyncio tasks on a ``Future`` of their own loop) and
return it as a hit, instead of paying again.

Most misses are never contended, so a claim is made as cheap as a dict operation: it puts a
small *claim record* (a tuple: owner, start time, lineage) under the key with one atomic
``dict.setdefault`` and takes no lock. Only a waiter turns the record into a
:class:`Flight` (with what waiting needs: an ``Event``, futures, the answer), under the
flights' lock; the landing, which takes the same lock, finds either. Measured: an
uncontended memory miss + update costs ~0.5 µs with single-flight on, against ~2.2 µs
when every miss built a ``Flight`` and took a ``threading.Lock`` twice (see
docs/benchmarks.md).

A thread or task that owns a flight and looks the key up again is not blocked by itself,
nor is a call made inside the owner's provider call in a copy of its context (a nested
task, a thread started with the context): see :func:`owns`, and its note on the copies
made before a claim. Callers that claim under lineages of their own (batch workers,
gathered tasks) wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any

from langchain_core.outputs import Generation

from gencache._runs import listen_for_failures
from gencache._token import Token

__all__ = ["Claim", "Flight", "Flights", "Lineage", "lineage", "owns"]

_FLYING, _LANDED, _FAILED = 0, 1, 2


class Lineage:
    """Who made a context's claims, and the lineage of the context it was copied from.

    Kept in a ``ContextVar`` and made once per context and caller (not per claim): a
    context copied from the claimer's (a nested task, a thread started with the context)
    inherits it and so owns the claimer's flights; a caller that copied it and claims
    keys itself makes its own, whose ``parent`` is the inherited one.
    """

    __slots__ = ("creator", "depth", "parent")

    def __init__(self, creator: Hashable, parent: Lineage | None) -> None:
        self.creator = creator
        self.depth: int
        if parent is not None and parent.depth >= _LINEAGE_MAX:
            parent = None  # forget distant ancestors: a bound, at worst a wait
        self.parent = parent
        self.depth = 1 if parent is None else parent.depth + 1


_LINEAGE_MAX = 64
_LINEAGE: ContextVar[Lineage | None] = ContextVar("gencache_flight_lineage", default=None)


def lineage(owner: Hashable) -> Lineage:
    """This context's lineage for ``owner``'s claims, made at its first claim. O(1)."""
    line = _LINEAGE.get()
    if line is None or line.creator != owner:
        line = Lineage(owner, line)
        _LINEAGE.set(line)
    return line


#: An uncontended flight: ``(owner, started, lineage)``, as :meth:`Flights.claim` left it.
Claim = tuple[Hashable, float, Lineage]


class Flight:
    """One key's provider call that someone waits for. Thread-safe through its :class:`Flights`."""

    __slots__ = (
        "_event",
        "_futures",
        "lineage",
        "on_settle",
        "owner",
        "seconds",
        "started",
        "state",
        "value",
    )

    def __init__(self, owner: Hashable, lineage: Lineage, started: float | None = None) -> None:
        self.owner = owner
        #: The claimer's lineage: calls in contexts copied from its context own it too.
        self.lineage = lineage
        self.started = time.monotonic() if started is None else started
        self.state = _FLYING
        self.value: list[Generation] | None = None
        self.seconds = 0.0  # how long the owner's provider call took, once settled
        #: Called with ``failed`` once the flight settles, outside the lock (a lease).
        self.on_settle: Callable[[bool], None] | None = None
        # Made by the first thread that waits (under the flights' lock).
        self._event: threading.Event | None = None
        self._futures: list[asyncio.Future[None]] = []

    @property
    def landed(self) -> bool:
        """Whether the flight settled with a value."""
        return self.state == _LANDED

    def settle(self, value: list[Generation] | None) -> None:
        """Land with ``value`` (``None``: failed) and wake every waiter. Under the lock."""
        self.value = value
        self.seconds = time.monotonic() - self.started
        self.state = _FAILED if value is None else _LANDED
        if self._event is not None:
            self._event.set()
        for future in self._futures:
            loop = future.get_loop()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody to wake
                loop.call_soon_threadsafe(_resolve, future)
        self._futures.clear()

    def wait(self, timeout: float, lock: Token) -> list[Generation] | None:
        """Block this thread until the flight settles or ``timeout`` passes."""
        with lock:
            if self.state != _FLYING:
                return self.value if self.state == _LANDED else None
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        event.wait(max(0.0, self.started + timeout - time.monotonic()))
        return self.value if self.state == _LANDED else None

    async def await_(self, timeout: float, lock: Token) -> list[Generation] | None:
        """Wait in this task until the flight settles or ``timeout`` passes."""
        with lock:
            if self.state != _FLYING:
                return self.value if self.state == _LANDED else None
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._futures.append(future)
        left = max(0.0, self.started + timeout - time.monotonic())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), left)
        return self.value if self.state == _LANDED else None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_SWEEP_MIN = 1024  # flights kept before the first sweep of abandoned ones
_LANDED_KEPT = 1024  # landing times kept (see Flights.recently_landed)
_RECENT = 1.0  # seconds after a landing in which a new owner reads the store again

Record = Flight | Claim


def _started(record: Record) -> float:
    return record.started if type(record) is Flight else record[1]  # type: ignore[index]


class Flights:
    """The flights of one cache, keyed by entry digest (memory: by index key and llm_string).

    Thread-safe; O(1) per claim, join and landing (amortised: abandoned flights are swept
    in batches); :meth:`fail_owner` and :meth:`clear` are O(flights in the air).
    Bounded: a flight its owner never lands (a lookup with no update after it) is
    abandoned after the timeout and swept once the flights in the air have doubled.

    Args:
        timeout: The longest a waiter waits (``flight_timeout``), in seconds.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._flights: dict[Hashable, Record] = {}
        #: Guards the flights, except :meth:`claim`'s one atomic insert.
        self.lock = Token()
        self._sweep_at = _SWEEP_MIN
        self._watched: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        # When each key's last waited-for flight landed: a caller that read the store
        # just before that landing's write, and joins just after it, re-reads instead of
        # paying again (see recently_landed). Bounded; started over when full.
        self._landed_at: dict[Hashable, float] = {}
        listen_for_failures(self)

    def watch(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` is new to these flights (then it is remembered, weakly)."""
        if task in self._watched:
            return False
        self._watched.add(task)
        return True

    def __len__(self) -> int:
        """The flights kept: in the air, or abandoned and not swept yet."""
        return len(self._flights)

    def claim(self, key: Hashable, owner: Hashable) -> bool:
        """Own ``key``'s flight if nobody does: ``True``. No lock; O(1).

        ``False``: a record is there already (another caller's, an abandoned one, or this
        caller's own); :meth:`join` tells which.
        """
        line = _LINEAGE.get()  # lineage(owner), written out: this is every miss
        if line is None or line.creator != owner:
            line = lineage(owner)
        record = (owner, time.monotonic(), line)
        flights = self._flights
        if flights.setdefault(key, record) is not record:
            return False
        if len(flights) > self._sweep_at:
            with self.lock:
                self._sweep(record[1])
        return True

    def join(self, key: Hashable, owner: Hashable) -> tuple[Flight, bool, bool]:
        """Return the key's flight, whether ``owner`` owns it, and whether it is new.

        A flight older than the timeout is abandoned (its owner never landed it): the
        caller starts a new one.
        """
        with self.lock:
            flights = self._flights
            record = flights.get(key)
            if record is not None and time.monotonic() - _started(record) < self.timeout:
                flight = self._flight(key, record)
                return flight, owns(flight, owner), False
            flight = Flight(owner, lineage(owner))
            if record is None:
                # setdefault, not an assignment: a lock-free claim may have come in since.
                record = flights.setdefault(key, flight)
                if record is not flight:
                    other = self._flight(key, record)
                    return other, owns(other, owner), False
            else:  # abandoned: replaced (claims never overwrite a record)
                flights[key] = flight
            if len(flights) > self._sweep_at:
                self._sweep(flight.started)
        return flight, True, True

    def peek(self, key: Hashable) -> Flight | None:
        """The key's flight in progress, if any and not abandoned (no new one)."""
        record = self._flights.get(key)
        if record is None or time.monotonic() - _started(record) >= self.timeout:
            return None
        if type(record) is Flight:
            return record
        with self.lock:  # a claim: someone is about to wait for it
            record = self._flights.get(key)
            return None if record is None else self._flight(key, record)

    def _flight(self, key: Hashable, record: Record) -> Flight:
        """The :class:`Flight` of ``record``, made from its claim if need be; under the lock."""
        if type(record) is Flight:
            return record
        owner, started, line = record  # type: ignore[misc]
        flight = self._flights[key] = Flight(owner, line, started)
        return flight

    def land(self, key: Hashable, value: list[Generation] | None) -> None:
        """Settle the key's flight with ``value`` (``None`` fails it). O(1)."""
        token = self.lock.token
        try:
            token.pop()
        except IndexError:
            self.lock.wait()
        try:
            record = self._flights.pop(key, None)
            if type(record) is Flight:
                record.settle(value)
                if value is not None:
                    landed = self._landed_at
                    if len(landed) >= _LANDED_KEPT:
                        landed.clear()
                    landed[key] = time.monotonic()
            else:
                return  # a claim nobody waited for, or nothing
        finally:
            token.append(True)
        _after(record)

    def recently_landed(self, key: Hashable) -> bool:
        """Whether a flight of ``key`` landed with an answer in the last second. O(1).

        The store may then hold an answer that a read made just before it missed.
        """
        landed = self._landed_at.get(key)
        return landed is not None and time.monotonic() - landed < _RECENT

    def fail_owner(self, owner: Hashable) -> int:
        """Fail every flight ``owner`` owns; return how many. O(flights in the air)."""
        with self.lock:
            flights = self._flights
            # list(): claims insert without the lock, and a dict may not change under a loop.
            doomed = [(k, r) for k, r in list(flights.items()) if _owner(r) == owner]
            for key, _ in doomed:
                del flights[key]
            settled = [r for _, r in doomed if type(r) is Flight]
            for flight in settled:
                flight.settle(None)
        for flight in settled:
            _after(flight)
        return len(doomed)

    def clear(self) -> None:
        """Fail every flight (the cache was cleared: waiters call the provider)."""
        with self.lock:
            flights, self._flights = self._flights, {}
            self._landed_at.clear()
            settled = [r for r in list(flights.values()) if type(r) is Flight]
            for flight in settled:
                flight.settle(None)
        for flight in settled:
            _after(flight)

    def _sweep(self, now: float) -> None:
        """Fail and drop the abandoned flights; under the lock. O(flights kept)."""
        flights = self._flights
        for key, record in list(flights.items()):
            if now - _started(record) >= self.timeout:
                del flights[key]
                if type(record) is Flight:
                    record.settle(None)  # its waiters have timed out already
        self._sweep_at = max(_SWEEP_MIN, 2 * len(flights))


def _owner(record: Record) -> Hashable:
    return record.owner if type(record) is Flight else record[0]  # type: ignore[index]


def _after(flight: Flight) -> None:
    callback, flight.on_settle = flight.on_settle, None
    if callback is not None:
        with contextlib.suppress(Exception):  # housekeeping: a lease also expires by itself
            callback(flight.state == _FAILED)


def owns(flight: Flight, owner: Hashable) -> bool:
    """Whether ``owner``, in this context, owns ``flight`` (so must not wait for it).

    The claimer itself, or a call in a context copied from the claimer's: an asyncio task
    that LangChain starts for a nested ``ainvoke``, a thread started with the context.
    Callers that started from elsewhere (batch workers, gathered tasks, which claim with
    lineages of their own) wait. O(depth of the lineage), at most 64.

    A context copied from the claimer's *before* the claim counts as the claimer's too:
    such a copy that looks the key up while the claimer flies pays itself (a second
    provider call) instead of waiting. That needs the claimer to run concurrently with
    its own earlier copies, which LangChain's batch and gather never do.
    """
    if flight.owner == owner:
        return True
    target = flight.lineage
    line = _LINEAGE.get()
    while line is not None:
        if line is target:
            return True
        line = line.parent
    return False
