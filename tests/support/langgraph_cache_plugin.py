"""A pytest plugin that runs LangGraph's own node-cache tests against ``NodeCache``.

LangGraph's source distribution ships its tests; their ``tests/conftest.py`` has a
``cache`` fixture (LangGraph's memory, SQLite and Redis caches) that its cache tests
take. This plugin swaps that fixture, before pytest reads the conftest's fixtures, for
one yielding :class:`gencache.langgraph.NodeCache` over each gencache backend, with the
same ids: ``memory`` (``InMemoryCache``), ``sqlite`` (``SQLiteCache`` on a temporary
file) and ``redis`` (``RedisCache`` on ``$GENCACHE_LANGGRAPH_REDIS_URL``; skipped when
unset). Nothing of LangGraph's is copied: its tests run from the unpacked sdist::

    NO_DOCKER=true GENCACHE_LANGGRAPH_REDIS_URL=redis://localhost:PORT/0 \\
    PYTHONPATH=/work/main/tests/support .venv/bin/pytest -p langgraph_cache_plugin \\
        --node-cache-only SDIST/tests

Loaded as a top-level module (``PYTHONPATH``), not as ``tests.support...``: LangGraph's
tests are a ``tests`` package too. Not thread-safe (pytest's hooks run in one thread);
costs one attribute swap at startup and one backend per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gencache import InMemoryCache, RedisCache, SQLiteCache
from gencache.langgraph import NodeCache

REDIS_URL_VAR = "GENCACHE_LANGGRAPH_REDIS_URL"
"""The environment variable naming the Redis server of the ``redis`` runs."""

_swapped: list[str] = []  # the conftest files whose ``cache`` fixture this plugin replaced


@pytest.fixture(name="cache", params=["memory", "sqlite", "redis"])
def _node_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeCache]:
    """``NodeCache`` over the gencache backend named by the param; closed afterwards."""
    if request.param == "memory":
        yield NodeCache(InMemoryCache())
    elif request.param == "sqlite":
        with SQLiteCache(tmp_path / "nodes.db") as sqlite:
            yield NodeCache(sqlite)
    else:
        url = os.environ.get(REDIS_URL_VAR)
        if not url:
            pytest.skip(f"${REDIS_URL_VAR} is not set")
        # A fresh namespace per test; its savings counter outlives clear(), so point
        # the variable at a throwaway server (scripts/test starts and stops one).
        redis = RedisCache(url, namespace=f"gencache-lgtest:{uuid.uuid4().hex}")
        try:
            yield NodeCache(redis)
        finally:
            redis.clear()
            redis.close()


def _is_langgraph_conftest(plugin: Any, plugin_name: str) -> bool:
    # LangGraph's tests/conftest.py: the one conftest defining ``cache`` next to the
    # LangGraph caches it builds it from.
    return (
        plugin_name.endswith("conftest.py")
        and hasattr(plugin, "cache")
        and hasattr(plugin, "SqliteCache")
        and getattr(plugin, "__name__", "") == "tests.conftest"
    )


def pytest_plugin_registered(plugin: Any, plugin_name: str) -> None:
    """Replace the ``cache`` fixture of LangGraph's conftest as it is registered.

    pytest reads a conftest's fixtures only when it collects its directory, after this.
    """
    if _is_langgraph_conftest(plugin, plugin_name):
        plugin.cache = _node_cache
        _swapped.append(plugin_name)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--node-cache-only``: run only the tests that take the ``cache`` fixture."""
    parser.addoption(
        "--node-cache-only",
        action="store_true",
        help="deselect every test that does not take LangGraph's `cache` fixture",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--node-cache-only``, keep only the tests that take the ``cache`` fixture."""
    if not config.getoption("node_cache_only"):
        return
    keep = [item for item in items if "cache" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if "cache" not in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header() -> str:
    """Say in the run's header which backends the ``cache`` fixture now builds."""
    redis = os.environ.get(REDIS_URL_VAR) or "skipped"
    return f"langgraph_cache_plugin: cache = NodeCache(memory | sqlite | redis: {redis})"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail loudly if no LangGraph conftest was seen: the run would test LangGraph's caches."""
    if not _swapped and session.items:
        msg = "langgraph_cache_plugin: LangGraph's tests/conftest.py was not loaded"
        raise pytest.UsageError(msg)
