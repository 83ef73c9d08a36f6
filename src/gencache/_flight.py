"""Single-flight: identical concurrent misses make one provider call.

The first lookup that misses a key becomes the key's *owner*: it goes to the provider
and its ``update`` lands the flight. Lookups of the same key that arrive meanwhile are
*waiters*: they wait for that answer (threads on an ``Event``, asyncio tasks on a
``Future`` of their own loop) and return it as a hit, instead of paying again.

Failure: when the owner's provider call fails, its waiters are released at once and
call the provider themselves, together, never one after another. The failure is seen
through LangChain's own callback machinery: a handler registered with
``langchain_core.tracers.context.register_configure_hook`` (how LangChain plugs in its
tracers) is added to every LLM and chat-model run, and its ``on_llm_error`` fails the
flights that the failing thread or task owns; an owner task that finishes without
landing fails its flights too; ``flight_timeout`` bounds every wait (the backstop for an
owner that vanished without a signal, or a caller that looks up and never updates).

A thread or task that owns a flight and looks the key up again is not blocked by
itself. Waiting never blocks an event loop: async waiters await a future.

Across processes (SQLite, Redis) the owner also holds a *lease* in the store (a row or a
``SET NX PX`` key with an owner token and a deadline); see :class:`Leases`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Any, Protocol

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import Generation

from gencache._log import RateLimitedLog
from gencache._protocol import Key
from gencache._usage import note_end, note_start

__all__ = [
    "RUN_STARTED",
    "Flight",
    "Flights",
    "HeldLeases",
    "Leases",
    "SingleFlight",
    "owner_of_this_call",
    "owns",
    "provider_seconds",
    "watch_runs",
    "watch_task",
]

_log = logging.getLogger(__name__)

_FLYING, _LANDED, _FAILED = 0, 1, 2


class Flight:
    """One key's provider call in progress. Thread-safe through its :class:`Flights`."""

    __slots__ = (
        "_event",
        "_futures",
        "on_settle",
        "owner",
        "seconds",
        "started",
        "state",
        "value",
    )

    def __init__(self, owner: Hashable) -> None:
        self.owner = owner
        self.started = time.monotonic()
        self.state = _FLYING
        self.value: list[Generation] | None = None
        self.seconds = 0.0  # how long the owner's provider call took, once settled
        #: Called with ``failed`` once the flight settles, outside the lock (a lease).
        self.on_settle: Callable[[bool], None] | None = None
        # Made by the first thread that waits (under the flights' lock): most flights
        # have no waiter, and an Event costs more than the rest of the flight.
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

    def wait(self, timeout: float, lock: threading.Lock) -> list[Generation] | None:
        """Block this thread until the flight settles or ``timeout`` passes."""
        with lock:
            if self.state != _FLYING:
                return self.value if self.state == _LANDED else None
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        event.wait(max(0.0, self.started + timeout - time.monotonic()))
        return self.value if self.state == _LANDED else None

    async def await_(self, timeout: float, lock: threading.Lock) -> list[Generation] | None:
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
_OWNED_MAX = 64  # flights in the air remembered per context (see Flights.join)


