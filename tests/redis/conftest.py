"""Fixtures for the Redis-only tests: the shared server, raw clients, fresh namespaces.

Without the ``redis`` package (the ``[redis]`` extra) this folder is not collected, as
the Redis backend does not exist then; with it, the tests need ``redis-server`` and fail,
never skip, when it is missing.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis.client import Redis

    from gencache.redis import RedisCache
    from tests.backends.redis import RedisServer

collect_ignore_glob = [] if importlib.util.find_spec("redis") else ["test_*.py"]

MakeCache = Callable[..., "RedisCache"]


@pytest.fixture
def server() -> RedisServer:
    """The server shared by the whole test run."""
    from tests.backends.redis import shared_server

    return shared_server()


@pytest.fixture
def own() -> Iterator[RedisServer]:
    """A server of this test's own, to stop, restart or pause without harming others."""
    from tests.backends.redis import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[Redis]:
    """A plain client on the shared server, to arrange and inspect keys directly."""
    with server.client() as client:
        yield client


@pytest.fixture
def namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make(server: RedisServer, namespace: str) -> Iterator[MakeCache]:
    """Build caches on the shared server (default: this test's namespace); close them after."""
    from gencache.redis import RedisCache

    made: list[RedisCache] = []

    def build(url: str | None = None, **options: object) -> RedisCache:
        options.setdefault("namespace", namespace)
        cache = RedisCache(url or server.url, **options)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.clear()
        cache.close()
