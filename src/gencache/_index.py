"""A prompt-first index of ``(prompt, llm_string)`` pairs, for the in-memory cache.

LangChain passes both strings as new objects on every call, so a dict keyed by the pair
must hash ~800 characters per lookup. Nearly every prompt is cached under one model
configuration, so this index hashes only the prompt and then compares the llm_string
(a ``memcmp``). A cell of the index is either one slot or, when the same prompt is cached
for several configurations, a bucket: a dict from llm_string to slot.

A slot is a list ``[prompt, llm_string, *generations]``: one list because creating one
costs ~30 ns against ~120 ns for an instance of a class, and because ``slot[2:]`` is at
once the generations and the new list a hit must return.
Queues key slots by ``id(slot)``, which is unique while the queue keeps the slot alive.

Not thread-safe: the owning cache serialises writes with its lock.
"""

from __future__ import annotations

from typing import Any, Union

__all__ = ["GENERATIONS", "LLM_STRING", "PROMPT", "Cells", "Slot", "find", "insert", "remove"]

#: ``[prompt, llm_string, *generations]``.
Slot = list[Any]
PROMPT, LLM_STRING, GENERATIONS = 0, 1, 2
Cells = dict[str, Union[Slot, dict[str, Slot]]]  # noqa: UP007 - runtime alias on 3.10


def find(cells: Cells, prompt: str, llm_string: str) -> Slot | None:
    """Return the slot for the pair, or ``None``. O(1)."""
    cell = cells.get(prompt)
    if cell is None:
        return None
    if type(cell) is list:
        return cell if cell[LLM_STRING] == llm_string else None
    return cell.get(llm_string)  # type: ignore[union-attr]


def insert(cells: Cells, slot: Slot) -> None:
    """Index ``slot``, whose pair is not indexed yet. O(1)."""
    prompt = slot[PROMPT]
    cell = cells.get(prompt)
    if cell is None:
        cells[prompt] = slot
    elif type(cell) is list:
        cells[prompt] = {cell[LLM_STRING]: cell, slot[LLM_STRING]: slot}
    else:
        cell[slot[LLM_STRING]] = slot


def remove(cells: Cells, slot: Slot) -> None:
    """Unindex ``slot``; a bucket left with one slot becomes that slot again. O(1)."""
    prompt = slot[PROMPT]
    cell = cells.get(prompt)
    if cell is slot:
        del cells[prompt]
    elif type(cell) is dict and cell.get(slot[LLM_STRING]) is slot:
        del cell[slot[LLM_STRING]]
        if len(cell) == 1:
            (cells[prompt],) = cell.values()
