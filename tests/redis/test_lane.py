"""Sync lookups on a cache built from a URL keep their connections between calls.

What the server sees (its connection counters, ``CLIENT KILL``, ``CLIENT PAUSE``) shows
which connections the cache holds; nothing is mocked.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from redis.client import Redis

from gencache.redis import RedisCache
from tests.backends.redis import RedisServer
from tests.helpers import gens

P, L = "prompt", "llm"


def received(raw: Redis) -> int:
    """Connections the server has accepted so far."""
    return int(raw.info("stats")["total_connections_received"])


def connected(raw: Redis) -> int:
    return int(raw.info("clients")["connected_clients"])


def test_lookups_reuse_one_connection(own: RedisServer) -> None:
    cache = RedisCache(own.url, strict=True)
    with own.client() as raw:
        cache.update(P, L, gens("x"))
        assert cache.lookup(P, L) == gens("x")
        before = received(raw)
        for _ in range(100):
            assert cache.lookup(P, L) == gens("x")
        assert received(raw) == before
    cache.close()


def test_a_connection_the_server_closed_is_retried_once(own: RedisServer) -> None:
    cache = RedisCache(own.url, strict=True)
    with own.client() as raw:
        cache.update(P, L, gens("x"))
        assert cache.lookup(P, L) == gens("x")
        assert raw.client_kill_filter(_type="normal", skipme=True) >= 1
        assert cache.lookup(P, L) == gens("x")  # strict: a failure would raise
    assert cache.stats().hits == 2
    cache.close()


def test_close_disconnects_the_kept_connections_and_the_cache_still_works(
    own: RedisServer,
) -> None:
    cache = RedisCache(own.url, strict=True)
    with own.client() as raw:
        cache.update(P, L, gens("x"))
        assert cache.lookup(P, L) == gens("x")
        before = connected(raw)
        cache.close()  # writes the hit's savings first, on a connection it then closes too
        deadline = time.monotonic() + 10  # the server sees a closed socket a little later
        while connected(raw) >= before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert connected(raw) < before
        assert cache.lookup(P, L) == gens("x")
    cache.close()


def test_more_concurrent_lookups_than_kept_connections_stay_within_the_pool(
    own: RedisServer,
) -> None:
    # 80 lookups held at the server at once: 64 connections (the pool's bound) serve
    # them, 16 lookups wait for one; 16 connections are kept afterwards, the rest go back.
    cache = RedisCache(own.url, strict=True)
    threads, results = 80, []
    with own.client() as raw:
        cache.update(P, L, gens("x"))
        barrier = threading.Barrier(threads + 1)

        def look() -> None:
            barrier.wait()
            results.append(cache.lookup(P, L))

        pool = [threading.Thread(target=look) for _ in range(threads)]
        for t in pool:
            t.start()
        raw.client_pause(200)  # every command of every other client waits 200 ms
        barrier.wait()
        for t in pool:
            t.join(10)
        assert results == [gens("x")] * threads
        assert connected(raw) <= 64 + 1  # the cache's pool, and raw
        cache.update(P, L, gens("y"))  # the pool still has connections for other commands
        for _ in range(20):
            assert cache.lookup(P, L) == gens("y")
    cache.close()


INHERITED: list[RedisCache] = []


def _child(url: str, done: multiprocessing.Queue[str]) -> None:
    cache = INHERITED[0]
    with Redis.from_url(url) as raw:
        before = received(raw)
        ok = cache.lookup(P, L) == gens("parent") and received(raw) == before + 1
        cache.update("child", L, gens("child"))
        ok = ok and cache.lookup("child", L) == gens("child")
    done.put("own connection" if ok else "inherited connection")


def test_a_forked_child_does_not_use_the_parents_connections(own: RedisServer) -> None:
    cache = RedisCache(own.url, strict=True)
    cache.update(P, L, gens("parent"))
    assert cache.lookup(P, L) == gens("parent")  # a kept connection, then fork
    INHERITED[:] = [cache]
    context = multiprocessing.get_context("fork")
    done: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child, args=(own.url, done))
    child.start()
    try:
        assert done.get(timeout=10) == "own connection"
    finally:
        child.join(10)
        INHERITED.clear()
    for _ in range(20):
        assert cache.lookup(P, L) == gens("parent")
    cache.close()


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_keys_are_encoded_as_the_url_says_on_every_path(own: RedisServer, encoding: str) -> None:
    cache = RedisCache(f"{own.url}?encoding={encoding}", namespace="café", strict=True)
    with own.client() as raw:
        cache.update(P, L, gens("x"))
        assert raw.keys("*") == [cache.redis_key(P, L).encode(encoding)]
        assert cache.redis_key(P, L).startswith("café:_:")
        assert cache.lookup(P, L) == gens("x")
    assert len(cache) == 1
    cache.clear()
    assert cache.lookup(P, L) is None
    cache.close()
