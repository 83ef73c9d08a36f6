"""Redis URLs, clients, pools and errors for :class:`gencache.RedisCache`.

Every redis-py exception leaves the Redis backend through :meth:`Redactor.error`, as a
:class:`~gencache.errors.BackendError` whose text never holds a password.
"""

from __future__ import annotations

import asyncio
import collections
import types
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.client import Redis
from redis.cluster import RedisCluster
from redis.connection import BlockingConnectionPool, ConnectionPool
from redis.retry import Retry

from gencache.errors import BackendError, BackendUnavailableError

__all__ = [
    "ERRORS",
    "MAX_CONNECTIONS",
    "SCHEMES",
    "AsyncClient",
    "Gate",
    "Redactor",
    "SyncClient",
    "async_client_for_url",
    "check_async_client",
    "check_namespace",
    "check_url",
    "listener_client",
    "queue_wait",
    "sync_pool_for_url",
]

SyncClient = Redis | RedisCluster
AsyncClient = aioredis.Redis | aioredis.RedisCluster

SCHEMES = ("redis", "rediss", "unix")
MAX_CONNECTIONS = 64  # per pool we build: a burst of tasks queues instead of flooding Redis
ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError)
_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, OSError)


class Redactor:
    """Where a cache connects, for messages, without the secrets of its URL."""

    def __init__(self, where: str, secrets: tuple[str, ...]) -> None:
        self.where = where
        self._secrets = secrets

    @classmethod
    def for_url(cls, url: str) -> Redactor:
        return cls(_redact(url), _secrets(url))

    @classmethod
    def for_client(cls, client: object) -> Redactor:
        kwargs: dict[str, Any] = {}
        getter = getattr(client, "get_connection_kwargs", None)
        if callable(getter):
            kwargs = getter()
        password = kwargs.get("password")
        return cls(f"<{type(client).__name__}>", (str(password),) if password else ())

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def error(self, exc: BaseException, action: str) -> BackendError:
        """``exc`` as a ``BackendError`` (``BackendUnavailableError`` for an outage)."""
        cls = BackendUnavailableError if isinstance(exc, _UNAVAILABLE) else BackendError
        detail = self.scrub(f"{type(exc).__name__}: {exc}")
        return cls(f"Redis {action} on {self.where} failed: {detail}")