class Flights:
    """The flights of one cache, keyed by entry digest (memory: by index key and llm_string).

    Thread-safe; O(1) per call (amortised: abandoned flights are swept in batches).
    Bounded: a flight its owner never lands (a lookup with no update after it) is
    abandoned after the timeout and swept once the flights in the air have doubled.

    Args:
        timeout: The longest a waiter waits (``flight_timeout``), in seconds.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._flights: dict[Hashable, Flight] = {}
        self._lock = threading.Lock()
        self._sweep_at = _SWEEP_MIN
        _watch(self)

    def __len__(self) -> int:
        """The flights kept: in the air, or abandoned and not swept yet."""
        return len(self._flights)

    def _sweep(self, now: float) -> None:
        """Fail and drop the abandoned flights; under the lock. O(flights kept)."""
        flights = self._flights
        for digest in [d for d, f in flights.items() if now - f.started >= self.timeout]:
            flights.pop(digest).settle(None)  # its waiters have timed out already
        self._sweep_at = max(_SWEEP_MIN, 2 * len(flights))

    def join(self, digest: Hashable, owner: Hashable) -> tuple[Flight, bool, bool]:
        """Return the key's flight, whether ``owner`` owns it, and whether it is new.

        A flight older than the timeout is abandoned (its owner never landed it): the
        caller starts a new one.
        """
        with self._lock:
            flight = self._flights.get(digest)
            if flight is None or time.monotonic() - flight.started >= self.timeout:
                flight = self._flights[digest] = Flight(owner)
                if len(self._flights) > self._sweep_at:
                    self._sweep(flight.started)
            else:
                return flight, owns(flight, owner), False
        # Outside the lock: what this context owns, for the calls it makes meanwhile (the
        # latest _OWNED_MAX flights in the air; a context that misses and never updates
        # would otherwise make this list, and each join, grow without bound).
        owned = _OWNED.get()
        if owned:
            live = [f for f in owned[-_OWNED_MAX:] if f.state == _FLYING]
            _OWNED.set((*live, flight))
        else:
            _OWNED.set((flight,))
        return flight, True, True

    def peek(self, digest: Hashable) -> Flight | None:
        """The key's flight in progress, if any and not abandoned (no new one)."""
        flight = self._flights.get(digest)
        if flight is None or time.monotonic() - flight.started >= self.timeout:
            return None
        return flight

    def land(self, digest: Hashable, value: list[Generation] | None) -> None:
        """Settle the key's flight with ``value`` (``None`` fails it)."""
        with self._lock:
            flight = self._flights.pop(digest, None)
            if flight is not None:
                flight.settle(value)
        if flight is not None:
            _after(flight)

    def fail_owner(self, owner: Hashable) -> int:
        """Fail every flight ``owner`` owns; return how many. O(flights in the air)."""
        with self._lock:
            doomed = [d for d, f in self._flights.items() if f.owner == owner]
            settled = [self._flights.pop(d) for d in doomed]
            for flight in settled:
                flight.settle(None)
        for flight in settled:
            _after(flight)
        return len(settled)

    def clear(self) -> None:
        """Fail every flight (the cache was cleared: waiters call the provider)."""
        with self._lock:
            flights, self._flights = self._flights, {}
            for flight in flights.values():
                flight.settle(None)
        for flight in flights.values():
            _after(flight)

    @property
    def lock(self) -> threading.Lock:
        """The lock that guards the flights (for :meth:`Flight.await_`)."""
        return self._lock


def _after(flight: Flight) -> None:
    callback, flight.on_settle = flight.on_settle, None
    if callback is not None:
        with contextlib.suppress(Exception):  # housekeeping: a lease also expires by itself
            callback(flight.state == _FAILED)


# The flights this context owns. A call made inside the owner's provider call runs in a
# copy of its context (an asyncio task that LangChain starts for a nested ``ainvoke``, a
# thread started with the context), so it sees them and is not blocked by its own flight;
# callers that started before the flight (batch workers, gathered tasks) do not.
_OWNED: ContextVar[tuple[Flight, ...]] = ContextVar("gencache_owned_flights", default=())


def owns(flight: Flight, owner: Hashable) -> bool:
    """Whether ``owner``, in this context, owns ``flight`` (so must not wait for it)."""
    return flight.owner == owner or flight in _OWNED.get()


def owner_of_this_call() -> Hashable:
    """Who is calling: the running asyncio task, else this thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop: a plain thread
        task = None
    return ("task", id(task)) if task is not None else ("thread", threading.get_ident())


def watch_task(flights: Flights, owner: Hashable) -> None:
    """Fail ``owner``'s flights when its task finishes (only for tasks)."""
    if owner[0] != "task":  # type: ignore[index]
        return
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(lambda _t: flights.fail_owner(owner))


class Leases(Protocol):
    """What a store shared by processes adds for single-flight across them.

    A lease is a short-lived record under the entry's key with an owner token and a
    deadline: the owner holds it while it calls the provider.
    """

    def lease(self, key: Key, token: str, seconds: float) -> str | None:
        """Take the lease; return ``None`` if taken, else the holder's state
        (``"busy"`` or ``"failed"``)."""

    def release(self, key: Key, token: str, *, failed: bool) -> None:
        """End our lease; ``failed`` leaves a short "failed" mark that releases waiters."""

    def lease_state(self, key: Key) -> str | None:
        """``"busy"``, ``"failed"`` or ``None`` (no lease)."""


