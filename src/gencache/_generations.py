"""``Generations``: the read-only list that in-process hits share instead of copying.

Copying a hit's list cost an in-memory hit ~40 ns, 15 % of LangChain's own lookup; a
shared list that refuses changes costs nothing per hit and keeps the cache safe from its
callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from langchain_core.outputs import Generation

__all__ = ["Generations"]


class Generations(list["Generation"]):
    """The generations of a cached entry: a ``list`` that refuses to be changed.

    An in-memory hit, and a hit of Redis's near cache, returns the entry's own
    ``Generations``, shared by every hit of the entry, instead of a new list (LangChain's
    own cache returns its stored list too, and a change to it changes the cache). Any
    method that would change the list raises ``TypeError``: copy it first
    (``list(hit)``). ``copy.copy``, ``copy.deepcopy`` and ``pickle`` give a plain
    ``list``. The ``Generation`` objects inside are the cache's own, as with LangChain.

    Thread-safe: it never changes after it is built (O(n) for n generations).
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[list[Generation]], tuple[list[Generation]]]:
        return (list, (list(self),))

    def __reduce_ex__(
        self, protocol: Any
    ) -> tuple[type[list[Generation]], tuple[list[Generation]]]:
        return self.__reduce__()


def _read_only(self: Generations, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        "a cache hit is read-only (it is the cache's own list): copy it first, list(hit)"
    )


# Set after the class so that each keeps list's signature for type checkers.
for _name in (
    "__delitem__",
    "__iadd__",
    "__imul__",
    "__setitem__",
    "append",
    "clear",
    "extend",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
):
    setattr(Generations, _name, _read_only)
del _name
