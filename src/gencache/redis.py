"""``RedisCache``: one LLM cache shared by a fleet of workers, on Redis or Redis Cluster.

Needs the ``redis`` extra (``pip install 'gencache[redis]'``); ``import gencache`` alone
never imports redis.

Layout: one Redis string per entry, under ``{namespace}:{digest}`` (``digest`` from
:func:`gencache._keys.digest`): a fixed binary header (magic, ``created_at``,
``expires_at``, two lengths), the UTF-8 prompt and llm_string, then the codec payload.
It is written by one ``SET ... PX`` (value and TTL in one atomic command) and read by one
``GET``. A hash was measured and rejected: ``HGET`` is no faster than ``GET``, and a hash
with a TTL needs ``HSET`` + ``PEXPIRE`` in ``MULTI``, about 1.4x slower than ``SET PX``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import os
import struct
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from langchain_core.outputs import Generation

from gencache._base import Entry, StoreCache
from gencache._keys import check_key, digest
from gencache._ttl import check_seconds, check_ttl
from gencache.errors import BackendError, BackendUnavailableError

try:
    import redis.asyncio as aioredis
    import redis.exceptions as rexc
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.client import Redis
    from redis.cluster import RedisCluster
    from redis.connection import BlockingConnectionPool
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "gencache.RedisCache needs the redis package: pip install 'gencache[redis]'"
    raise ImportError(msg, name="redis") from exc

from gencache._near import NearCache  # after the check above: it needs redis

__all__ = ["RedisCache"]

_log = logging.getLogger(__name__)

SyncClient = Redis | RedisCluster
AsyncClient = aioredis.Redis | aioredis.RedisCluster
_Pair = tuple[str, str]

_MAGIC = b"gc1\x00"
_HEADER = struct.Struct(">4sddII")  # magic, created_at, expires_at (inf: never), lengths
_BATCH = 1_000  # SCAN COUNT and UNLINK batch size
_MAX_CONNECTIONS = 64  # per pool we build: a burst of tasks queues instead of flooding Redis
_NEAR_SIZE = 1_024
_IDLE = _MAX_CONNECTIONS // 4  # connections _Lane keeps out of the pool between GETs
# GET <key> as RESP sends it (RESP2 and RESP3 alike): what redis-py's packer builds, ~3 µs less.
_GET = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
_FOREIGN = b"\x00not a gencache string"  # stands for a key of another type: undecodable
# Prefixed to what _get returns for a value that is not this key's: the codec refuses it at
# its first byte, and _delete strips it again before the compare-and-delete.
_REJECT = b"\x00"
_TAIL = 64  # bytes of such a value kept for the compare-and-delete (a suffix match)
# Compare-and-delete: drop the key only while it still holds the undecodable value.
_DELETE = """local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return 0 end
if t == 'string' then
  local v = redis.call('GET', KEYS[1])
  if v ~= ARGV[1] and string.sub(v, #v - #ARGV[1] + 1) ~= ARGV[1] then return 0 end
end
return redis.call('UNLINK', KEYS[1])"""
_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, OSError)
_ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError)
# The expiry of the value that the last _get/_aget of this thread or task returned.
_EXPIRES: contextvars.ContextVar[float] = contextvars.ContextVar("gencache_expires", default=0.0)


class RedisCache(StoreCache):
    """A drop-in for ``langchain_community.cache.RedisCache``, shared by every worker.

    Entries live under ``{namespace}:{sha256}``; :meth:`clear` deletes only this namespace
    (``SCAN`` + ``UNLINK``, never ``FLUSHDB``). Works with one server (a ``redis://``,
    ``rediss://`` or ``unix://`` URL, or a ``redis.Redis``) and with ``redis.RedisCluster``
    (every command touches one key: no cross-slot commands). LangChain's spelling
    ``RedisCache(redis_=client, ttl=...)`` works too.

    Thread and process safety: every method may be called from any thread, asyncio task,
    process and host; Redis serialises writes (the last ``update`` of a key wins). Async
    methods use ``redis.asyncio`` natively when the cache is built from a URL (one pool per
    event loop) or given ``async_client``; with only a sync client they use a thread.

    Costs: ``lookup`` is one ``GET`` and ``update`` one ``SET`` (a round trip each, plus
    SHA-256 of the pair and the codec; a hit also compares the stored pair with the asked
    one, byte for byte). ``clear``, ``len()``, :meth:`stats` and :meth:`entries` ``SCAN``
    the whole database: O(keys in the database), 1,000 per call.
    Statistics count this process's calls; ``size`` counts the namespace in Redis.

    Outages: clients built from a URL time out after ``socket_timeout`` (connect and read)
    and retry a refused connection once, without sleeping: a call costs at most about
    ``socket_timeout`` (0.5 s) while Redis hangs, and next to nothing while it is down.
    Each pool holds at most 64 connections (callers wait up to ``2 * socket_timeout``); sync
    lookups keep up to 16 of them between calls, skipping redis-py's per-call dispatch and
    pool bookkeeping (about 35 µs of a hit). Clients you pass keep their own settings
    (redis-py's defaults, 5 s and 10 retries, are slow for a cache) and use ``Redis.get``.
    By default a failing server makes lookups misses and writes no-ops, with a
    rate-limited warning; ``strict=True`` raises
    :class:`~gencache.errors.BackendUnavailableError` (unreachable, timed out) or
    :class:`~gencache.errors.BackendError`. The cache recovers by itself when the server
    is back. Passwords never appear in ``repr``, logs or error messages.

    Near cache (``near_cache=True`` or a size; single server only): an in-process LRU of
    decoded hits, answered without a round trip (the same ``Generation`` objects on each
    hit, as with ``InMemoryCache``: treat them as read-only). It stays coherent through
    invalidation messages (``CLIENT TRACKING ... BCAST``, Redis >= 6; redis-py's own
    client-side cache needs Redis >= 7.4). This process's writes and clears are seen at
    once; another client's write, delete, expiry or clear once its message arrives
    (network latency: well under a millisecond on a LAN). While that stream is down
    (detected at once when the server closes it, within ~2 s on a silent network) the
    near cache is empty and bypassed. Entries also expire at their TTL. Each worker
    receives one message per write to the namespace, fleet-wide.

    Args:
        url_or_client: A Redis URL, or a ``redis.Redis`` / ``redis.RedisCluster`` (whose
            own timeouts and retries apply; ``decode_responses`` must be off).
        redis_: LangChain's name for a client; give it or ``url_or_client``, not both.
        ttl: Seconds an entry lives after it is written (Redis expires it), or ``None``.
        namespace: Prefix of this cache's keys; caches with one namespace share entries.
            Must be non-empty, without ``* ? [ ] \\``.
        strict: Raise :class:`~gencache.errors.BackendError` instead of degrading.
        near_cache: ``False``, ``True`` (1,024 entries) or the near cache's size.
        async_client: A ``redis.asyncio`` client for the async methods.
        socket_timeout: Connect and read timeout, in seconds, of clients built from a URL.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``ttl``, ``namespace``, ``near_cache`` or the URL is invalid.
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
    ) -> None:
        super().__init__(strict=strict)
        self._ttl = check_ttl(ttl)
        self._px = None if self._ttl is None else max(1, round(self._ttl * 1000))
        self._namespace = _check_namespace(namespace)
        self._prefix = namespace + ":"
        self._match = self._prefix + "[0-9a-f]" * 64
        self._timeout = check_seconds("socket_timeout", socket_timeout)
        if redis_ is not None:
            if url_or_client is not None:
                msg = "give url_or_client or redis_, not both"
                raise TypeError(msg)
            url_or_client = redis_
        self._url = url_or_client if isinstance(url_or_client, str) else None
        self._client: SyncClient
        self._lane: _Lane | None = None
        given = cast("object", url_or_client)  # checked at run time: callers pass anything
        if isinstance(given, str):
            self._where, self._secrets = _redact(given), _secrets(given)
            retry = Retry(NoBackoff(), 1, (rexc.ConnectionError,))  # as _Lane.get
            try:
                pool = BlockingConnectionPool.from_url(given, **self._opts(retry))
            except (ValueError, TypeError) as exc:
                msg = f"invalid Redis URL {self._where}: {self._scrub(str(exc))}"
                raise ValueError(msg) from None
            self._client = Redis(connection_pool=pool)
            # Older redis-py (no should_reconnect; get_connection wants a command): Redis.get.
            if hasattr(pool.connection_class, "should_reconnect"):
                self._lane = _Lane(pool)
        elif isinstance(given, (Redis, RedisCluster)):
            self._client, self._where = given, f"<{type(given).__name__}>"
            password = given.get_connection_kwargs().get("password")
            self._secrets = (str(password),) if password else ()
            if given.get_encoder().decode_responses:
                msg = "RedisCache needs a client with decode_responses=False"
                raise ValueError(msg)
        else:
            msg = f"url_or_client must be a Redis URL or client, not {type(given).__name__}"
            raise TypeError(msg)
        given = cast("object", async_client)
        if not isinstance(given, (aioredis.Redis, aioredis.RedisCluster, type(None))):
            msg = f"async_client must be a redis.asyncio client, not {type(given).__name__}"
            raise TypeError(msg)
        self._async_client = async_client
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]
        self._aclients = weakref.WeakKeyDictionary()
        self._near = self._make_near(near_cache)
        # GET rkey -> reply, bound once: ~35 µs less per sync hit through _Lane.
        self._fetch = self._client.get if self._lane is None else self._lane.get

    def _opts(self, retry: object) -> dict[str, Any]:
        t = self._timeout  # the pool waits up to 2 t for a free connection
        return {
            "max_connections": _MAX_CONNECTIONS,
            "timeout": 2 * t,
            "socket_timeout": t,
            "socket_connect_timeout": t,
            "retry": retry,
        }

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
        pool = self._client.connection_pool
        kwargs = dict(pool.connection_kwargs, protocol=2, health_check_interval=0)
        kwargs.update(socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
        for name in ("maint_notifications_config", "maint_notifications_pool_handler"):
            if name in kwargs:  # redis-py refuses these on a RESP2 connection
                kwargs[name] = None
        connect = functools.partial(pool.connection_class, **kwargs)
        near = NearCache(size, connect, self._prefix, self._scrub)
        weakref.finalize(self, near.close)
        return near

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
            f"{type(self).__name__}({self._where!r}, namespace={self._namespace!r}, "
            f"ttl={self._ttl!r}, strict={self._strict!r}, "
            f"near_cache={self._near.maxsize if self._near else 0})"
        )

    def close(self) -> None:
        """Stop the near cache and close the connections built from a URL. Idempotent.

        The cache stays usable: it reconnects on the next call, without near cache.
        """
        if self._near is not None:
            self._near.close()
        if self._lane is not None:
            self._lane.close()
        if self._url is not None:
            self._client.close()
        self._aclients.clear()

    async def aclose(self) -> None:
        """:meth:`close`, and close the connections of the running event loop first."""
        client = self._aclients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose(close_connection_pool=True)
        self.close()

    # -- errors and the value format ------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: BaseException, action: str) -> BackendError:
        cls = BackendUnavailableError if isinstance(exc, _UNAVAILABLE) else BackendError
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        return cls(f"Redis {action} on {self._where} failed: {detail}")

    def _get_failed(self, exc: BaseException) -> bytes:
        if isinstance(exc, rexc.ResponseError) and str(exc).startswith("WRONGTYPE"):
            return _FOREIGN  # another type under our key: a miss, and the template drops it
        raise self._error(exc, "GET") from exc

    def _pack(self, prompt: str, llm_string: str, payload: bytes) -> bytes:
        p, s = _utf8(prompt), _utf8(llm_string)
        now = time.time()
        expires = math.inf if self._ttl is None else now + self._ttl
        return b"".join((_HEADER.pack(_MAGIC, now, expires, len(p), len(s)), p, s, payload))

    def _unpack(self, value: object, key: str, pair: _Pair | None) -> bytes | None:
        """The payload of ``value`` if it is the entry of ``pair`` (or, if ``None``, of
        ``key``); else a payload the codec refuses, or ``None`` for no value."""
        if value is None:
            return None
        if not isinstance(value, bytes):
            msg = f"Redis returned {type(value).__name__}, not bytes"
            raise BackendError(msg)
        header = _header(value)
        if header is not None and not _names(value, header, key, pair):
            # The value names another (prompt, llm_string): someone copied an entry under
            # this key. Serving it would answer this prompt with another prompt's response,
            # so it is treated like a value gencache did not write (a miss, then dropped).
            self._log.warning(
                "foreign", "gencache: entry %s holds another prompt's response", key[:16]
            )
            header = None
        if header is None:
            # gencache always writes the header: this value is not an entry of this key,
            # even if it holds a valid payload (one copied without its header). It must
            # be a miss, so the codec gets only its tail behind a byte it refuses at once
            # (a 50 MB value costs no parsing); the template logs it and drops it.
            _EXPIRES.set(0.0)
            return _REJECT + value[-_TAIL:]
        _EXPIRES.set(header[3])
        return value[header[1] :]

    # -- raw I/O ------------------------------------------------------------------------

    def _read(self, key: str) -> object:
        try:
            return self._fetch(self._prefix + key)
        except _ERRORS as exc:
            return self._get_failed(exc)

    def _get(self, key: str) -> bytes | None:
        """Key-only read: checks the stored pair by its digest (~2.5 µs for 1 KB)."""
        return self._unpack(self._read(key), key, None)

    def _get_entry(self, key: str, prompt: str, llm_string: str) -> bytes | None:
        """What lookups read: checks the stored pair against this one (~0.7 µs for 1 KB)."""
        return self._unpack(self._read(key), key, (prompt, llm_string))

    def _set(self, key: str, prompt: str, llm_string: str, payload: bytes) -> None:
        rkey = self._prefix + key
        try:
            self._client.set(rkey, self._pack(prompt, llm_string, payload), px=self._px)
        except _ERRORS as exc:
            raise self._error(exc, "SET") from exc
        finally:
            if self._near is not None:
                self._near.invalidate([rkey])

    def _delete(self, key: str, payload: bytes) -> None:
        try:
            self._client.eval(_DELETE, 1, self._prefix + key, _compared(payload))
        except _ERRORS as exc:
            raise self._error(exc, "delete") from exc

    def _clear(self) -> None:
        try:
            batch: list[bytes] = []
            for rkey in self._client.scan_iter(match=self._match, count=_BATCH):
                batch.append(rkey)
                if len(batch) == _BATCH:
                    self._client.unlink(*batch)  # RedisCluster pipelines it by slot
                    batch = []
            if batch:
                self._client.unlink(*batch)
        except _ERRORS as exc:
            raise self._error(exc, "clear") from exc
        finally:
            if self._near is not None:
                self._near.invalidate(None)

    def _size(self) -> int:
        try:
            return sum(1 for _ in self._client.scan_iter(match=self._match, count=_BATCH))
        except _ERRORS as exc:
            raise self._error(exc, "SCAN") from exc

    def entries(self) -> Iterator[Entry]:
        """Yield every live entry of the namespace, skipping values gencache did not write.

        Raises:
            BackendError: If Redis fails, whatever ``strict`` says (this is inspection).
        """
        try:
            keys = list(self._client.scan_iter(match=self._match, count=_BATCH))
            for i in range(0, len(keys), _BATCH):
                pipe = self._client.pipeline(transaction=False)
                for rkey in keys[i : i + _BATCH]:
                    pipe.get(rkey)
                values = pipe.execute(raise_on_error=False)
                for rkey, value in zip(keys[i : i + _BATCH], values, strict=True):
                    entry = _entry(rkey, value)
                    if entry is not None:
                        yield entry
        except _ERRORS as exc:
            raise self._error(exc, "SCAN") from exc

    # -- native async -------------------------------------------------------------------

    def _aclient(self) -> AsyncClient | None:
        if self._async_client is not None or self._url is None:
            return self._async_client
        loop = asyncio.get_running_loop()  # asyncio connections belong to one event loop
        client = self._aclients.get(loop)
        if client is None:
            retry = AsyncRetry(NoBackoff(), 1, (rexc.ConnectionError,))
            pool = aioredis.BlockingConnectionPool.from_url(self._url, **self._opts(retry))
            client = self._aclients[loop] = aioredis.Redis(connection_pool=pool)
        return client

    async def _aread(self, key: str) -> object:
        client, rkey = self._aclient(), self._prefix + key
        try:
            if client is None:
                return await asyncio.to_thread(self._fetch, rkey)
            return await client.get(rkey)
        except _ERRORS as exc:
            return self._get_failed(exc)

    # _unpack runs in this task, so that _EXPIRES is set in its context.
    async def _aget(self, key: str) -> bytes | None:
        return self._unpack(await self._aread(key), key, None)

    async def _aget_entry(self, key: str, prompt: str, llm_string: str) -> bytes | None:
        return self._unpack(await self._aread(key), key, (prompt, llm_string))

    async def _aset(self, key: str, prompt: str, llm_string: str, payload: bytes) -> None:
        client, rkey = self._aclient(), self._prefix + key
        if client is None:
            return await super()._aset(key, prompt, llm_string, payload)
        try:
            await client.set(rkey, self._pack(prompt, llm_string, payload), px=self._px)
        except _ERRORS as exc:
            raise self._error(exc, "SET") from exc
        finally:
            if self._near is not None:
                self._near.invalidate([rkey])
        return None

    async def _adelete(self, key: str, payload: bytes) -> None:
        client = self._aclient()
        if client is None:
            return await super()._adelete(key, payload)
        try:
            await client.eval(_DELETE, 1, self._prefix + key, _compared(payload))
        except _ERRORS as exc:
            raise self._error(exc, "delete") from exc
        return None

    async def _aclear(self) -> None:
        client = self._aclient()
        if client is None:
            return await super()._aclear()
        try:
            batch: list[bytes] = []
            async for rkey in client.scan_iter(match=self._match, count=_BATCH):
                batch.append(rkey)
                if len(batch) == _BATCH:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)
        except _ERRORS as exc:
            raise self._error(exc, "clear") from exc
        finally:
            if self._near is not None:
                self._near.invalidate(None)
        return None

    # -- the near cache, in front of the template -----------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return the cached generations for the pair, or ``None``.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
            BackendError: Only with ``strict=True``, when Redis fails.
        """
        if self._near is None:
            return super().lookup(prompt, llm_string)
        hit, rkey, token = self._near_begin(self._near, prompt, llm_string)
        if rkey is None:
            return hit
        value = None
        try:
            value = super().lookup(prompt, llm_string)
        finally:
            self._near.fill((prompt, llm_string), rkey, token, value, _EXPIRES.get())
        return value

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`; never blocks the event loop."""
        if self._near is None:
            return await super().alookup(prompt, llm_string)
        hit, rkey, token = self._near_begin(self._near, prompt, llm_string)
        if rkey is None:
            return hit
        value = None
        try:
            value = await super().alookup(prompt, llm_string)
        finally:
            self._near.fill((prompt, llm_string), rkey, token, value, _EXPIRES.get())
        return value

    def _near_begin(
        self, near: NearCache, prompt: str, llm_string: str
    ) -> tuple[list[Generation] | None, str | None, object]:
        """Return ``(hit, None, None)`` on a near hit, else ``(None, redis key, token)``."""
        try:
            hit = near.get((prompt, llm_string))
        except TypeError:  # an unhashable key part
            check_key(prompt, llm_string)
            raise
        if hit is not None:
            next(self._hits)
            return hit.copy(), None, None
        rkey = self._prefix + digest(prompt, llm_string)
        _EXPIRES.set(0.0)
        return None, rkey, near.reserve(rkey)


