"""A prompt-first index of ``(prompt, llm_string)`` pairs, for the in-memory cache.

LangChain passes both strings as new objects on every call, so a dict keyed by the pair
must hash ~800 characters per lookup. Nearly every prompt is cached under one model
configuration, so this index hashes only the prompt and then compares the llm_string
(a ``memcmp``).

A slot is a list ``[prompt, llm_string, *generations]``: one list because creating one
costs ~30 ns against ~120 ns for an instance of a class, and because ``slot[2:]`` is at
once the generations and the new list a hit must return. The index maps each prompt to a
cell, which is a list too: the one slot of that prompt or, when the prompt is cached for
several configurations, a bucket ``[prompt, BUCKET, {llm_string: slot}]``. ``BUCKET``
equals no string, so ``cell[LLM_STRING] == llm_string`` alone tells a hit from a case
for :func:`find`.
Queues key slots by ``id(slot)``, which is unique while the queue keeps the slot alive.

Not thread-safe: the owning cache serialises writes with its lock.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "BUCKET",
    "GENERATIONS",
    "LLM_STRING",
    "PROMPT",
    "Cells",
    "Slot",
    "find",
    "insert",
    "remove",
]

#: ``[prompt, llm_string, *generations]``, or a bucket ``[prompt, BUCKET, {...}]``.
Slot = list[Any]
Cells = dict[str, Slot]
PROMPT, LLM_STRING, GENERATIONS = 0, 1, 2
_SLOTS = 2  # where a bucket keeps its dict

#: The llm_string of a bucket: equal to no string.
BUCKET: Final = object()


def find(cells: Cells, prompt: str, llm_string: str) -> Slot | None:
    """Return the slot for the pair, or ``None``. O(1)."""
    cell = cells.get(prompt)
    if cell is None:
        return None
    if cell[LLM_STRING] is BUCKET:
        slot: Slot | None = cell[_SLOTS].get(llm_string)
        return slot
    return cell if cell[LLM_STRING] == llm_string else None


def insert(cells: Cells, slot: Slot) -> None:
    """Index ``slot``, whose pair is not indexed yet. O(1)."""
    prompt = slot[PROMPT]
    cell = cells.get(prompt)
    if cell is None:
        cells[prompt] = slot
    elif cell[LLM_STRING] is BUCKET:
        cell[_SLOTS][slot[LLM_STRING]] = slot
    else:
        slots = {cell[LLM_STRING]: cell, slot[LLM_STRING]: slot}
        cells[prompt] = [prompt, BUCKET, slots]


def remove(cells: Cells, slot: Slot) -> None:
    """Unindex ``slot``; a bucket left with one slot becomes that slot again. O(1)."""
    prompt = slot[PROMPT]
    cell = cells.get(prompt)
    if cell is slot:
        del cells[prompt]
    elif cell is not None and cell[LLM_STRING] is BUCKET:
        slots = cell[_SLOTS]
        if slots.get(slot[LLM_STRING]) is slot:
            del slots[slot[LLM_STRING]]
            if len(slots) == 1:
                (cells[prompt],) = slots.values()
