"""The Redis near cache: an in-process LRU of decoded hits, kept coherent by Redis.

redis-py's own client-side caching needs Redis 7.4+; this works from Redis 6 on, with
``CLIENT TRACKING ... BCAST`` and the ``__redis__:invalidate`` channel. Used by
:class:`gencache.redis.RedisCache` only.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis.exceptions as rexc
from langchain_core.outputs import Generation

from gencache._base import _RateLimitedLog

__all__ = ["NearCache"]

_log = logging.getLogger(__name__)
_Pair = tuple[str, str]
_HEARTBEAT = 1.0  # seconds of silence before the invalidation listener pings the server


class NearCache:
    """An in-process LRU of decoded hits, kept coherent by Redis invalidation messages.

    A daemon thread holds one RESP2 connection that ran ``CLIENT TRACKING ON REDIRECT
    <itself> BCAST PREFIX <namespace>:`` and subscribed to ``__redis__:invalidate``, so
    Redis reports every write, delete, expiry and flush in the namespace, by any client.
    A lookup reserves its key before its ``GET`` and fills the entry only if no
    invalidation of that key came meanwhile; nothing is reserved while the stream is down.
    """

    def __init__(
        self, maxsize: int, connect: Callable[[], Any], prefix: str, scrub: Callable[[str], str]
    ) -> None:
        self.maxsize = maxsize
        self._connect, self._prefix, self._scrub = connect, prefix, scrub
        self._data: OrderedDict[_Pair, tuple[list[Generation], float, str]] = OrderedDict()
        self._index: dict[str, _Pair] = {}  # redis key -> pair
        self._pending: dict[str, object] = {}  # redis key -> token of a lookup in flight
        self._live = self._restart = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._log = _RateLimitedLog(_log)
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))
        threading.Thread(target=self._listen, name="gencache-redis-near", daemon=True).start()

    def after_fork(self) -> None:
        # The listener thread did not follow us into the child: restart it on a miss.
        self._lock = threading.Lock()
        self._clear()
        self._live, self._restart = False, not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()

    def get(self, pair: _Pair) -> list[Generation] | None:
        with self._lock:
            item = self._data.get(pair)
            if item is None:
                return None
            if item[1] <= time.time():
                self._drop(item[2])
                return None
            self._data.move_to_end(pair)
            return item[0]

    def reserve(self, rkey: str) -> object:
        with self._lock:
            if self._restart:
                self._restart = False
                threading.Thread(target=self._listen, daemon=True).start()
            if not self._live:
                return None
            token = self._pending[rkey] = object()
            return token

    def fill(
        self, pair: _Pair, rkey: str, token: object, value: list[Generation] | None, expires: float
    ) -> None:
        """End a reservation, keeping ``value`` if no invalidation came since it began."""
        if token is None:
            return
        with self._lock:
            if self._pending.get(rkey) is not token:
                return
            del self._pending[rkey]
            if value is None or expires <= time.time():
                return
            self._data[pair] = (value.copy(), expires, rkey)
            self._data.move_to_end(pair)
            self._index[rkey] = pair
            while len(self._data) > self.maxsize:
                self._index.pop(self._data.popitem(last=False)[1][2], None)

    def invalidate(self, rkeys: list[str] | None) -> None:
        """Forget the given Redis keys, or everything if ``None``."""
        with self._lock:
            if rkeys is None:
                self._clear()
            for rkey in rkeys or ():
                self._pending.pop(rkey, None)
                self._drop(rkey)

    def _clear(self) -> None:
        self._data.clear()
        self._index.clear()
        self._pending.clear()

    def _drop(self, rkey: str) -> None:
        pair = self._index.pop(rkey, None)
        if pair is not None:
            del self._data[pair]

    def _listen(self) -> None:
        delay = 0.05
        while not self._closed.is_set():
            conn = None
            try:
                conn = self._connect()
                conn.connect()
                conn.send_command("CLIENT", "ID")
                me = conn.read_response()
                tracking = ("TRACKING", "ON", "REDIRECT", me, "BCAST", "PREFIX", self._prefix)
                conn.send_command("CLIENT", *tracking)
                conn.read_response()
                conn.send_command("SUBSCRIBE", "__redis__:invalidate")
                conn.read_response()
                with self._lock:
                    self._live, delay = True, 0.05
                self._pump(conn)
            except Exception as exc:  # the listener never dies: it reconnects
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
                if conn is not None:
                    conn.disconnect()
            self._closed.wait(delay)
            delay = min(2 * delay, 1.0)

    def _pump(self, conn: Any) -> None:
        pinged = False
        while not self._closed.is_set():
            if conn.can_read(timeout=_HEARTBEAT):
                reply, pinged = conn.read_response(), False
                if isinstance(reply, list) and reply[0] == b"message":
                    keys = reply[2]  # None when the database was flushed
                    self.invalidate(keys and [k.decode(errors="replace") for k in keys])
            elif pinged:  # no pong for a whole heartbeat: a silent network
                msg = "no reply to PING"
                raise rexc.TimeoutError(msg)
            else:
                conn.send_command("PING")
                pinged = True


def _after_fork(ref: weakref.ref[NearCache]) -> None:
    near = ref()
    if near is not None:
        near.after_fork()
