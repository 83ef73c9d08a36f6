"""``RedisStore``: the Redis backend's raw I/O, the :class:`~gencache._protocol.Store` of
:class:`gencache.RedisCache`.

Layout: one Redis string per entry, under ``{namespace}:{tag}:{digest}``, where ``tag`` is
``_`` for entries without a scope and the first 16 hex digits of the scope's SHA-256
otherwise (so ``clear(scope=...)`` scans one scope's keys). The value is the codec's JSON
document (``{"g": [...generations], "meta": {key, prompt, llm_string, created_at,
expires_at[, scope]}, "v": 2}``), legible with ``redis-cli GET``, written by one
``SET ... PX`` (value and TTL in one atomic command) and read by one ``GET``. A hash was
measured and rejected: ``HGET`` is no faster than ``GET``, and a hash with a TTL needs
``HSET`` + ``PEXPIRE`` in ``MULTI``, about 1.4x slower than ``SET PX``.

``clear()`` deletes every key of that layout in the namespace, and gencache 0.1's
``{namespace}:{digest}`` too (0.2 never reads them: the format changed); ``clear(scope=)``
scans one tag. Any other key, in the namespace or not, is never deleted. Reads ask
redis-py for bytes (``NEVER_DECODE``), so a client built with ``decode_responses=True``
works and a value or key that is not UTF-8 is a miss, not a ``UnicodeDecodeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import redis.exceptions as rexc
from redis.client import NEVER_DECODE

from gencache import codec
from gencache._protocol import Entry, Key, Record
from gencache.errors import BackendError
from gencache.redis._clients import ERRORS, AsyncClient, Redactor, SyncClient
from gencache.redis._lane import Lane
from gencache.redis._lease import RedisLeases

__all__ = ["AsyncLink", "RedisStore"]

# An asyncio client and what admits each call (a Gate, or nullcontext for a given client).
AsyncLink = tuple[AsyncClient, contextlib.AbstractAsyncContextManager[None]]
_BATCH = 1_000  # SCAN COUNT and UNLINK batch size
# Bytes whatever the client's decode_responses says: a value or key that is not UTF-8
# (not ours) must not raise UnicodeDecodeError, and the codec reads bytes.
_RAW: dict[str, Any] = {NEVER_DECODE: []}
# Redis refuses a PX whose deadline overflows 64-bit milliseconds (a ttl of 1e16 s):
# past ~31,000 years an entry is kept that long, which is forever for a cache.
_MAX_PX = 10**15
# Compare-and-delete: drop the key only while it still holds the very value that was read
# (same SHA-1 of the whole value: a rewrite that changes only the middle of a value, the
# prompt inside a JSON document, is spared), or a value of another type than a string.
# The SHA-1 is computed only when a delete is due (a damaged or mismatched entry), never
# on a hit.
_DELETE = """local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return 0 end
if t == 'string' then
  if redis.sha1hex(redis.call('GET', KEYS[1])) ~= ARGV[1] then return 0 end
