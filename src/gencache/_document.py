"""The stored document of an entry: what the template writes, and checks on every read.

Every entry's payload is the codec's JSON document whose ``meta`` names the entry's key
(``meta["key"]``, the digest): a value copied or planted under another key is refused on
read, so one prompt can never be answered with another prompt's response. A store that
keeps nothing beside the payload (``self_describing``: Redis) also finds the prompt,
llm_string, times and scope there; a store with columns (SQLite) keeps those in columns.
``meta["cost"]`` records what the original call cost (see :mod:`gencache._accounting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.outputs import Generation

from gencache import codec
from gencache._protocol import Key, Record, stored_times

__all__ = ["Opened", "document", "open_record"]


@dataclass(frozen=True, slots=True)
class Opened:
    """What a read found, checked.

    Attributes:
        value: The generations, or ``None`` for a miss.
        meta: The document's ``meta``.
        created: The write time, or ``None`` if unknown.
        expires: The expiry, or ``None`` for never.
        damage: What is wrong with a record that must be deleted (``"undecodable
            (...)"``, ``"foreign (...)"``), or ``None``.
        why: For a miss that is not damage: ``"expired"`` or ``"too old"``.
    """

    value: list[Generation] | None
    meta: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    expires: float | None = None
    damage: str | None = None
    why: str | None = None


def open_record(key: Key, record: Record, now: float, max_age: float | None) -> Opened:
    """Decode ``record`` and check it is ``key``'s, fresh, and young enough. Bounded cost.

    Never raises: a damaged record is ``Opened(None, damage=...)``.
    """
    try:
        value, meta = codec.decode_entry(record.payload)
    except codec.CodecError as exc:
        return Opened(None, damage=f"undecodable ({exc})")
    if meta.get("key") != key.digest:
        return Opened(None, meta, damage="foreign (it names another key: copied or planted)")
    created, expires = record.created_at, record.expires_at
    if created is None:
        created, expires = stored_times(meta)
    if expires is not None and expires <= now:
        return Opened(None, meta, created, expires, why="expired")
    if max_age is not None and created is not None and now - created >= max_age:
        return Opened(None, meta, created, expires, why="too old")
    return Opened(value, meta, created, expires)


def document(
    key: Key,
    generations: list[Generation],
    *,
    describe: bool,
    created_at: float,
    expires_at: float | None,
    cost: dict[str, Any] | None,
) -> bytes:
    """The payload to store for ``key``.

    Raises:
        codec.CodecError: If the generations cannot be stored.
    """
    meta: dict[str, Any] = {"key": key.digest}
    if cost is not None:
        meta["cost"] = cost
    if describe:
        meta.update(
            prompt=key.prompt,
            llm_string=key.llm_string,
            created_at=created_at,
            expires_at=expires_at,
        )
        if key.scope is not None:
            meta["scope"] = key.scope
    return codec.encode(generations, meta=meta)
