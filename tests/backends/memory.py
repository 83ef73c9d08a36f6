"""The in-memory backend under test."""

from __future__ import annotations

from typing import Any

from gencache import GenCache, InMemoryCache
from tests.backends import Backend


def _make(**options: Any) -> GenCache:
    return InMemoryCache(**options)


BACKEND = Backend("memory", _make, frozenset({"maxsize", "policy", "ttl", "timer"}))
