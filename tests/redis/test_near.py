"""The near cache: repeated hits served in-process, kept coherent with Redis.

Whether a hit reached Redis is read from the server's own ``INFO commandstats``.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.outputs import ChatGeneration
from redis.client import Redis

from gencache.redis import RedisCache
from tests.backends.redis import RedisServer
from tests.helpers import chat_gens, gens
from tests.redis.conftest import MakeCache

P, L = "prompt", "llm"


def gets(raw: Redis) -> int:
    """How many GET commands the server has run."""
    stats = raw.info("commandstats").get("cmdstat_get", {})
    return int(stats.get("calls", 0))


def eventually(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def served_locally(cache: RedisCache, raw: Redis, prompt: str = P) -> bool:
    """Look ``prompt`` up; whether the hit was answered without a GET."""
    before = gets(raw)
    return cache.lookup(prompt, L) is not None and gets(raw) == before


def test_repeated_hits_do_not_reach_redis(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=True)
    cache.update(P, L, gens("v1"))
    eventually(lambda: served_locally(cache, raw))
    before, hits = gets(raw), cache.stats().hits
    for _ in range(100):
        hit = cache.lookup(P, L)
        assert hit == gens("v1")
        with pytest.raises(TypeError):  # the near cache's own read-only list: never changed
            hit.clear()
    assert gets(raw) == before
    stats = cache.stats()
    assert stats.hits == hits + 100
    assert stats.saved.calls == hits + 100  # each local hit saved a call, as a read does


def test_local_hits_are_rewritten_as_reads_are(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=True, mark_hits=True)
    cache.update(P, L, chat_gens("v1"))
    eventually(lambda: served_locally(cache, raw))
    before = gets(raw)
    marks = []
    for _ in range(3):
        hit = cache.lookup(P, L)
        assert hit is not None
        assert isinstance(hit[0], ChatGeneration)
        assert hit[0].message.content == "v1"
        marks.append(hit[0].message.response_metadata["gencache"])
        hit.append(gens("x")[0])  # a rewritten hit is a new list, the caller's own
        time.sleep(0.05)
    assert gets(raw) == before
    assert all(mark["hit"] and mark["backend"] == "RedisCache" for mark in marks)
    assert marks[0]["age_s"] < marks[-1]["age_s"]  # each hit's own age, not the first's
    again = cache.lookup(P, L)
    assert again is not None
    assert len(again) == 1


def test_own_update_and_clear_are_seen_at_once(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=True)
    cache.update(P, L, gens("v1"))
    eventually(lambda: served_locally(cache, raw))
    cache.update(P, L, gens("v2"))
    assert cache.lookup(P, L) == gens("v2")
    eventually(lambda: served_locally(cache, raw))
    cache.clear()
    assert cache.lookup(P, L) is None


def test_another_clients_writes_are_seen(make: MakeCache, raw: Redis) -> None:
    near, other = make(near_cache=True), make()
    other.update(P, L, gens("v1"))
    eventually(lambda: served_locally(near, raw))
    other.update(P, L, gens("v2"))
    eventually(lambda: near.lookup(P, L) == gens("v2"), 1.0)
    eventually(lambda: served_locally(near, raw))
    raw.delete(near.redis_key(P, L))  # e.g. redis-cli DEL
    eventually(lambda: near.lookup(P, L) is None, 1.0)
    other.update(P, L, gens("v3"))
    eventually(lambda: served_locally(near, raw))
    other.clear()
    eventually(lambda: near.lookup(P, L) is None, 1.0)


def test_a_flushdb_by_anyone_is_seen(own: RedisServer) -> None:
    near = RedisCache(own.url, near_cache=True)
    with own.client() as raw:
        near.update(P, L, gens("v1"))
        eventually(lambda: served_locally(near, raw))
        raw.flushdb()
        eventually(lambda: near.lookup(P, L) is None, 1.0)
    near.close()


async def test_async_lookups_use_the_near_cache(make: MakeCache, raw: Redis) -> None:
    near, other = make(near_cache=True), make()
    await near.aupdate(P, L, gens("v1"))
    assert await near.alookup(P, L) == gens("v1")
    eventually(lambda: served_locally(near, raw))
    before = gets(raw)
    assert await near.alookup(P, L) == gens("v1")
    assert gets(raw) == before
    await other.aupdate(P, L, gens("v2"))
    deadline = time.monotonic() + 1
    while await near.alookup(P, L) != gens("v2"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


def test_entries_expire_at_their_ttl(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=True, ttl=0.4)
    cache.update(P, L, gens("short"))
    eventually(lambda: served_locally(cache, raw), 0.3)
    eventually(lambda: cache.lookup(P, L) is None, 1.0)


def test_the_size_bound_evicts_the_least_recently_used(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=2)
    for p in "abc":
        cache.update(p, L, gens(p))
    eventually(lambda: served_locally(cache, raw, "a"))
    eventually(lambda: served_locally(cache, raw, "b"))
    assert served_locally(cache, raw, "a")  # "a" is now the most recent
    eventually(lambda: served_locally(cache, raw, "c"))  # evicts "b"
    assert served_locally(cache, raw, "a")
    assert not served_locally(cache, raw, "b")


def test_an_outage_empties_it_and_a_restart_brings_it_back(own: RedisServer) -> None:
    cache = RedisCache(own.url, near_cache=True)
    cache.update(P, L, gens("v1"))
    with own.client() as raw:
        eventually(lambda: served_locally(cache, raw))
    own.kill()
    eventually(lambda: cache.lookup(P, L) is None, 1.0)  # nothing served while blind
    restarted = RedisServer(port=own.port).start()
    try:
        cache.update(P, L, gens("v2"))
        with restarted.client() as raw:
            eventually(lambda: served_locally(cache, raw))
            raw.set(cache.redis_key(P, L), b"garbage")
        eventually(lambda: cache.lookup(P, L) is None, 1.0)
    finally:
        cache.close()
        restarted.stop()


def test_threads_never_keep_a_stale_value(make: MakeCache, raw: Redis) -> None:
    near, other = make(near_cache=True), make()
    keys = [f"k{i}" for i in range(10)]

    def read(_: int) -> None:
        for i in range(300):
            near.lookup(keys[i % 10], L)

    def write(_: int) -> None:
        for i in range(100):
            other.update(keys[i % 10], L, gens(f"w{i}"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, range(6)))
        list(pool.map(write, range(2)))
    for i, key in enumerate(keys):
        other.update(key, L, gens(f"final {i}"))

    def final(i: int) -> bool:
        return near.lookup(keys[i], L) == gens(f"final {i}")

    for i in range(len(keys)):
        eventually(functools.partial(final, i), 1.0)


def _child(url: str, namespace: str, done: multiprocessing.Queue[str]) -> None:
    cache = RedisCache(url, namespace=namespace)
    cache.update(P, L, gens("written by the child"))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if INHERITED[0].lookup(P, L) == gens("written by the child"):
            done.put("fresh")
            return
        time.sleep(0.01)
    done.put("stale")


INHERITED: list[RedisCache] = []


def test_a_forked_child_does_not_serve_what_it_inherited(make: MakeCache, raw: Redis) -> None:
    cache = make(near_cache=True)
    cache.update(P, L, gens("written by the parent"))
    eventually(lambda: served_locally(cache, raw))
    INHERITED[:] = [cache]
    context = multiprocessing.get_context("fork")
    done: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child, args=(raw_url(raw), cache.namespace, done))
    child.start()
    try:
        assert done.get(timeout=10) == "fresh"
    finally:
        child.join(10)
        INHERITED.clear()


def raw_url(raw: Redis) -> str:
    kwargs = raw.get_connection_kwargs()
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


def test_a_frozen_server_turns_it_off_and_thawing_brings_it_back(own: RedisServer) -> None:
    # A silent network (no FIN, no RST) is noticed by the listener's heartbeat: from then
    # on lookups go to Redis (and time out, as misses) instead of trusting what may be stale.
    cache = RedisCache(own.url, near_cache=True, socket_timeout=0.2)
    try:
        cache.update(P, L, gens("v1"))
        with own.client() as raw:
            eventually(lambda: served_locally(cache, raw))
        own.pause()
        try:
            eventually(lambda: cache.lookup(P, L) is None, 15.0)
        finally:
            own.resume()
        with own.client() as raw:
            eventually(lambda: served_locally(cache, raw), 15.0)
    finally:
        cache.close()


def test_killing_the_listener_connection_empties_it_until_it_is_back(own: RedisServer) -> None:
    cache, other = RedisCache(own.url, near_cache=True), RedisCache(own.url)
    try:
        cache.update(P, L, gens("v1"))
        with own.client() as raw:
            eventually(lambda: served_locally(cache, raw))
            assert raw.client_kill_filter(_type="pubsub") == 1  # the listener's one connection
            other.update(P, L, gens("v2"))  # made while nobody listened: no message
            eventually(lambda: cache.lookup(P, L) == gens("v2"), 5.0)  # not stale for ever
            eventually(lambda: served_locally(cache, raw))
            assert cache.lookup(P, L) == gens("v2")
            # Killing every other connection leaves the tracking in place.
            raw.client_kill_filter(_type="normal", skipme=True)
            other.update(P, L, gens("v3"))
            eventually(lambda: cache.lookup(P, L) == gens("v3"), 5.0)
    finally:
        cache.close()
        other.close()