end
return redis.call('UNLINK', KEYS[1])"""
_WRONG_TYPE = b""  # what a read returns for a key of another type: the codec refuses it


class RedisStore:
    """One namespace of one Redis database (or cluster). Thread-safe.

    ``read`` is one ``GET`` and ``write`` one ``SET`` (a round trip each); ``clear``,
    ``size`` and ``entries`` ``SCAN`` the database: O(keys in the database), 1,000 per call.
    """

    self_describing = True  # the value carries the prompt, llm_string and times

    def __init__(
        self,
        client: SyncClient,
        *,
        namespace: str,
        redactor: Redactor,
        fetch: Callable[[str], object] | None = None,
        store: Callable[[str, bytes, int | None], object] | None = None,
        async_client: Callable[[], AsyncLink | None],
        leases: RedisLeases | None = None,
        lane: Lane | None = None,
    ) -> None:
        self._client = client
        self._lane = lane
        # A lease this process holds is released in the entry's write (one pipeline, one
        # round trip); a cluster client keeps two (its pipeline splits keys by slot).
        self._leases = leases if isinstance(client, redis.Redis) else None
        self._prefix = namespace + ":"
        self._match = self._prefix + "*"
        # Our keys as SCAN returns them: bytes, in the client's encoding (a URL may set
        # one). The digest alone after the prefix is gencache 0.1's layout: cleared too.
        prefix: bytes = client.get_encoder().encode(self._prefix)
        self._ours = re.compile(re.escape(prefix) + rb"(?:(?:_|[0-9a-f]{16}):)?[0-9a-f]{64}\Z")
        self._redactor = redactor
        self._fetch = fetch or functools.partial(client.execute_command, "GET", **_RAW)
        self._store = store or self._set
        self._alink = async_client

    def rkey(self, key: Key) -> str:
        """The Redis key of an entry."""
        return f"{self._prefix}{_tag(key.scope)}:{key.digest}"

    # -- sync -------------------------------------------------------------------------------

    def read(self, key: Key) -> Record | None:
        try:
            value = self._fetch(self.rkey(key))
        except ERRORS as exc:
            return self._read_failed(exc)
        return _record(value)

    def peek(self, key: Key) -> Record | None:
        """:meth:`read`: a ``GET`` has no side effects (Redis removes expired keys itself)."""
        return self.read(key)

    def _read_failed(self, exc: BaseException) -> Record:
        if isinstance(exc, rexc.ResponseError) and str(exc).startswith("WRONGTYPE"):
            return Record(_WRONG_TYPE)  # a miss, and the template drops it
        raise self._redactor.error(exc, "GET") from exc

    def _set(self, rkey: str, payload: bytes, px: int | None) -> object:
        return self._client.set(rkey, payload, px=px)

    def write(self, key: Key, payload: bytes, created_at: float, expires_at: float | None) -> None:
        leases = self._leases
        release = None if leases is None else leases.release_command(key)
        if release is not None and leases is not None:
            self._write_releasing(key, payload, expires_at, leases, release)
            return
        try:
            self._store(self.rkey(key), payload, _px(expires_at))
        except ERRORS as exc:
            raise self._redactor.error(exc, "SET") from exc

    def _write_releasing(
        self,
        key: Key,
        payload: bytes,
        expires_at: float | None,
        leases: RedisLeases,
        release: tuple[tuple[str | int, ...], str],
    ) -> None:
        """The single-flight owner's write: ``SET`` and the lease's release, one round trip."""
        command, token = release
        px = _px(expires_at)
        write: tuple[str | bytes | int, ...] = ("SET", self.rkey(key), payload)
        if px is not None:
            write += ("PX", px)
        try:
            if self._lane is not None:
                self._lane.run(write, command)
            else:
                pipe = self._client.pipeline(transaction=False)
                try:
                    pipe.execute_command(*write)
                    pipe.execute_command(*command)
                    pipe.execute()
                finally:
                    pipe.reset()
        except ERRORS as exc:
            leases.held.give_back(key.digest, token)
            raise self._redactor.error(exc, "SET") from exc

    def delete(self, key: Key, record: Record) -> None:
        try:
            self._client.eval(_DELETE, 1, self.rkey(key), _version(record))
        except ERRORS as exc:
            raise self._redactor.error(exc, "delete") from exc

    def clear(self, scope: str | None) -> None:
        try:
            batch: list[bytes] = []
            for rkey in self._client.scan_iter(match=self._scope(scope), count=_BATCH, **_RAW):
                if self._ours.match(rkey):
                    batch.append(rkey)
                if len(batch) == _BATCH:
                    self._client.unlink(*batch)  # RedisCluster pipelines it by slot
                    batch = []
            if batch:
                self._client.unlink(*batch)
        except ERRORS as exc:
            raise self._redactor.error(exc, "clear") from exc

    def size(self) -> int:
        try:
            return sum(
                1
                for rkey in self._client.scan_iter(match=self._match, count=_BATCH, **_RAW)
                if self._ours.match(rkey)
            )
        except ERRORS as exc:
            raise self._redactor.error(exc, "SCAN") from exc

    def entries(self, *, expired: bool = False) -> Iterator[Entry]:
        """Yield every live entry of the namespace, skipping values gencache did not write.

        Redis removes expired keys itself: ``expired`` changes nothing.
        """
        try:
            keys = [
                rkey
                for rkey in self._client.scan_iter(match=self._match, count=_BATCH, **_RAW)
                if self._ours.match(rkey)
            ]
            for i in range(0, len(keys), _BATCH):
                pipe = self._client.pipeline(transaction=False)
                for rkey in keys[i : i + _BATCH]:
                    pipe.execute_command("GET", rkey, **_RAW)
                values = pipe.execute(raise_on_error=False)
                for rkey, value in zip(keys[i : i + _BATCH], values, strict=True):
                    entry = _entry(rkey, value)
                    if entry is not None:
                        yield entry
        except ERRORS as exc:
            raise self._redactor.error(exc, "SCAN") from exc

    def _scope(self, scope: str | None) -> str:
        """The ``SCAN`` pattern of every entry (``None``) or of one scope's entries."""
        return self._match if scope is None else f"{self._prefix}{_tag(scope)}:*"

    # -- async: native with a redis.asyncio client, else in a worker thread ---------------

    async def aread(self, key: Key) -> Record | None:
        link = self._alink()
        if link is None:
            return await asyncio.to_thread(self.read, key)
        client, gate = link
        try:
            async with gate:
                value = await client.execute_command("GET", self.rkey(key), **_RAW)
        except ERRORS as exc:
            return self._read_failed(exc)
        return _record(value)

    async def awrite(
        self, key: Key, payload: bytes, created_at: float, expires_at: float | None
    ) -> None:
        link = self._alink()
        if link is None:
            return await asyncio.to_thread(self.write, key, payload, created_at, expires_at)
        client, gate = link
        try:
            async with gate:
                await client.set(self.rkey(key), payload, px=_px(expires_at))
        except ERRORS as exc:
            raise self._redactor.error(exc, "SET") from exc
        return None

    async def adelete(self, key: Key, record: Record) -> None:
        link = self._alink()
        if link is None:
            return await asyncio.to_thread(self.delete, key, record)
        client, gate = link
        try:
            async with gate:
                await client.eval(_DELETE, 1, self.rkey(key), _version(record))
        except ERRORS as exc:
            raise self._redactor.error(exc, "delete") from exc
        return None

    async def aclear(self, scope: str | None) -> None:
        link = self._alink()
        if link is None:
            return await asyncio.to_thread(self.clear, scope)
        client, gate = link
        try:
            async with gate:  # one slot: the clear's commands run one after another
                batch: list[bytes] = []
                async for rkey in client.scan_iter(match=self._scope(scope), count=_BATCH, **_RAW):
                    if self._ours.match(rkey):
                        batch.append(rkey)
                    if len(batch) == _BATCH:
                        await client.unlink(*batch)
                        batch = []
                if batch:
                    await client.unlink(*batch)
        except ERRORS as exc:
            raise self._redactor.error(exc, "clear") from exc
        return None