class HeldLeases:
    """The leases this process holds and has not released yet: entry digest -> token.

    A store's single-flight owner writes the entry before its flight settles, so the
    write can release the lease in its own round trip or transaction (:meth:`take`), and
    the settle then has nothing left to do (:meth:`released`). Thread-safe (one dict
    operation each); O(1).
    """

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}

    def hold(self, digest: str, token: str) -> None:
        """Remember that this process took the lease of ``digest`` with ``token``."""
        self._tokens[digest] = token

    def take(self, digest: str) -> str | None:
        """Our token for ``digest``'s lease, for the write that releases it; else ``None``."""
        return self._tokens.pop(digest, None)

    def give_back(self, digest: str, token: str) -> None:
        """The write that was to release the lease failed: the settle releases it."""
        self._tokens[digest] = token

    def released(self, digest: str, token: str, *, failed: bool) -> bool:
        """Whether the settle of lease ``token`` has nothing to do (its write released it).

        Otherwise the lease is forgotten here, and the caller releases it in the store.
        A failure is always written (its mark releases other processes' waiters).
        """
        if self._tokens.get(digest) != token:
            return not failed
        self._tokens.pop(digest, None)
        return False


# -- the LangChain hook that reports an owner's failure -------------------------------------

_registry: weakref.WeakSet[Flights] = weakref.WeakSet()
_registry_lock = threading.Lock()
_hooked = False


#: When the LLM run of this context started (monotonic), set by the watcher below: an
#: update in the same run knows how long the provider took (lookup + call), for savings.
RUN_STARTED: ContextVar[float | None] = ContextVar("gencache_run_started", default=None)


def provider_seconds() -> float | None:
    """Seconds since this context's LLM run started, or ``None`` outside a watched run."""
    started = RUN_STARTED.get()
    return None if started is None else time.monotonic() - started


class _FlightWatcher(BaseCallbackHandler):
    """Times LLM runs, notes usage given in ``llm_output`` only, fails failed owners' flights.

    Inline (in the run's own thread or task), never raises, holds no state.
    """

    run_inline = True
    raise_error = False

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        RUN_STARTED.set(time.monotonic())
        note_start(kwargs.get("run_id"), kwargs.get("batch_size"))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        note_end(response, kwargs.get("run_id"))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        RUN_STARTED.set(time.monotonic())

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        owner = owner_of_this_call()
        with _registry_lock:
            registered = list(_registry)
        for flights in registered:
            flights.fail_owner(owner)


# The default is the handler itself, on purpose: LangChain adds a hook's handler to a run
# when ``var.get()`` is not None, and a default reaches every context (new threads too).
# The handler holds no state, so sharing it is safe.
_watcher_var: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "gencache_flight_watcher",
    default=_FlightWatcher(),  # noqa: B039
)


def _watch(flights: Flights) -> None:
    with _registry_lock:
        _registry.add(flights)
    watch_runs()


def watch_runs() -> None:
    """Add the watcher to every LangChain run from now on (once per process).

    Registered by the first cache built, not at import: ``import gencache`` changes
    nothing in LangChain.
    """
    global _hooked  # noqa: PLW0603
    with _registry_lock:
        if _hooked:
            return
        _hooked = True
    from langchain_core.tracers.context import register_configure_hook

    register_configure_hook(_watcher_var, inheritable=True)


Reader = Callable[[Key], "list[Generation] | None"]
AsyncReader = Callable[[Key], Awaitable["list[Generation] | None"]]


