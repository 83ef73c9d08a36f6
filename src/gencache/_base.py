"""The common surface of every gencache backend, over LangChain's ``BaseCache``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation

from gencache import codec
from gencache._keys import check_key, digest
from gencache.errors import BackendError
from gencache.stats import CacheStats, Counter

__all__ = ["Entry", "GenCache", "StoreCache", "check_bool", "check_generations"]


# Classes already checked to be Generation subclasses: pydantic's isinstance is slow.
_GENERATION_TYPES: set[type] = {Generation}


def check_generations(return_val: Any) -> list[Generation]:
    """Return ``return_val`` as a new list, or raise ``TypeError``.

    LangChain passes ``result.generations``, a list of ``Generation`` (or subclasses).
    Anything else, including a bare ``str`` or a single ``Generation``, is refused rather
    than stored as something a later hit could not use. Cost: O(len(return_val)).
    """
    kind = type(return_val)
    if (
        kind is not list
        and kind is not tuple
        and (
            isinstance(return_val, (str, bytes, Generation)) or not isinstance(return_val, Sequence)
        )
    ):
        msg = (
            "return_val must be a sequence of langchain_core.outputs.Generation, "
            f"not {kind.__name__}"
        )
        raise TypeError(msg)
    generations = list(return_val)
    for item in generations:
        cls = type(item)
        if cls not in _GENERATION_TYPES:
            if not isinstance(item, Generation):
                msg = (
                    "return_val must contain only langchain_core.outputs.Generation objects, "
                    f"found {cls.__name__}"
                )
                raise TypeError(msg)
            _GENERATION_TYPES.add(cls)
    return generations


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        msg = f"{name} must be a bool, not {type(value).__name__}"
        raise TypeError(msg)
    return value


class GenCache(BaseCache):
    """Base class of gencache's caches: LangChain's ``BaseCache`` plus size and stats.

    Every subclass accepts exactly LangChain's calls (``lookup``, ``update``, ``clear``
    and their async twins) with the same results, and adds :meth:`stats` and ``len()``.
    """

    @abstractmethod
    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return the cached generations for the pair as a new ``list``, or ``None``.

        A hit is always a ``list``: LangChain's chat and LLM paths treat any other
        sequence as a miss.
        """

    @abstractmethod
    def stats(self) -> CacheStats:
        """Return a snapshot of the cache's counters."""

    @abstractmethod
    def __len__(self) -> int:
        """Return the number of live entries."""

    def __bool__(self) -> bool:
        # A cache is a service object: an empty cache must not be falsy (``cache or x``).
        return True

    @abstractmethod
    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache. Keyword arguments are accepted and ignored."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry as a backend holds it, for inspection (CLI, export).

    Attributes:
        key: The backend key (hex digest of the pair).
        prompt: The prompt as LangChain passed it.
        llm_string: The model configuration string.
        payload: The encoded generations (see :mod:`gencache.codec`).
        created_at: Wall-clock write time, seconds since the epoch.
        expires_at: Wall-clock expiry time, or ``None``.
    """

    key: str
    prompt: str
    llm_string: str
    payload: bytes
    created_at: float
    expires_at: float | None


class _RateLimitedLog:
    """Log a warning at most once per ``interval`` seconds per message kind."""

    def __init__(self, logger: logging.Logger, interval: float = 30.0) -> None:
        self._logger, self._interval = logger, interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(msg, *args)


_log = logging.getLogger("gencache")


class StoreCache(GenCache):
    """Template for caches that store encoded entries outside the process.

    A call goes key -> store -> codec -> stats -> errors: the template makes the key with
    :func:`gencache._keys.digest`, encodes and decodes with :mod:`gencache.codec`, counts
    hits and misses, and applies one error policy; a subclass implements only raw I/O on
    ``bytes`` (the ``_get``/``_set``/... methods below), raising
    :class:`~gencache.errors.BackendError` for storage failures.

    Error policy: with ``strict=False`` (the default) a backend failure is logged
    (rate-limited) and the call behaves as a miss, or skips the write, so the LLM
    application keeps working. With ``strict=True`` the :class:`BackendError` is raised.
    An entry that cannot be decoded is a miss, is deleted, and is logged; it never raises.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self._strict = check_bool("strict", strict)
        self._hits = Counter()
        self._misses = Counter()
        self._updates = Counter()
        self._counter_lock = threading.Lock()
        self._log = _RateLimitedLog(_log)

    # -- raw I/O, implemented by each backend ----------------------------------------------

    @abstractmethod
    def _get(self, key: str) -> bytes | None:
        """Return the live payload stored under ``key``, or ``None``."""

    def _get_entry(self, key: str, prompt: str, llm_string: str) -> bytes | None:
        """:meth:`_get` for the pair whose key is ``key``: what lookups call.

        A backend that stores the pair with the payload overrides it to check the stored
        pair against this one directly (a byte comparison, cheaper than hashing it again).
        """
        return self._get(key)

    @abstractmethod
    def _set(self, key: str, prompt: str, llm_string: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` (with its prompt and llm_string)."""

    @abstractmethod
    def _delete(self, key: str, payload: bytes) -> None:
        """Delete ``key`` if it still holds ``payload`` (a concurrent write wins)."""

    @abstractmethod
    def _clear(self) -> None:
        """Delete every entry of this cache, and only those."""

    @abstractmethod
    def _size(self) -> int:
        """Return the number of live entries."""

    @abstractmethod
    def entries(self) -> Iterator[Entry]:
        """Yield every live entry, for inspection and export."""

    def _evictions(self) -> int:
        """Entries this cache removed to respect its size bound (0 if it has none)."""
        return 0

    def _expirations(self) -> int:
        """Expired entries this cache removed (0 where the server expires them)."""
        return 0

    def _maxsize(self) -> int | None:
        return None

    async def _aget(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def _aget_entry(self, key: str, prompt: str, llm_string: str) -> bytes | None:
        return await self._aget(key)

    async def _aset(self, key: str, prompt: str, llm_string: str, payload: bytes) -> None:
        await asyncio.to_thread(self._set, key, prompt, llm_string, payload)

    async def _adelete(self, key: str, payload: bytes) -> None:
        await asyncio.to_thread(self._delete, key, payload)

    async def _aclear(self) -> None:
        await asyncio.to_thread(self._clear)

    # -- the template ------------------------------------------------------------------------

    def _failed(self, exc: BackendError, action: str) -> None:
        if self._strict:
            raise exc
        self._log.warning(
            action, "gencache: %s failed, continuing without the cache: %s", action, exc
        )

    def _decoded(self, key: str, payload: bytes | None) -> tuple[list[Generation] | None, bool]:
        """Decode a payload; return ``(value, must_delete)`` and count the hit or miss."""
        if payload is None:
            next(self._misses)
            return None, False
        try:
            value = codec.decode(payload)
        except codec.CodecError as exc:
            self._log.warning(
                "decode", "gencache: dropping undecodable entry %s: %s", key[:16], exc
            )
            next(self._misses)
            return None, True
        next(self._hits)
        return value, False

    def _encode(self, prompt: str, llm_string: str, return_val: Any) -> tuple[str, bytes]:
        check_key(prompt, llm_string)
        value = check_generations(return_val)
        try:
            payload = codec.encode(value)
        except codec.CodecError as exc:
            msg = f"return_val cannot be stored by {type(self).__name__}: {exc}"
            raise TypeError(msg) from exc
        return digest(prompt, llm_string), payload

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Return the cached generations for the pair, or ``None``.

        Raises:
            TypeError: If ``prompt`` or ``llm_string`` is not a ``str``.
            BackendError: Only with ``strict=True``, when the backend fails.
        """
        key = digest(prompt, llm_string)
        try:
            payload = self._get_entry(key, prompt, llm_string)
        except BackendError as exc:
            self._failed(exc, "lookup")
            next(self._misses)
            return None
        value, bad = self._decoded(key, payload)
        if bad and payload is not None:
            with contextlib.suppress(BackendError):
                self._delete(key, payload)
        return value

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store ``return_val`` for the pair, replacing any previous value.

        Raises:
            TypeError: If a key part is not a ``str``, or ``return_val`` is not a sequence
                of ``Generation`` the codec can store.
            BackendError: Only with ``strict=True``, when the backend fails.
        """
        key, payload = self._encode(prompt, llm_string, return_val)
        try:
            self._set(key, prompt, llm_string, payload)
        except BackendError as exc:
            self._failed(exc, "update")
            return
        next(self._updates)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of this cache (never anything else). Kwargs are ignored."""
        try:
            self._clear()
        except BackendError as exc:
            self._failed(exc, "clear")

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup`; never blocks the event loop."""
        key = digest(prompt, llm_string)
        try:
            payload = await self._aget_entry(key, prompt, llm_string)
        except BackendError as exc:
            self._failed(exc, "lookup")
            next(self._misses)
            return None
        value, bad = self._decoded(key, payload)
        if bad and payload is not None:
            with contextlib.suppress(BackendError):
                await self._adelete(key, payload)
        return value

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`; never blocks the event loop."""
        key, payload = self._encode(prompt, llm_string, return_val)
        try:
            await self._aset(key, prompt, llm_string, payload)
        except BackendError as exc:
            self._failed(exc, "update")
            return
        next(self._updates)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`; never blocks the event loop."""
        try:
            await self._aclear()
        except BackendError as exc:
            self._failed(exc, "clear")

    def __len__(self) -> int:
        """Return the number of live entries (a backend query)."""
        try:
            return self._size()
        except BackendError as exc:
            self._failed(exc, "len")
            return 0

    def stats(self) -> CacheStats:
        """Return this process's counters and the backend's current size."""
        size = len(self)  # first: a backend may purge expired entries while counting
        with self._counter_lock:
            hits, misses, updates = self._hits.value, self._misses.value, self._updates.value
        return CacheStats(
            hits=hits,
            misses=misses,
            updates=updates,
            evictions=self._evictions(),
            expirations=self._expirations(),
            size=size,
            maxsize=self._maxsize(),
        )