def _tag(scope: str | None) -> str:
    if scope is None:
        return "_"
    return hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _px(expires_at: float | None) -> int | None:
    if expires_at is None:
        return None
    return min(_MAX_PX, max(1, math.ceil((expires_at - time.time()) * 1000)))


def _record(value: object) -> Record | None:
    if value is None:
        return None
    if not isinstance(value, bytes):
        msg = f"Redis returned {type(value).__name__}, not bytes"
        raise BackendError(msg)
    return Record(value)


def _version(record: Record) -> str:
    """The SHA-1 (hex) of the value that was read, as Redis's ``redis.sha1hex`` spells it."""
    return hashlib.sha1(record.payload, usedforsecurity=False).hexdigest()


def _entry(rkey: bytes, value: object) -> Entry | None:
    """The entry a value written by gencache under ``rkey`` holds, or ``None``."""
    if not isinstance(value, bytes):
        return None
    try:
        _, meta = codec.decode_entry(value)
    except codec.CodecError:
        return None
    digest = rkey[-64:].decode("ascii", "replace")
    prompt, llm_string = meta.get("prompt"), meta.get("llm_string")
    created, expires = meta.get("created_at"), meta.get("expires_at")
    scope = meta.get("scope")
    if (
        meta.get("key") != digest
        or not isinstance(prompt, str)
        or not isinstance(llm_string, str)
        or not isinstance(created, (int, float))
    ):
        return None  # not gencache's, or copied under another key
    return Entry(
        digest,
        prompt,
        llm_string,
        value,
        float(created),
        float(expires) if isinstance(expires, (int, float)) else None,
        scope if isinstance(scope, str) else None,
    )
