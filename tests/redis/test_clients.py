"""How RedisCache meets the clients and URLs applications already have, and their bursts."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis
from redis.client import Redis

from gencache import control
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer
from tests.helpers import chat_gens, gens
from tests.redis.conftest import MakeCache

P, L = "What is the capital of France?", "model='m' temperature=0"


def test_a_client_with_decode_responses_works(
    server: RedisServer, raw: Redis, namespace: str
) -> None:
    client = Redis.from_url(server.url, decode_responses=True)  # what many apps already have
    try:
        cache = RedisCache(client, namespace=namespace, strict=True)
        plain = RedisCache(server.url, namespace=namespace, strict=True)
        cache.update(P, L, chat_gens("Paris"))
        assert cache.lookup(P, L) == chat_gens("Paris")
        assert plain.lookup(P, L) == chat_gens("Paris")  # the same entry, either client
        cache.update("\ud800 lone surrogate", L, gens("odd"))
        assert plain.lookup("\ud800 lone surrogate", L) == gens("odd")
        assert {e.prompt for e in cache.entries()} == {P, "\ud800 lone surrogate"}
        # Values and keys that are not UTF-8 must not raise UnicodeDecodeError.
        raw.set(cache.redis_key("bad", L), b"\xff\xfe not UTF-8")
        raw.set(f"{namespace}:\xff".encode("latin-1"), b"a foreign binary key")
        assert cache.lookup("bad", L) is None
        assert raw.exists(cache.redis_key("bad", L)) == 0  # dropped as undecodable
        assert len(cache) == 2
        cache.clear()
        assert len(plain) == 0
        assert raw.get(f"{namespace}:\xff".encode("latin-1")) == b"a foreign binary key"
    finally:
        client.close()


async def test_async_clients_with_decode_responses_work(
    server: RedisServer, raw: Redis, namespace: str
) -> None:
    sync_client = Redis.from_url(server.url, decode_responses=True)
    async_client = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        cache = RedisCache(sync_client, namespace=namespace, async_client=async_client, strict=True)
        await cache.aupdate(P, L, chat_gens("Paris"))
        assert await cache.alookup(P, L) == chat_gens("Paris")
        raw.set(cache.redis_key("bad", L), b"\xff\xfe not UTF-8")
        assert await cache.alookup("bad", L) is None
        assert raw.exists(cache.redis_key("bad", L)) == 0
        await cache.aclear()
        assert len(cache) == 0
    finally:
        sync_client.close()
        await async_client.aclose()


def test_decode_responses_in_a_url_is_overridden(server: RedisServer, namespace: str) -> None:
    cache = RedisCache(f"{server.url}?decode_responses=true", namespace=namespace, strict=True)
    cache.update(P, L, chat_gens("Paris"))
    assert cache.lookup(P, L) == chat_gens("Paris")

    async def main() -> None:
        assert await cache.alookup(P, L) == chat_gens("Paris")
        await cache.aupdate(P, L, gens("async"))
        await cache.aclose()

    asyncio.run(main())
    assert cache.lookup(P, L) == gens("async")
    assert len(cache) == 1
    near = RedisCache(f"{server.url}?decode_responses=true", namespace=namespace, near_cache=2)
    try:
        assert near.lookup(P, L) == gens("async")
    finally:
        near.close()
    cache.clear()
    cache.close()


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://x", "did you mean redis://x?"),
        ("http://:hunter2@cache:6379/0", "did you mean redis://***@cache:6379/0?"),
        ("127.0.0.1:6379", "did you mean redis://127.0.0.1:6379?"),
        ("localhost:6379/2", "did you mean redis://localhost:6379/2?"),
        ("cache.internal", "did you mean redis://cache.internal?"),
    ],
)
def test_a_url_that_is_not_redis_gets_a_hint(url: str, hint: str) -> None:
    with pytest.raises(ValueError, match="not a Redis URL") as info:
        RedisCache(url)
    assert str(info.value).endswith(hint)
    assert "hunter2" not in str(info.value)


def test_url_schemes_are_case_insensitive(server: RedisServer, namespace: str) -> None:
    url = server.url.replace("redis://", "REDIS://")
    cache = RedisCache(url, namespace=namespace, strict=True)
    cache.update(P, L, gens("upper-case scheme"))
    assert RedisCache(server.url, namespace=namespace).lookup(P, L) == gens("upper-case scheme")
    cache.clear()
    assert repr(cache).startswith("RedisCache('redis://")


async def test_an_asyncio_client_is_pointed_to_async_client(server: RedisServer) -> None:
    client = aioredis.Redis.from_url(server.url)
    with pytest.raises(TypeError, match="pass it as async_client="):
        RedisCache(client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pass it as async_client="):
        RedisCache(redis_=client)  # type: ignore[arg-type]
    await client.aclose()


def test_a_huge_ttl_works(make: MakeCache, raw: Redis) -> None:
    # 1e16 s overflows Redis's 64-bit millisecond deadline: every write used to fail.
    cache = make(ttl=1e16, strict=True)
    cache.update(P, L, gens("for ever"))
    assert cache.lookup(P, L) == gens("for ever")
    assert raw.pttl(cache.redis_key(P, L)) > 10**14  # over 3,000 years
    with control(ttl=1e300):
        cache.update(P, L, gens("per call"))
    assert cache.lookup(P, L) == gens("per call")

    async def main() -> None:
        await cache.aupdate(P, L, gens("async"))
        assert await cache.alookup(P, L) == gens("async")
        await cache.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("timeout", [1e10, 3601, float("inf"), float("nan")])
def test_a_socket_timeout_the_socket_layer_cannot_take_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="socket_timeout"):
        RedisCache("redis://127.0.0.1:6379/0", socket_timeout=timeout)


def test_the_largest_socket_timeout_works(make: MakeCache) -> None:
    cache = make(socket_timeout=3600, strict=True)
    cache.update(P, L, gens("x"))
    assert cache.lookup(P, L) == gens("x")


TASKS, CALLS = 1_000, 4  # 15x the pool: most calls queue


async def _burst(cache: RedisCache) -> tuple[list[str], int]:
    """1,000 tasks of 4 calls each, half lookups, half updates, all started at once."""
    errors: list[str] = []
    writes = 0

    async def task(t: int) -> None:
        nonlocal writes
        for i in range(CALLS):
            prompt = f"task {t} call {i}"
            try:
                if i % 2:
                    await cache.aupdate(prompt, L, gens(prompt))
                    writes += 1
                else:
                    await cache.alookup(f"task {t} call {i - 1}", L)
            except Exception as exc:  # counted: none is expected
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(task(t) for t in range(TASKS)))
    return errors, writes


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "default"])
async def test_a_burst_of_1000_tasks_queues_and_drops_nothing(
    make: MakeCache, caplog: pytest.LogCaptureFixture, strict: bool
) -> None:
    # Local contention is not an outage: calls beyond the pool's 64 connections queue in
    # order. (A socket_timeout of 10 s, not 0.5 s: the event loop running 1,000 tasks on
    # a busy machine lags, and redis-py's timeouts count that lag.)
    cache = make(strict=strict, socket_timeout=10)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gencache"):
        errors, writes = await _burst(cache)
    print(f"figures: {TASKS * CALLS} calls from {TASKS} tasks: {time.monotonic() - start:.1f} s")
    assert errors == []
    for call in ("lookup", "update"):  # nothing degraded to a miss or a skipped write
        assert f"{call} failed" not in caplog.text
    stats = cache.stats()
    assert writes == stats.updates == TASKS * CALLS // 2
    assert len(cache) == TASKS * CALLS // 2  # every write reached Redis
    # Each task's first lookup asks for what nobody wrote, its others for its last write.
    assert (stats.hits, stats.misses) == (TASKS * (CALLS // 2 - 1), TASKS)
    await cache.aclose()


async def test_cancelled_calls_give_their_turn_back(make: MakeCache, raw: Redis) -> None:
    # 300 lookups held at the server (CLIENT PAUSE): 64 in flight, the rest queued. Half
    # are cancelled, in flight or queued; the others still get their turn, and so do the
    # calls that come after.
    cache = make(strict=True, socket_timeout=5)
    await cache.aupdate(P, L, gens("x"))
    paused_at = time.monotonic()
    raw.client_pause(1500)  # CLIENT UNPAUSE would wait too: the pause must outlast the cancels
    tasks = [asyncio.ensure_future(cache.alookup(P, L)) for _ in range(300)]
    await asyncio.sleep(0.05)
    for task in tasks[::2]:
        task.cancel()
    held = time.monotonic() - paused_at < 1.0  # every cancel landed while the server held them
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # Python 3.11's asyncio.wait_for (inside redis-py) may swallow a cancellation that
    # lands as the write it waits for completes: such a call returns its answer.
    cancelled = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, asyncio.CancelledError) for r in cancelled)
    assert len(cancelled) <= 150
    if held:  # on a machine too loaded to cancel within 1 s, some calls were answered first
        assert len(cancelled) >= 140
    assert list(results[1::2]) == [gens("x")] * 150
    assert all(r == gens("x") for r in results if not isinstance(r, BaseException))
    raw.client_pause(200)
    again = await asyncio.gather(*(cache.alookup(P, L) for _ in range(200)))
    assert again == [gens("x")] * 200
    await cache.aclose()
