"""gencache: caches for LangChain LLM and chat-model calls that never pay twice.

Drop-in replacements for LangChain's caches (same names, same calls, same results),
correct under threads and asyncio, with TTL, LRU and statistics::

    from gencache import InMemoryCache  # was: from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    set_llm_cache(InMemoryCache(maxsize=10_000))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gencache._base import GenCache
from gencache._policies import Policy
from gencache.errors import BackendError, BackendUnavailableError, GenCacheError
from gencache.memory import InMemoryCache
from gencache.stats import CacheStats

if TYPE_CHECKING:
    from gencache.redis import RedisCache
    from gencache.sqlite import SQLiteCache

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheStats",
    "GenCache",
    "GenCacheError",
    "InMemoryCache",
    "Policy",
    "RedisCache",
    "SQLiteCache",
]

# Backends load on first use: ``import gencache`` never imports redis-py (an optional
# extra) nor sqlite3.
_LAZY = {"RedisCache": "gencache.redis", "SQLiteCache": "gencache.sqlite"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"