class SingleFlight:
    """The single-flight step of the cache template: flights here, leases in the store.

    Args:
        timeout: ``flight_timeout``: the longest a waiter waits, and a lease's deadline.
        leases: The store's leases, for processes sharing it, or ``None``.
    """

    def __init__(self, timeout: float, leases: Leases | None) -> None:
        self.flights = Flights(timeout)
        self.timeout = timeout
        self._leases = leases
        self._poll_interval = min(0.05, timeout / 10)
        self._log = RateLimitedLog(_log)

    def waiting(self, digest: Hashable, owner: Hashable) -> Flight | None:
        """Another caller's flight of ``digest`` to wait for, before reading the store."""
        flight = self.flights.peek(digest)
        return flight if flight is not None and not owns(flight, owner) else None

    def wait(self, flight: Flight) -> list[Generation] | None:
        """Block this thread until ``flight`` settles or the timeout passes: its answer."""
        return flight.wait(self.timeout, self.flights.lock)

    def local_miss(
        self, flight_key: Hashable, owner: Hashable
    ) -> tuple[list[Generation] | None, float | None]:
        """:meth:`miss` for a cache no other process shares: no lease, nothing to poll.

        Returns:
            ``(answer, its provider seconds)``; no answer: the caller pays.
        """
        flight, mine, _ = self.flights.join(flight_key, owner)
        if mine:
            return None, None
        return self.wait(flight), flight.seconds

    async def alocal_miss(
        self, flight_key: Hashable, owner: Hashable
    ) -> tuple[list[Generation] | None, float | None]:
        """:meth:`local_miss` for a task: never blocks the event loop."""
        flight, mine, new = self.flights.join(flight_key, owner)
        if not mine:
            return await flight.await_(self.timeout, self.flights.lock), flight.seconds
        if new:
            watch_task(self.flights, owner)  # the task ends without an update: it fails
        return None, None

    def miss(
        self, key: Key, owner: Hashable, read: Reader
    ) -> tuple[list[Generation] | None, float | None, bool]:
        """After a store miss: own the flight, or wait for its owner.

        Returns:
            ``(answer, its provider seconds, whether it was read from the store)``;
            no answer: the caller pays (it owns the flight, or the owner failed).
        """
        flight, mine, new = self.flights.join(key.digest, owner)
        if not mine:
            return self.wait(flight), flight.seconds, False
        token = self._lease(key, flight) if new else None
        if token is None:
            return None, None, False
        value = self._poll(key, read, time.monotonic() + self.timeout)
        self.flights.land(key.digest, value)  # this process's waiters get the same answer
        return value, None, value is not None

    async def amiss(
        self, key: Key, owner: Hashable, read: AsyncReader
    ) -> tuple[list[Generation] | None, float | None, bool]:
        """:meth:`miss` for a task: never blocks the event loop."""
        flight, mine, new = self.flights.join(key.digest, owner)
        if not mine:
            return await flight.await_(self.timeout, self.flights.lock), flight.seconds, False
        if not new:
            return None, None, False
        watch_task(self.flights, owner)  # the task ends without an update: its flight fails
        if self._leases is None:
            return None, None, False
        token = await asyncio.to_thread(self._lease, key, flight)
        if token is None:
            return None, None, False
        value = await self._apoll(key, read, time.monotonic() + self.timeout)
        self.flights.land(key.digest, value)
        return value, None, value is not None

    def _lease(self, key: Key, flight: Flight) -> str | None:
        """Take the store's lease: ``None`` if ours (we pay), else the token we polled for."""
        leases = self._leases
        if leases is None:
            return None
        token = f"{os.getpid()}:{id(flight)}"
        try:
            state = leases.lease(key, token, self.timeout)
        except Exception as exc:  # no lease: this process pays, as without single-flight
            self._log.warning("lease", "gencache: single-flight lease failed: %s", exc)
            return None
        if state is None:  # ours: the owner's update (or failure) releases it
            flight.on_settle = lambda failed: leases.release(key, token, failed=failed)
            return None
        return token

    def _poll(self, key: Key, read: Reader, deadline: float) -> list[Generation] | None:
        """Wait for another process's answer: the entry, or its lease gone or failed."""
        assert self._leases is not None
        while time.monotonic() < deadline:
            time.sleep(self._poll_interval)
            try:
                value = read(key)
                if value is not None:
                    return value
                if self._leases.lease_state(key) != "busy":
                    return None  # released without an answer, or failed: pay yourself
            except Exception:  # the store failed: stop waiting, pay
                return None
        return None

    async def _apoll(self, key: Key, read: AsyncReader, deadline: float) -> list[Generation] | None:
        assert self._leases is not None
        while time.monotonic() < deadline:
            await asyncio.sleep(self._poll_interval)
            try:
                value = await read(key)
                if value is not None:
                    return value
                if await asyncio.to_thread(self._leases.lease_state, key) != "busy":
                    return None
            except Exception:
                return None
        return None
