"""Single-flight: identical concurrent misses make one provider call.

The flights themselves (who pays for which key now, who waits) are in
:mod:`gencache._flights`. This module is the single-flight step of the cache template
(:class:`SingleFlight`): a miss claims the key's flight or waits for it, and across
processes (SQLite, Redis) the owner also holds a *lease* in the store (a row or a
``SET NX PX`` key with an owner token and a deadline); see :class:`Leases`.

Failure: when the owner's provider call fails, its waiters are released at once and
call the provider themselves, together, never one after another. The failure is seen
through LangChain's own callback machinery (:mod:`gencache._runs`: its ``on_llm_error``
fails the flights that the failing thread or task owns); an owner task that finishes
without landing fails its flights too; ``flight_timeout`` bounds every wait (the
backstop for an owner that vanished without a signal, or a caller that looks up and
never updates).

A thread or task that owns a flight and looks the key up again is not blocked by
itself. Waiting never blocks an event loop: async waiters await a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Protocol

from langchain_core.outputs import Generation

from gencache._flights import Flight, Flights, owns
from gencache._log import RateLimitedLog
from gencache._protocol import Key

__all__ = [
    "STREAM_LOOKUP",
    "HeldLeases",
    "Leases",
    "SingleFlight",
    "watch_task",
]

_log = logging.getLogger(__name__)


#: Set while a cached stream looks its key up: LangChain runs each step of a chain's
#: ``astream`` in a task of its own, so the task that claims a stream's flight ends after
#: the first chunk; the stream itself lands or releases its flight (gencache._stream_entry).
STREAM_LOOKUP: ContextVar[bool] = ContextVar("gencache_stream_lookup", default=False)


def watch_task(flights: Flights, owner: Hashable) -> None:
    """Fail ``owner``'s flights when its task finishes (only for tasks).

    Once per task and ``flights``: a long-lived task that misses often adds one callback.
    """
    if type(owner) is not tuple or STREAM_LOOKUP.get():  # a thread, or a stream's lookup
        return
    task = asyncio.current_task()
    if task is not None and flights.watch(task):
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
        if self.flights.claim(flight_key, owner):
            return None, None
        flight, mine, _ = self.flights.join(flight_key, owner)
        if mine:
            return None, None
        return self.wait(flight), flight.seconds

    async def alocal_miss(
        self, flight_key: Hashable, owner: Hashable
    ) -> tuple[list[Generation] | None, float | None]:
        """:meth:`local_miss` for a task: never blocks the event loop."""
        if self.flights.claim(flight_key, owner):
            watch_task(self.flights, owner)  # the task ends without an update: it fails
            return None, None
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
        if new and self.flights.recently_landed(key.digest):
            # Our store read may have come just before the last owner's write landed.
            with contextlib.suppress(Exception):  # a failed read: pay, as on any miss
                value = read(key)
                if value is not None:
                    self.flights.land(key.digest, value)  # our own waiters get it too
                    return value, None, True
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
        if self.flights.recently_landed(key.digest):  # as in miss()
            with contextlib.suppress(Exception):
                value = await read(key)
                if value is not None:
                    self.flights.land(key.digest, value)
                    return value, None, True
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
