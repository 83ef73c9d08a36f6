"""A memo of recently seen serialized message lists, keyed by their prefixes.

A conversation's next prompt is the previous one plus the messages it adds. Remembering
what was computed for a prompt (its canonical form, its unchunked form) lets the next
turn reuse it for the shared prefix and pay only for the new messages. Thread-safe
without a lock: dict reads and writes are atomic, and a race only costs a recomputation
(or moves the next ``clear()``). Each call is O(1) dict operations plus one
``startswith`` of the prefix (a memory comparison) and, for :meth:`PrefixMemo.prefix`,
at most ``tries`` reverse searches for a message boundary.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

__all__ = ["BETWEEN", "MEMO_CHARS", "PrefixMemo"]

V = TypeVar("V")

BETWEEN: Final = '}}, {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "'
"""Where one message of LangChain's ``dumps()`` of a message list ends and the next begins."""

MEMO_CHARS: Final = 4_000_000
"""Characters one memo holds at most (prefixes and the values counted by their callers)."""

_TRIES: Final = 3  # message boundaries tried, from the end, for a known prefix


class PrefixMemo(Generic[V]):
    """``{length of a prefix "[m1, ..., mk" of a prompt: (that prefix, a value)}``.

    A value is found only after comparing its prefix with the new prompt character for
    character, so a hit is never a different prompt.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[str, V]] = {}
        self._held = [0]

    def whole(self, p: str) -> tuple[str, V] | None:
        """The entry for ``p`` itself (its text up to the closing ``]``), if remembered."""
        known = self._entries.get(len(p) - 1)
        return known if known is not None and p.startswith(known[0]) else None

    def prefix(self, p: str) -> tuple[int, V] | None:
        """``(where the prefix ends, its value)`` for the longest remembered prefix of
        ``p`` that ends at one of its last message boundaries; ``None`` if there is none.
        The prefix ends after the ``}}`` that closes its last message."""
        end = len(p)
        for _ in range(_TRIES):
            cut = p.rfind(BETWEEN, 0, end)
            if cut < 0:
                break
            known = self._entries.get(cut + 2)
            if known is not None and p.startswith(known[0]):
                return cut + 2, known[1]
            end = cut + len(BETWEEN) - 1
        return None

    def remember(self, p: str, value: V, size: int) -> None:
        """Keep ``value`` for the prompt ``p``, counted as ``size`` characters (an entry
        over a quarter of :data:`MEMO_CHARS` is not kept; a full memo starts over)."""
        if size > MEMO_CHARS // 4:
            return
        if self._held[0] + size > MEMO_CHARS:
            self._entries.clear()
            self._held[0] = 0
        self._held[0] += size
        self._entries[len(p) - 1] = (p[:-1], value)
