"""``GenCache``: the LangChain-facing base of every gencache cache, and argument checks."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation

from gencache._accounting import Prices
from gencache._admission import Admit
from gencache._explain import Explanation
from gencache.stats import CacheStats, Savings

__all__ = [
    "GENERATION_TYPES",
    "CacheOptions",
    "GenCache",
    "check_bool",
    "check_generations",
    "check_options",
    "check_scope",
]

#: Classes already checked to be ``Generation`` subclasses: pydantic's isinstance is slow.
#: Shared by the caches' hot paths, which test ``type(item) in GENERATION_TYPES`` inline.
GENERATION_TYPES: set[type] = {Generation}


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
        if cls not in GENERATION_TYPES:
            if not isinstance(item, Generation):
                msg = (
                    "return_val must contain only langchain_core.outputs.Generation objects, "
                    f"found {cls.__name__}"
                )
                raise TypeError(msg)
            GENERATION_TYPES.add(cls)
    return generations


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        msg = f"{name} must be a bool, not {type(value).__name__}"
        raise TypeError(msg)
    return value


class CacheOptions(TypedDict, total=False):
    """The options every cache takes (memory, SQLite, Redis), as keyword arguments.

    Attributes:
        canonical_keys: Key chat prompts by their canonical form (default ``True``;
            docs/keys.md). ``False`` keys them byte for byte, as LangChain does.
        admit: ``(prompt, llm_string, generations) -> bool`` deciding what is stored
            (default: everything); ``gencache.complete_only`` is one.
        single_flight: Coalesce identical concurrent misses into one provider call
            (default ``False``; docs/single-flight.md).
        flight_timeout: The longest a coalesced miss waits, in seconds (default 60).
        prices: ``{model: (input, output)}`` per million tokens, for money saved.
        zero_usage_on_hit: A hit's token counts are 0 (default ``False``).
        mark_hits: A hit carries ``response_metadata["gencache"]`` (default ``False``).
    """

    canonical_keys: bool
    admit: Admit | None
    single_flight: bool
    flight_timeout: float
    prices: Prices | str | None
    zero_usage_on_hit: bool
    mark_hits: bool


_OPTION_KINDS: dict[str, type | tuple[type, ...]] = {
    "canonical_keys": bool,
    "single_flight": bool,
    "zero_usage_on_hit": bool,
    "mark_hits": bool,
}


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse unknown :class:`CacheOptions` and flags that are not ``bool``.

    ``admit``, ``flight_timeout`` and ``prices`` are checked where they are used.

    Raises:
        TypeError: For an unknown option or a flag of another type.
    """
    known = CacheOptions.__annotations__
    for name, value in options.items():
        if name not in known:
            msg = f"unexpected keyword argument {name!r}"
            raise TypeError(msg)
        if name in _OPTION_KINDS:
            check_bool(name, value)


def check_scope(scope: Any) -> str | None:
    """Return ``scope`` if it is ``None`` or a non-empty ``str``.

    Raises:
        TypeError: If it is not a ``str``.
        ValueError: If it is empty.
    """
    if scope is None or (isinstance(scope, str) and scope):
        return scope
    if isinstance(scope, str):
        msg = "scope must be a non-empty str or None, not ''"
        raise ValueError(msg)
    msg = f"scope must be a str or None, not {type(scope).__name__}"
    raise TypeError(msg)


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
    def explain(self, prompt: str, llm_string: str) -> Explanation:
        """Say whether ``(prompt, llm_string)`` would hit now, and if not, why not."""

    @abstractmethod
    def __len__(self) -> int:
        """Return the number of live entries."""

    def __bool__(self) -> bool:
        # A cache is a service object: an empty cache must not be falsy (``cache or x``).
        return True

    @abstractmethod
    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache."""

    def stored_savings(self) -> dict[str, Savings]:
        """What hits saved per model, for every process that used this cache's storage.

        For a cache in one process's memory that is :attr:`CacheStats.by_model`;
        persistent caches keep their savings in the store.
        """
        return dict(self.stats().by_model)