def check_url(url: str) -> str:
    """Return ``url`` if its scheme is a Redis one (case-insensitive), else raise.

    Raises:
        ValueError: For another scheme or none, with a hint (``did you mean redis://...``).
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in SCHEMES:
        return scheme.lower() + sep + rest  # redis-py wants a lower-case scheme
    # The hint keeps host, port and path: "http://x" -> redis://x, "h:6379" -> redis://h:6379.
    if not sep:
        scheme, colon, rest = url.partition(":")
        rest = rest.lstrip("/") if colon and scheme.lower() in SCHEMES else url
    msg = f"not a Redis URL: {_redact(url)!r}; did you mean redis://{_redact(rest)}?"
    raise ValueError(msg)


def queue_wait(timeout: float) -> float:
    """How long a call may wait for a free connection: as long as a slow server takes.

    A burst of calls is not an outage: it queues. A dead server still fails each call
    within about ``timeout``, so the queue drains quickly then.
    """
    return max(30.0, 20 * timeout)


class Gate:
    """At most :data:`MAX_CONNECTIONS` commands in flight on one event loop; the rest queue.

    redis-py's asyncio ``BlockingConnectionPool`` makes every waiting task take and give
    back its condition lock on each release: a burst of 2,000 tasks turned each call into
    lock hand-offs and left new connections timing out on the congested loop. Here a
    release hands its slot to the oldest waiter directly (one future, one timer each: no
    task per waiter, unlike ``asyncio.wait_for``), so the pool behind never waits. Used
    from one event loop only (asyncio objects are not thread-safe).

    Args:
        wait: Seconds a call may queue before it fails as unavailable.
    """

    def __init__(self, wait: float) -> None:
        self._free = MAX_CONNECTIONS
        self._queue: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._wait = wait

    async def __aenter__(self) -> None:
        if self._free and not self._queue:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        self._queue.append(turn)
        timer = loop.call_later(self._wait, _expire, turn)
        try:
            granted = await turn
        except BaseException:  # cancelled while queued, or just after a slot was handed over
            if turn.done() and not turn.cancelled() and turn.result():
                self._release()
            raise
        finally:
            timer.cancel()
        if not granted:
            msg = f"no connection free after waiting {self._wait:g} s (a slow server?)"
            raise rexc.ConnectionError(msg)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():  # skip the waiters that gave up or timed out
                turn.set_result(True)
                return
        self._free += 1


def _expire(turn: asyncio.Future[bool]) -> None:
    if not turn.done():
        turn.set_result(False)


def _opts(timeout: float, retry: object) -> dict[str, Any]:
    return {
        "max_connections": MAX_CONNECTIONS,
        "timeout": queue_wait(timeout),
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
    }


def sync_pool_for_url(url: str, timeout: float, redactor: Redactor) -> BlockingConnectionPool:
    """A blocking pool for ``url`` that always returns bytes.

    Raises:
        ValueError: If redis-py refuses the URL.
    """
    retry = Retry(NoBackoff(), 1, (rexc.ConnectionError,))
    try:
        pool = BlockingConnectionPool.from_url(url, **_opts(timeout, retry))
    except (ValueError, TypeError) as exc:
        msg = f"invalid Redis URL {redactor.where}: {redactor.scrub(str(exc))}"
        raise ValueError(msg) from None
    # Our reads are bytes whatever the URL asks (``?decode_responses=true``): set before
    # any connection exists, so every connection's encoder inherits it.
    pool.connection_kwargs["decode_responses"] = False
    return pool


def async_client_for_url(url: str, timeout: float) -> aioredis.Redis:
    """An asyncio client for ``url`` (one per event loop: connections belong to one loop).

    Its connect timeout is twice ``timeout``: redis-py times the connect on the event
    loop, and a loop busy starting thousands of tasks lags past ``timeout`` while the
    server is fine (a burst of 2,000 tasks on a loaded machine: 48 of 20,000 calls
    failed so, with a 2 s timeout). Reads keep ``timeout``: a frozen server still costs
    about that; a host that drops packets costs about twice that.
    """
    retry = AsyncRetry(NoBackoff(), 1, (rexc.ConnectionError,))
    options = _opts(timeout, retry) | {"socket_connect_timeout": 2 * timeout}
    pool = aioredis.BlockingConnectionPool.from_url(url, **options)
    pool.connection_kwargs["decode_responses"] = False
    return aioredis.Redis(connection_pool=pool)


def listener_client(pool: ConnectionPool, timeout: float) -> Redis:
    """A client for the near cache's invalidation listener, on ``pool``'s server.

    Same address, credentials and TLS as ``pool``; RESP2 (invalidations arrive as
    pub/sub messages), bytes, ``timeout`` to connect and read, a one-connection pool of
    its own, and no retries or health checks: every error must reach the listener,
    which then starts over (a silent reconnection would lose the tracking).
    """
    kwargs = dict(pool.connection_kwargs)
    for name in ("maint_notifications_config", "maint_notifications_pool_handler"):
        kwargs.pop(name, None)  # redis-py refuses these on a RESP2 connection
    kwargs.update(
        protocol=2,
        decode_responses=False,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    own = ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    return Redis(connection_pool=own)


def check_async_client(client: object) -> AsyncClient | None:
    """Return ``client`` if it is ``None`` or a ``redis.asyncio`` client, else raise."""
    if client is None or isinstance(client, (aioredis.Redis, aioredis.RedisCluster)):
        return client
    msg = f"async_client must be a redis.asyncio client, not {type(client).__name__}"
    raise TypeError(msg)


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a non-empty str without glob characters."""
    if not isinstance(namespace, str):
        msg = f"namespace must be a str, not {type(namespace).__name__}"
        raise TypeError(msg)
    if not namespace or any(c in namespace for c in "*?[]\\"):
        msg = f"namespace must be non-empty, without the glob characters * ? [ ] \\: {namespace!r}"
        raise ValueError(msg)
    return namespace


def _redact(url: str) -> str:
    """The URL without its user part or query (which may hold ``password=``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    try:
        parts = urlsplit(f"redis://{rest}")  # any scheme: urlsplit parses a netloc after //
    except ValueError:
        return "<invalid Redis URL>"
    host = parts.netloc.rpartition("@")[2]
    where = f"{'***@' if '@' in parts.netloc else ''}{host}{parts.path}"
    return f"{scheme}{sep}{where}"


def _secrets(url: str) -> tuple[str, ...]:
    """Every spelling of the URL's password (or of a lone user part, often a password)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or parts.username or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        return (url,)
    found += [unquote(s) for s in found]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))
