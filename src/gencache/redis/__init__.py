"""``RedisCache``: one LLM cache shared by a fleet of workers, on Redis or Redis Cluster.

Needs the ``redis`` extra (``pip install 'gencache[redis]'``); ``import gencache`` alone
never imports redis. The package: this module (the cache: configuration and lifecycle),
``_store`` (raw I/O and the key layout), ``_clients`` (URLs, pools, errors), ``_lane``
(the kept-connection fast path) and ``_near`` (the near cache, a front layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from typing import TYPE_CHECKING, cast

try:
    import redis.asyncio as aioredis
    from redis.client import Redis
    from redis.cluster import RedisCluster
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "gencache.RedisCache needs the redis package: pip install 'gencache[redis]'"
    raise ImportError(msg, name="redis") from exc

from gencache._cache import CacheOptions, check_scope
from gencache._store import StoreCache
from gencache._ttl import check_seconds, check_ttl
from gencache.redis._clients import (
    MAX_CONNECTIONS,
    AsyncClient,
    Gate,
    Redactor,
    SyncClient,
    async_client_for_url,
    check_async_client,
    check_namespace,
    check_url,
    listener_client,
    queue_wait,
    sync_pool_for_url,
)
from gencache.redis._lane import Lane
from gencache.redis._lease import RedisLeases
from gencache.redis._near import NearCache
from gencache.redis._savings import RedisSavings
from gencache.redis._store import AsyncLink, RedisStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["RedisCache"]

_NEAR_SIZE = 1_024
_IDLE = MAX_CONNECTIONS // 4  # connections a lane keeps out of the pool between calls
_MAX_SOCKET_TIMEOUT = 3_600.0  # larger values overflow the socket layer


class RedisCache(StoreCache):
    """A drop-in for ``langchain_community.cache.RedisCache``, shared by every worker.

    Entries live under ``{namespace}:...`` (see :mod:`gencache.redis._store`); :meth:`clear`
    deletes only this namespace's entries (``SCAN`` + ``UNLINK``, never ``FLUSHDB``), or one
    scope's with ``clear(scope=...)``. Works with one server (a ``redis://``, ``rediss://``
    or ``unix://`` URL, or a ``redis.Redis``) and with ``redis.RedisCluster`` (every
    command touches one key: no cross-slot commands). LangChain's spelling
    ``RedisCache(redis_=client, ttl=...)`` works too. Clients built with
    ``decode_responses=True`` (or a URL with ``?decode_responses=true``) are accepted:
    gencache reads its values and keys as bytes whatever the client decodes. Each value is
    one JSON document (generations, prompt, llm_string, times) that ``redis-cli GET``
    shows as is; :meth:`redis_key` names the key of a pair.

    Thread and process safety: every method may be called from any thread, asyncio task,
    process and host; Redis serialises writes (the last ``update`` of a key wins). Async
    methods use ``redis.asyncio`` natively when the cache is built from a URL (one pool per
    event loop) or given ``async_client``; with only a sync client they use a thread.

    Costs: ``lookup`` is one ``GET`` and ``update`` one ``SET`` (a round trip each, plus
    SHA-256 of the pair and the codec). ``clear``, ``len()``, :meth:`stats` and
    :meth:`entries` ``SCAN`` the whole database: O(keys in the database), 1,000 per call.
    Statistics count this process's calls; ``size`` counts the namespace in Redis.

    Outages: clients built from a URL time out after ``socket_timeout`` (connect and read)
    and retry a refused connection once, without sleeping: a call costs at most about
    ``socket_timeout`` (0.5 s) while Redis hangs, and next to nothing while it is down.
    Each pool holds at most 64 connections; a burst of calls beyond that queues, in order,
    for up to ``max(30, 20 * socket_timeout)`` seconds (local contention is not an outage:
    2,000 tasks of 10 calls each lose nothing). An event loop that lags by more than
    ``socket_timeout`` (thousands of tasks on a busy machine) makes redis-py's timeouts
    fire: raise ``socket_timeout`` for such loads. Sync calls keep up to 16 connections between
    calls, skipping redis-py's per-call dispatch and pool bookkeeping (about 35 µs of a
    hit). Clients you pass keep their own settings (redis-py's defaults, 5 s and 10
    retries, are slow for a cache). By default a failing server makes lookups misses and
    writes no-ops, with a rate-limited warning; ``strict=True`` raises
    :class:`~gencache.errors.BackendUnavailableError` (unreachable, timed out) or
    :class:`~gencache.errors.BackendError`. The cache recovers by itself when the server
    is back. Passwords never appear in ``repr``, logs or error messages.

    Near cache (``near_cache=True`` or a size; single server only): an in-process LRU of
    decoded hits, answered without a round trip (the same ``Generation`` objects on each
    hit, as with ``InMemoryCache``: treat them as read-only), kept coherent through
    invalidation messages (``CLIENT TRACKING ... BCAST`` on one redis-py ``PubSub``
    connection, Redis >= 6). This process's writes and clears are seen at once; another
    client's once its message arrives (a few hundred µs on loopback). While that stream is
    down (a closed connection is seen at once, a silent one within ~2 s) the near cache is
    empty and bypassed; it comes back with the server.

    Args:
        url_or_client: A Redis URL, or a ``redis.Redis`` / ``redis.RedisCluster`` (whose
            own timeouts and retries apply).
        redis_: LangChain's name for a client; give it or ``url_or_client``, not both.
        ttl: Seconds an entry lives after it is written (Redis expires it), or ``None``.
        namespace: Prefix of this cache's keys; caches with one namespace share entries.
            Must be non-empty, without ``* ? [ ] \\``.
        strict: Raise :class:`~gencache.errors.BackendError` instead of degrading.
        near_cache: ``False``, ``True`` (1,024 entries) or the near cache's size.
        async_client: A ``redis.asyncio`` client for the async methods.
        socket_timeout: Connect and read timeout, in seconds, of clients built from a URL
            (at most an hour; larger values overflow the socket layer).

        **options: The options of every backend (:class:`~gencache._cache.CacheOptions`):
            ``canonical_keys``, ``admit``, ``single_flight``, ``flight_timeout``,
            ``prices``, ``zero_usage_on_hit``, ``mark_hits``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``ttl``, ``namespace``, ``near_cache``, ``socket_timeout`` or the
            URL is invalid.
    """

    def __init__(
        self,
        url_or_client: str | SyncClient | None = None,
        *,
        redis_: SyncClient | None = None,
        ttl: float | None = None,
        namespace: str = "gencache",
        strict: bool = False,
        near_cache: bool | int = False,
        async_client: AsyncClient | None = None,
        socket_timeout: float = 0.5,
        **options: Unpack[CacheOptions],
    ) -> None:
        ttl = check_ttl(ttl)
        self._namespace = check_namespace(namespace)
        self._timeout = check_seconds("socket_timeout", socket_timeout)
        if self._timeout > _MAX_SOCKET_TIMEOUT:
            msg = (
                f"socket_timeout must be at most {_MAX_SOCKET_TIMEOUT:g} s, not {socket_timeout!r}"
            )
            raise ValueError(msg)
        if redis_ is not None:
            if url_or_client is not None:
                msg = "give url_or_client or redis_, not both"
                raise TypeError(msg)
            url_or_client = redis_
        self._url: str | None = None
        self._lane: Lane | None = None
        client: SyncClient
        given = cast("object", url_or_client)  # checked at run time: callers pass anything
        if isinstance(given, str):
            self._url = check_url(given)
            self._redactor = Redactor.for_url(self._url)
            pool = sync_pool_for_url(self._url, self._timeout, self._redactor)
            client = Redis(connection_pool=pool)
            # Older redis-py (no should_reconnect; get_connection wants a command): Redis.get.
            if hasattr(pool.connection_class, "should_reconnect"):
                self._lane = Lane(pool, _IDLE)
        elif isinstance(given, (Redis, RedisCluster)):
            client, self._redactor = given, Redactor.for_client(given)
        elif isinstance(given, (aioredis.Redis, aioredis.RedisCluster)):
            msg = (
                "url_or_client is a redis.asyncio client: pass it as async_client=, with a "
                "sync client or URL for the sync methods (or a URL alone: both are built)"
            )
            raise TypeError(msg)
        else:
            msg = f"url_or_client must be a Redis URL or client, not {type(given).__name__}"
            raise TypeError(msg)
        self._client = client
        given_async = check_async_client(async_client)
        self._given: AsyncLink | None = None
        if given_async is not None:
            self._given = (given_async, contextlib.nullcontext())  # its pool, its rules
        self._aclients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aioredis.Redis, Gate]
        ]
        self._aclients = weakref.WeakKeyDictionary()
        self._near = self._make_near(near_cache)
        lane = self._lane
        leases = RedisLeases(client, self._namespace + ":", self._redactor, lane)
        self._redis = RedisStore(
            client,
            namespace=self._namespace,
            redactor=self._redactor,
            fetch=None if lane is None else lane.get,
            store=None if lane is None else lane.set,
            async_client=self._aclient,
            leases=leases,
            lane=lane,
        )
        super().__init__(
            self._redis,
            strict=strict,
            ttl=ttl,
            front=self._near,
            **options,
            leases=leases,
            savings=RedisSavings(client, self._namespace + ":", self._redactor),
        )

    def _make_near(self, near_cache: object) -> NearCache | None:
        if not isinstance(near_cache, int):
            msg = f"near_cache must be a bool or an int, not {type(near_cache).__name__}"
            raise TypeError(msg)
        size = _NEAR_SIZE if near_cache is True else int(near_cache)
        if size < 0 or (size == 0 and near_cache is not False):
            msg = f"near_cache must be a bool or a size greater than 0, not {near_cache!r}"
            raise ValueError(msg)
        if not size:
            return None
        if not isinstance(self._client, Redis):
            msg = "near_cache needs a single Redis server; it is not supported with RedisCluster"
            raise ValueError(msg)
        near = NearCache(
            size,
            functools.partial(listener_client, self._client.connection_pool, self._timeout),
            self._namespace + ":",
            self._timeout,
            self._redactor.scrub,
        )
        weakref.finalize(self, near.close)
        return near

    def _aclient(self) -> AsyncLink | None:
        if self._given is not None or self._url is None:
            return self._given
        loop = asyncio.get_running_loop()  # asyncio connections belong to one event loop
        link = self._aclients.get(loop)
        if link is None:
            client = async_client_for_url(self._url, self._timeout)
            link = self._aclients[loop] = (client, Gate(queue_wait(self._timeout)))
        return link

    def redis_key(self, prompt: str, llm_string: str, *, scope: str | None = None) -> str:
        """The Redis key an entry for the pair is stored under (for ``redis-cli``).

        Raises:
            TypeError: If a part is not a ``str``.
        """
        return self._redis.rkey(self._key(prompt, llm_string, check_scope(scope)))

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives after it is written, or ``None``."""
        return self._ttl

    @property
    def namespace(self) -> str:
        """The prefix of this cache's keys."""
        return self._namespace

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._redactor.where!r}, namespace={self._namespace!r}, "
            f"ttl={self._ttl!r}, strict={self._strict!r}, "
            f"near_cache={self._near.maxsize if self._near else 0})"
        )

    def close(self) -> None:
        """Write pending savings, stop the near cache and close the connections built
        from a URL. Idempotent.

        The cache stays usable: it reconnects on the next call, without near cache.
        """
        self.flush()  # else they are written at exit, through a connection made again
        if self._near is not None:
            self._near.close()
        if self._lane is not None:
            self._lane.close()
        if self._url is not None:
            self._client.close()
            # The client was given our pool, so its close() leaves the pool's sockets open.
            pool = getattr(self._client, "connection_pool", None)  # a cluster has none
            if pool is not None:
                pool.disconnect()
        self._aclients.clear()

    async def aclose(self) -> None:
        """:meth:`close`, and close the connections of the running event loop first."""
        link = self._aclients.pop(asyncio.get_running_loop(), None)
        if link is not None:
            await link[0].aclose(close_connection_pool=True)
        self.close()
