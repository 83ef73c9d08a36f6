"""Redis going away mid-run: misses and skipped writes by default, errors when strict.

Each test has its own server, which it kills (SIGKILL) or freezes (SIGSTOP) and brings
back on the same port; the same cache object must work again without being re-created.
Durations are printed as figures, never asserted: the machine may be slow.
"""

from __future__ import annotations

import logging
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gencache.errors import BackendError, BackendUnavailableError
from gencache.redis import RedisCache
from tests.backends.redis import RedisServer
from tests.helpers import gens

P, L = "prompt", "llm"


def _fresh(server: RedisServer) -> RedisServer:
    return RedisServer(port=server.port).start()


def test_default_outage_is_a_miss_and_recovers(
    own: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(own.url)
    cache.update(P, L, gens("before"))
    assert cache.lookup(P, L) == gens("before")
    own.kill()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gencache"):
        assert cache.lookup(P, L) is None
        cache.update(P, L, gens("lost"))
        cache.clear()
        assert len(cache) == 0
        assert cache.stats().size == 0
        for _ in range(20):
            assert cache.lookup(P, L) is None
    print(f"figures: 24 calls while Redis is down: {time.monotonic() - start:.3f} s")
    assert "lookup failed, continuing without the cache" in caplog.text
    assert caplog.text.count("lookup failed") == 1  # rate-limited
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.updates) == (1, 21, 1)
    restarted = _fresh(own)
    try:
        assert cache.lookup(P, L) is None  # the restarted server is empty
        cache.update(P, L, gens("after"))
        assert cache.lookup(P, L) == gens("after")
    finally:
        restarted.stop()


async def test_default_outage_async(own: RedisServer) -> None:
    cache = RedisCache(own.url)
    await cache.aupdate(P, L, gens("before"))
    own.kill()
    assert await cache.alookup(P, L) is None
    await cache.aupdate(P, L, gens("lost"))
    await cache.aclear()
    restarted = _fresh(own)
    try:
        await cache.aupdate(P, L, gens("after"))
        assert await cache.alookup(P, L) == gens("after")
    finally:
        restarted.stop()


def test_strict_outage_raises_the_library_error_and_recovers(own: RedisServer) -> None:
    cache = RedisCache(own.url, strict=True)
    cache.update(P, L, gens("before"))
    own.kill()
    for call in (
        lambda: cache.lookup(P, L),
        lambda: cache.update(P, L, gens("x")),
        cache.clear,
        lambda: len(cache),
        lambda: list(cache.entries()),
    ):
        with pytest.raises(BackendUnavailableError) as info:
            call()
        assert isinstance(info.value.__cause__, RedisConnectionError)
        assert "Redis" in str(info.value)
    restarted = _fresh(own)
    try:
        cache.update(P, L, gens("after"))
        assert cache.lookup(P, L) == gens("after")
    finally:
        restarted.stop()


async def test_strict_outage_async(own: RedisServer) -> None:
    cache = RedisCache(own.url, strict=True)
    own.kill()
    with pytest.raises(BackendUnavailableError):
        await cache.alookup(P, L)
    with pytest.raises(BackendUnavailableError):
        await cache.aupdate(P, L, gens("x"))
    with pytest.raises(BackendError):
        await cache.aclear()
    restarted = _fresh(own)
    try:
        await cache.aupdate(P, L, gens("after"))
        assert await cache.alookup(P, L) == gens("after")
    finally:
        restarted.stop()


async def test_a_frozen_server_times_out_quickly(own: RedisServer) -> None:
    cache = RedisCache(own.url, socket_timeout=0.2)
    strict = RedisCache(own.url, socket_timeout=0.2, strict=True)
    cache.update(P, L, gens("x"))
    own.pause()
    try:
        start = time.monotonic()
        assert cache.lookup(P, L) is None
        cache.update(P, L, gens("y"))
        assert await cache.alookup(P, L) is None
        with pytest.raises(BackendUnavailableError, match="Timeout"):
            strict.lookup(P, L)
        print(f"figures: 4 calls on a frozen server: {time.monotonic() - start:.2f} s")
    finally:
        own.resume()
    # A write that timed out may still be applied once the server wakes up.
    assert cache.lookup(P, L) in (gens("x"), gens("y"))
