"""A key-first index of ``(key, llm_string)`` pairs, for the in-memory cache.

LangChain passes both strings as new objects on every call, so a dict keyed by the pair
must hash ~800 characters per lookup. Nearly every prompt is cached under one model
configuration, so this index hashes only the key and then compares the llm_string
(a ``memcmp``).

The key is the prompt (its canonical form, see :func:`gencache._keys.canonical_prompt`)
for unscoped entries, and :func:`scoped` ``(scope, prompt, SCOPED)`` for entries written
under ``gencache.control(scope=...)``: a tuple never equals a ``str``, so scoped and
unscoped entries never answer each other's lookups, and unscoped lookups hash only the
prompt. ``SCOPED`` is a private object: a tuple passed as a prompt by mistake cannot equal
a scoped key, even on a hit path that does not check types.

A slot is a list ``[key, llm_string, written_at, cost, hit, *generations]``: one list
because creating one costs ~30 ns against ~120 ns for an instance of a class. ``hit`` is
the read-only :class:`gencache._generations.Generations` that every hit of the entry
returns as it is, or ``None`` until its first hit builds it under the cache's lock (and
after each rewrite): returning the cache's own list instead of a new one saves a hit
~40 ns (15 % of LangChain's own lookup), and building it at the first hit rather than at
the write saves every write ~55 ns, and the memory of a list for entries never hit. A
lock-free hit reads ``hit`` once: the old answer or ``None`` (then the lock), never a mix.
``written_at`` (the cache's clock at the last write) serves ``max_age`` and is the
deadline base of the cache's ttl. ``cost`` is what the call that produced the entry cost
(a :class:`gencache._accounting.Cost`), read from the generations the first time a hit
of the entry is added to the savings, or ``None`` until then (and after each rewrite).
The index maps each key to a cell, which is a list
too: the one slot of that key or, when the key is cached for several configurations, a
bucket ``[key, BUCKET, {llm_string: slot}]``. ``BUCKET`` equals no string, so
``cell[LLM_STRING] == llm_string`` alone tells a hit from a case for :func:`find`.
Orders and deadlines key slots by ``id(slot)``, which is unique while they keep the slot.

Not thread-safe: the owning cache serialises writes with its lock.
"""

from __future__ import annotations

from typing import Any, Final, Union

__all__ = [
    "BUCKET",
    "COST",
    "GENERATIONS",
    "HIT",
    "KEY",
    "LLM_STRING",
    "SCOPED",
    "WRITTEN",
    "Cells",
    "Key",
    "Slot",
    "find",
    "insert",
    "remove",
    "scope_of",
    "scoped",
]

#: ``[key, llm_string, written_at, cost, hit, *generations]``, or a bucket ``[key, BUCKET, {...}]``.
Slot = list[Any]
#: A prompt, or ``(scope, prompt, SCOPED)`` for a scoped entry.
Key = Union[str, tuple[str, str, object]]  # noqa: UP007 - evaluated at run time on 3.10
Cells = dict[Key, Slot]
KEY, LLM_STRING, WRITTEN, COST, HIT, GENERATIONS = 0, 1, 2, 3, 4, 5
_SLOTS = 2  # where a bucket keeps its dict

#: The llm_string of a bucket: equal to no string.
BUCKET: Final = object()
#: The last item of every scoped key.
SCOPED: Final = object()


def scoped(scope: str | None, prompt: str) -> Key:
    """The key of ``prompt`` in ``scope`` (``None``: the prompt itself)."""
    return prompt if scope is None else (scope, prompt, SCOPED)


def scope_of(slot: Slot) -> str | None:
    """The scope a slot was written in, or ``None``."""
    key = slot[KEY]
    return key[0] if type(key) is tuple else None


def find(cells: Cells, key: Key, llm_string: str) -> Slot | None:
    """Return the slot for the pair, or ``None``. O(1)."""
    cell = cells.get(key)
    if cell is None:
        return None
    if cell[LLM_STRING] is BUCKET:
        slot: Slot | None = cell[_SLOTS].get(llm_string)
        return slot
    return cell if cell[LLM_STRING] == llm_string else None


def insert(cells: Cells, slot: Slot) -> None:
    """Index ``slot``, whose pair is not indexed yet. O(1)."""
    key = slot[KEY]
    cell = cells.get(key)
    if cell is None:
        cells[key] = slot
    elif cell[LLM_STRING] is BUCKET:
        cell[_SLOTS][slot[LLM_STRING]] = slot
    else:
        slots = {cell[LLM_STRING]: cell, slot[LLM_STRING]: slot}
        cells[key] = [key, BUCKET, slots]


def remove(cells: Cells, slot: Slot) -> None:
    """Unindex ``slot``; a bucket left with one slot becomes that slot again. O(1)."""
    key = slot[KEY]
    cell = cells.get(key)
    if cell is slot:
        del cells[key]
    elif cell is not None and cell[LLM_STRING] is BUCKET:
        slots = cell[_SLOTS]
        if slots.get(slot[LLM_STRING]) is slot:
            del slots[slot[LLM_STRING]]
            if len(slots) == 1:
                (cells[key],) = slots.values()