class _Lane:
    """``GET`` on connections kept out of our own pool between calls: the sync hit path.

    On redis-py 8.1 ``Redis.get`` adds ~20 µs of Python to each round trip (dispatch, a
    retry closure, metrics hooks, the command packer) and the blocking pool's checkout and
    return ~15 µs more (a queue under a condition variable, metrics). Here a ``GET`` pops
    an idle connection from a list, sends a command packed with one ``%``, reads the reply
    with redis-py and pushes the connection back: ~4 µs of Python. The connections stay
    checked out of the pool, whose bound therefore still holds; at most ``_IDLE`` (16) wait
    here, the rest go back, so other commands keep at least 48. A connection that raised
    anything is disconnected and given back (none waits here with an unread reply), one
    marked for reconnection (a maintenance notification) too; a forked child drops the
    parent's. Retries as the clients built from a URL do: once, after a ``ConnectionError``.
    """

    def __init__(self, pool: BlockingConnectionPool) -> None:
        self._pool: Any = pool  # its methods are untyped
        self._encode: Callable[[str], bytes] = self._pool.get_encoder().encode
        self._idle: list[Any] = []  # redis.connection.Connection; list ops are atomic
        os.register_at_fork(after_in_child=functools.partial(_forget, weakref.ref(self)))

    def get(self, rkey: str) -> object:
        """The reply to ``GET rkey``; raises what redis-py raises."""
        key = self._encode(rkey)  # as redis-py encodes it (the URL may set the encoding)
        command = (_GET % (len(key), key),)
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
        try:
            try:
                value = _roundtrip(conn, command)
            except rexc.ConnectionError:  # closed, e.g. by a restart: redis-py disconnected it
                value = _roundtrip(conn, command)  # the clients' one retry; this reconnects
        except BaseException:
            conn.disconnect()
            self._pool.release(conn)
            raise
        if len(self._idle) < _IDLE and not conn.should_reconnect():
            self._idle.append(conn)
        else:
            self._pool.release(conn)  # which disconnects it if it should reconnect
        return value

    def close(self) -> None:
        """Disconnect the idle connections and give them back to the pool."""
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:  # another thread took the last one
                return
            conn.disconnect()
            self._pool.release(conn)


