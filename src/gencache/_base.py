"""The common surface of every gencache backend, over LangChain's ``BaseCache``."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation

from gencache.stats import CacheStats

__all__ = ["GenCache", "check_generations"]


def check_generations(return_val: Any) -> list[Generation]:
    """Return ``return_val`` as a new list, or raise ``TypeError``.

    LangChain passes ``result.generations``, a list of ``Generation`` (or subclasses).
    Anything else, including a bare ``str`` or a single ``Generation``, is refused rather
    than stored as something a later hit could not use. Cost: O(len(return_val)).
    """
    if isinstance(return_val, (str, bytes, Generation)) or not isinstance(return_val, Sequence):
        msg = (
            "return_val must be a sequence of langchain_core.outputs.Generation, "
            f"not {type(return_val).__name__}"
        )
        raise TypeError(msg)
    generations = list(return_val)
    for item in generations:
        if not isinstance(item, Generation):
            msg = (
                "return_val must contain only langchain_core.outputs.Generation objects, "
                f"found {type(item).__name__}"
            )
            raise TypeError(msg)
    return generations


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
