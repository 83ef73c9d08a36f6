"""gencache: caches for LangChain LLM and chat-model calls that never pay twice.

Drop-in replacements for LangChain's caches (same names, same calls, same results),
correct under threads and asyncio, with TTL, LRU and statistics::

    from gencache import InMemoryCache  # was: from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    set_llm_cache(InMemoryCache(maxsize=10_000))
"""

from __future__ import annotations

from gencache._base import GenCache
from gencache._policies import Policy
from gencache.errors import BackendError, BackendUnavailableError, GenCacheError
from gencache.memory import InMemoryCache
from gencache.stats import CacheStats

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheStats",
    "GenCache",
    "GenCacheError",
    "InMemoryCache",
    "Policy",
]

__version__ = "0.1.0"
