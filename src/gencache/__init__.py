"""gencache: caches for LangChain LLM and chat-model calls that never pay twice.

Drop-in replacements for LangChain's caches (same names, same calls, same results),
correct under threads and asyncio, with TTL, LRU and statistics::

    from gencache import InMemoryCache  # was: from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    set_llm_cache(InMemoryCache(maxsize=10_000))

Beyond LangChain's caches: canonical chat keys (a conversation re-run hits every turn),
per-call :func:`control`, :func:`complete_only` admission, ``cache.explain()``,
single-flight (``single_flight=True``), savings in ``stats()``, cached streams
(:func:`cached`), a LangGraph node cache (``gencache.langgraph``) and record/replay for
test suites (``gencache.testing``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gencache._admission import complete_only
from gencache._cache import GenCache
from gencache._control import control
from gencache._explain import Explanation
from gencache._policies import Policy
from gencache.errors import BackendError, BackendUnavailableError, GenCacheError
from gencache.memory import InMemoryCache
from gencache.stats import CacheStats, Savings

if TYPE_CHECKING:
    from gencache.langchain import cached
    from gencache.redis import RedisCache
    from gencache.sqlite import SQLiteCache

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheStats",
    "Explanation",
    "GenCache",
    "GenCacheError",
    "InMemoryCache",
    "Policy",
    "RedisCache",
    "SQLiteCache",
    "Savings",
    "cached",
    "complete_only",
    "control",
]

# Backends and integrations load on first use: ``import gencache`` never imports redis-py
# (an optional extra), sqlite3, nor LangChain's language-model classes.
_LAZY = {
    "RedisCache": "gencache.redis",
    "SQLiteCache": "gencache.sqlite",
    "cached": "gencache.langchain",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.2.0"
