"""What a storage backend implements for :class:`gencache._store.StoreCache`.

A backend is raw I/O on encoded entries and nothing else: the template makes the key,
applies the per-call options, consults the front layer, encodes and decodes, counts and
applies the one error policy. Backends raise :class:`~gencache.errors.BackendError` (or
its subclass) for storage failures and nothing else.

Values exchanged with a backend:

* :class:`Key`: the digest the backend stores the entry under, with the pair it names and
  the entry's scope (so a backend can keep scope in a column or in its key layout);
* :class:`Record`: what a read found: the codec payload (a JSON document that names its own
  key, see :mod:`gencache.codec`), the write and expiry times when the backend keeps them
  outside the payload, and an opaque ``version`` that :meth:`Store.delete` compares so that
  removing a damaged entry never removes a newer one written meanwhile;
* :class:`Entry`: one live entry, for inspection and export.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from langchain_core.outputs import Generation

__all__ = ["Entry", "FrontHit", "FrontLayer", "Key", "Record", "Store", "stored_times"]


@dataclass(frozen=True, slots=True)
class Key:
    """The identity of one entry.

    Attributes:
        digest: Hex SHA-256 of the (canonical) pair and scope: what the backend keys by.
        prompt: The prompt as LangChain passed it (stored for inspection).
        llm_string: The model configuration string.
        scope: The tenant scope of :func:`gencache.control`, or ``None``.
    """

    digest: str
    prompt: str
    llm_string: str
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """What a backend read found under a key.

    Attributes:
        payload: The encoded entry, as written.
        created_at: Wall-clock write time if the backend keeps it outside the payload,
            else ``None`` (the template reads it from the payload).
        expires_at: Wall-clock expiry, ``None`` for never, when the backend keeps it
            (``created_at`` not ``None``); otherwise read from the payload.
        version: Opaque to the template; handed back to :meth:`Store.delete`.
    """

    payload: bytes
    created_at: float | None = None
    expires_at: float | None = None
    version: object = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry as a backend holds it, for inspection (CLI, export).

    Attributes:
        key: The backend key (hex digest).
        prompt: The prompt as LangChain passed it.
        llm_string: The model configuration string.
        payload: The encoded generations (see :mod:`gencache.codec`).
        created_at: Wall-clock write time, seconds since the epoch.
        expires_at: Wall-clock expiry time, or ``None``.
        scope: The entry's scope, or ``None``.
    """

    key: str
    prompt: str
    llm_string: str
    payload: bytes
    created_at: float
    expires_at: float | None
    scope: str | None = None


class Store(Protocol):
    """Raw storage of encoded entries. Every method may raise ``BackendError``.

    ``self_describing`` says whether the payload must carry the prompt, llm_string and
    times (a key-value store with no columns, such as Redis) or only its key (a table
    that keeps them in columns, such as SQLite).
    """

    self_describing: bool

    def read(self, key: Key) -> Record | None:
        """Return the live record under ``key.digest``, or ``None``. Never waits for writers."""

    def write(self, key: Key, payload: bytes, created_at: float, expires_at: float | None) -> None:
        """Store ``payload`` under ``key``, replacing any previous value."""

    def delete(self, key: Key, record: Record) -> None:
        """Delete the entry under ``key`` if it still is ``record`` (a newer write wins)."""

    def clear(self, scope: str | None) -> None:
        """Delete every entry of this cache (``None``) or of one scope, and only those."""

    def size(self) -> int:
        """Return the number of live entries."""

    def peek(self, key: Key) -> Record | None:
        """Return the record under ``key`` even if expired, with no side effects."""

    def entries(self, *, expired: bool = False) -> Iterator[Entry]:
        """Yield every live entry (and the expired ones not yet removed, if asked)."""

    async def aread(self, key: Key) -> Record | None:
        """Async :meth:`read`."""

    async def awrite(
        self, key: Key, payload: bytes, created_at: float, expires_at: float | None
    ) -> None:
        """Async :meth:`write`."""

    async def adelete(self, key: Key, record: Record) -> None:
        """Async :meth:`delete`."""

    async def aclear(self, scope: str | None) -> None:
        """Async :meth:`clear`."""


class FrontHit(NamedTuple):
    """An entry as a front layer keeps it: what a hit of it needs without the store.

    Attributes:
        generations: The decoded generations (a layer keeps a read-only copy, and its
            hits return that copy itself).
        meta: The stored document's meta (its ``cost`` is what each hit saves).
        created: When the entry was written (wall clock), or ``None`` if unknown.
    """

    generations: list[Generation]
    meta: Mapping[str, Any]
    created: float | None


class FrontLayer(Protocol):
    """An in-process layer of decoded hits in front of a store (e.g. Redis's near cache).

    ``reserve`` is called before a store read and ``fill`` after it with what was read:
    a layer keeps the value only if nothing invalidated the key in between, so a write by
    another process that lands during the read is never hidden.
    """

    def get(self, digest: str) -> FrontHit | None:
        """Return the kept entry (its generations not a copy), or ``None``."""

    def reserve(self, digest: str) -> object:
        """Start a fill of ``digest``; return a token for :meth:`fill`."""

    def fill(
        self,
        digest: str,
        token: object,
        hit: FrontHit | None,
        expires_at: float | None,
    ) -> None:
        """Keep ``hit`` for ``digest`` if the reservation ``token`` still holds."""

    def invalidate(self, digests: list[str] | None) -> None:
        """Forget the given digests, or everything if ``None``."""


def stored_times(meta: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(created_at, expires_at)`` from a stored document's meta (``None`` if absent/bad)."""
    return _time(meta.get("created_at")), _time(meta.get("expires_at"))


def _time(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None
