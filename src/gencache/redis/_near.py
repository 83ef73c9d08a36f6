"""The Redis near cache: an in-process LRU of decoded hits, kept coherent by Redis.

A :class:`~gencache._protocol.FrontLayer` keyed by entry digest. redis-py's own
client-side caching needs Redis 7.4+; this works from Redis 6 on, with
``CLIENT TRACKING ... BCAST`` and redis-py's ``PubSub`` on ``__redis__:invalidate``.

Why the tracking is switched on over the ``PubSub`` connection itself (``REDIRECT`` to
its own id) rather than with ``Redis.client_tracking_on`` on a second connection: Redis
tells nobody when a tracking connection goes away (``CLIENT KILL``, the server's idle
``timeout``, a proxy), and until the listener noticed, writes went unreported: measured,
0.99 s of stale hits after such a drop, against none with one connection, which the
listener sees close. Invalidation latency and CPU per message are the same either way
(docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis.exceptions as rexc
from redis.client import PubSub, Redis

from gencache._generations import Generations
from gencache._log import RateLimitedLog
from gencache._protocol import FrontHit

__all__ = ["NearCache"]

_log = logging.getLogger(__name__)
_CHANNEL = "__redis__:invalidate"
_DIGEST = 64  # hex characters at the end of each of our keys
# Seconds of silence before the listener pings, and again before it gives up: redis-py
# notices a closed connection, not a silent one (a frozen server, a lost network).
_HEARTBEAT = 1.0


class NearCache:
    """An in-process LRU of decoded hits, kept coherent by Redis invalidation messages.

    A daemon thread holds one redis-py ``PubSub`` whose connection ran ``CLIENT TRACKING
    ON REDIRECT <itself> BCAST PREFIX <namespace>:`` and subscribed to
    ``__redis__:invalidate``, so Redis reports every write, delete, expiry and flush in the
    namespace, by any client. A lookup reserves its key before its ``GET`` and fills the
    entry only if no invalidation of that key came meanwhile; nothing is reserved while
    the stream is down, and the cache is emptied whenever it goes down. Thread-safe; a
    forked child starts with an empty cache and a listener of its own.

    Args:
        maxsize: Entries kept (least recently used first out).
        client: Builds the listener's client: RESP2, bytes, its own one-connection pool,
            no retries (any error must reach the listener, which then starts over).
        prefix: The key prefix to track (``namespace:``).
        timeout: Seconds the listener waits for each reply while setting up.
        scrub: Removes secrets from a message before it is logged.
    """

    def __init__(
        self,
        maxsize: int,
        client: Callable[[], Redis],
        prefix: str,
        timeout: float,
        scrub: Callable[[str], str],
    ) -> None:
        self.maxsize = maxsize
        self._client, self._prefix, self._timeout, self._scrub = client, prefix, timeout, scrub
        self._data: OrderedDict[str, tuple[FrontHit, float]] = OrderedDict()
        self._pending: dict[str, object] = {}  # digest -> token of a lookup in flight
        self._live = self._restart = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._log = RateLimitedLog(_log)
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))
        self._start()

    def _start(self) -> None:
        threading.Thread(target=self._listen, name="gencache-redis-near", daemon=True).start()

    def after_fork(self) -> None:
        # The listener thread did not follow us into the child: restart it on a miss.
        self._lock = threading.Lock()
        self._clear()
        self._live, self._restart = False, not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()

    def get(self, digest: str) -> FrontHit | None:
        with self._lock:
            item = self._data.get(digest)
            if item is None:
                return None
            if item[1] <= time.time():
                del self._data[digest]
                return None
            self._data.move_to_end(digest)
            return item[0]

    def reserve(self, digest: str) -> object:
        with self._lock:
            if self._restart:
                self._restart = False
                self._start()
            if not self._live:
                return None
            token = self._pending[digest] = object()
            return token

    def fill(
        self,
        digest: str,
        token: object,
        hit: FrontHit | None,
        expires_at: float | None,
    ) -> None:
        """End a reservation, keeping ``hit`` if no invalidation came since it began (its
        generations as a read-only copy, which every later hit returns as it is)."""
        if token is None:
            return
        expires = math.inf if expires_at is None else expires_at
        with self._lock:
            if self._pending.get(digest) is not token:
                return
            del self._pending[digest]
            if hit is None or expires <= time.time():
                return
            self._data[digest] = (hit._replace(generations=Generations(hit.generations)), expires)
            self._data.move_to_end(digest)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def invalidate(self, digests: list[str] | None) -> None:
        """Forget the given digests, or everything if ``None``."""
        with self._lock:
            if digests is None:
                self._clear()
            for digest in digests or ():
                self._pending.pop(digest, None)
                self._data.pop(digest, None)

    def _clear(self) -> None:
        self._data.clear()
        self._pending.clear()

    # -- the listener thread ----------------------------------------------------------------

    def _listen(self) -> None:
        delay = 0.05
        while not self._closed.is_set():
            client = pubsub = None
            try:
                client = self._client()
                pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]  # typed in redis-py >= 8.2
                self._subscribe(pubsub)
                with self._lock:
                    self._live, delay = True, 0.05
                self._pump(pubsub)
            except Exception as exc:  # the listener never dies: it starts over
                if self._closed.is_set():
                    break
                detail = self._scrub(f"{type(exc).__name__}: {exc}")
                self._log.warning(
                    "near", "gencache: near cache off until Redis is back: %s", detail
                )
            finally:
                with self._lock:
                    self._live = False
                    self._clear()
                if pubsub is not None:
                    pubsub.close()
                if client is not None:
                    client.close()
            self._closed.wait(delay)
            delay = min(2 * delay, 1.0)

    def _subscribe(self, pubsub: PubSub) -> None:
        """Track the namespace on ``pubsub``'s own connection, then subscribe."""
        # Before SUBSCRIBE: a subscribed RESP2 connection takes no other commands.
        pubsub.execute_command("CLIENT", "ID")  # type: ignore[no-untyped-call]
        me = self._reply(pubsub)
        tracking = ("TRACKING", "ON", "REDIRECT", me, "BCAST", "PREFIX", self._prefix)
        pubsub.execute_command("CLIENT", *tracking)  # type: ignore[no-untyped-call]
        self._reply(pubsub)
        pubsub.subscribe(_CHANNEL)
        message = pubsub.get_message(timeout=self._timeout)
        if message is None or message["type"] != "subscribe":
            msg = f"no confirmation of SUBSCRIBE {_CHANNEL}"
            raise rexc.TimeoutError(msg)

    def _reply(self, pubsub: PubSub) -> Any:
        reply = pubsub.parse_response(block=False, timeout=self._timeout)  # type: ignore[no-untyped-call]
        if reply is None:
            msg = "no reply while setting up invalidation tracking"
            raise rexc.TimeoutError(msg)
        if isinstance(reply, rexc.ResponseError):
            raise reply
        return reply

    def _pump(self, pubsub: PubSub) -> None:
        pinged = False
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=_HEARTBEAT)
            if message is None:
                if pinged:  # no pong for a whole heartbeat: a silent network
                    msg = "no reply to PING"
                    raise rexc.TimeoutError(msg)
                pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] == "message":
                keys = message["data"]  # None when the database was flushed
                self.invalidate(keys and [_digest(k) for k in keys])


def _after_fork(ref: weakref.ref[NearCache]) -> None:
    near = ref()
    if near is not None:
        near.after_fork()


def _digest(rkey: bytes) -> str:
    """The digest a Redis key of ours ends with (``prefix:tag:digest``)."""
    return rkey[-_DIGEST:].decode("ascii", "replace")