def _roundtrip(conn: Any, command: tuple[bytes]) -> object:
    conn.send_packed_command(command)  # connects a disconnected connection first
    return conn.read_response()


def _forget(ref: weakref.ref[_Lane]) -> None:
    lane = ref()
    if lane is not None:  # in a forked child: these sockets are the parent's
        lane._idle = []


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _compared(payload: bytes) -> bytes:
    """What the compare-and-delete matches: the payload or, for a rejected value, its tail."""
    return payload[len(_REJECT) :] if payload.startswith(_REJECT) else payload


def _header(value: bytes) -> tuple[int, int, float, float] | None:
    """Return ``(prompt length, payload offset, created_at, expires_at)``, or ``None``."""
    if len(value) < _HEADER.size or not value.startswith(_MAGIC):
        return None
    _, created, expires, lp, ls = _HEADER.unpack_from(value)
    end = _HEADER.size + lp + ls
    return None if end > len(value) else (lp, end, created, expires)


def _stored_pair(value: bytes, header: tuple[int, int, float, float]) -> _Pair | None:
    """The ``(prompt, llm_string)`` a value written by gencache names, or ``None``."""
    lp, end = header[0], header[1]
    start = _HEADER.size
    try:
        prompt = value[start : start + lp].decode("utf-8", "surrogatepass")
        llm_string = value[start + lp : end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return prompt, llm_string


def _names(
    value: bytes, header: tuple[int, int, float, float], key: str, pair: _Pair | None
) -> bool:
    """Whether a value names ``pair`` (its UTF-8 bytes compared in place: ~0.5 µs for 1 KB)
    or, without a pair, a pair whose digest is ``key`` (decoded and hashed: ~2.5 µs)."""
    lp, end = header[0], header[1]
    if pair is None:
        stored = _stored_pair(value, header)
        return stored is not None and digest(*stored) == key
    p, s = _utf8(pair[0]), _utf8(pair[1])
    start = _HEADER.size
    return (
        lp == len(p)
        and end - start - lp == len(s)
        and value.startswith(p, start)
        and value.startswith(s, start + lp)
    )


def _entry(rkey: bytes, value: object) -> Entry | None:
    header = _header(value) if isinstance(value, bytes) else None
    if header is None or not isinstance(value, bytes):
        return None
    pair = _stored_pair(value, header)
    key = rkey[-64:].decode()
    if pair is None or digest(*pair) != key:  # not gencache's, or copied under another key
        return None
    _, end, created, expires = header
    expires_at = None if math.isinf(expires) else expires
    return Entry(key, *pair, value[end:], created, expires_at)


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        msg = f"namespace must be a str, not {type(namespace).__name__}"
        raise TypeError(msg)
    if not namespace or any(c in namespace for c in "*?[]\\"):
        msg = f"namespace must be non-empty, without the glob characters * ? [ ] \\: {namespace!r}"
        raise ValueError(msg)
    return namespace


def _redact(url: str) -> str:
    """The URL without its user part or query (which may hold ``password=``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid Redis URL>"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{'***@' if '@' in parts.netloc else ''}{host}{parts.path}"


def _secrets(url: str) -> tuple[str, ...]:
    """Every spelling of the URL's password (or of a lone user part, often a password)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or parts.username or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        return (url,)
    found += [unquote(s) for s in found]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))
