"""Many threads on one cache: no exception, bounded size, exact counters, correct hits."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import Factory, backends_with
from tests.helpers import gens

THREADS = 8
OPS_PER_THREAD = 5_000
# A SQLite operation is a transaction on a file, ~50x a memory one: fewer of them race as well.
OPS_PER_THREAD_ON_FILES = 1_500
KEYS = [(f"prompt {i}", f"llm {i % 3}") for i in range(200)]


def _expected(key: tuple[str, str]) -> list[Any]:
    return gens(f"{key[0]}|{key[1]}")


def _hammer(cache: Any, seed: int) -> int:
    rng = random.Random(seed)
    lookups = 0
    ops = OPS_PER_THREAD if type(cache).__name__ == "InMemoryCache" else OPS_PER_THREAD_ON_FILES
    for _ in range(ops):
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.6:
            hit = cache.lookup(*key)
            lookups += 1
            assert hit is None or hit == _expected(key), (key, hit)
        elif roll < 0.995:
            cache.update(*key, _expected(key))
        else:
            cache.clear()
    return lookups


@pytest.mark.parametrize("make_cache", backends_with("maxsize", "policy", "ttl"), indirect=True)
@pytest.mark.parametrize(
    "options",
    [
        {"maxsize": 50},
        {"maxsize": 50, "policy": "lru"},
        {"maxsize": 50, "ttl": 0.002},
        {"maxsize": 1},
        {},
    ],
    ids=["fifo", "lru", "ttl", "maxsize1", "unbounded"],
)
def test_threads_mixed_operations(make_cache: Factory, options: dict[str, Any]) -> None:
    cache = make_cache(**options)
    maxsize = options.get("maxsize")
    done = threading.Event()
    oversize: list[int] = []

    def monitor() -> None:
        while not done.wait(0.0005):  # a tight loop would starve the workers of the GIL
            size = cache.stats().size
            if maxsize is not None and size > maxsize:
                oversize.append(size)

    watcher = threading.Thread(target=monitor)
    watcher.start()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(_hammer, cache, seed) for seed in range(THREADS)]
            lookups = sum(f.result() for f in futures)  # re-raises any worker exception
    finally:
        done.set()
        watcher.join()
    assert oversize == []
    stats = cache.stats()
    assert stats.hits + stats.misses == lookups
    assert maxsize is None or len(cache) <= maxsize
    if maxsize is None and "ttl" not in options:
        assert stats.evictions == 0


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_threads_racing_on_eviction_lose_nothing(make_cache: Factory) -> None:
    """Every key written by distinct threads into a full cache is counted exactly once."""
    cache = make_cache(maxsize=10)
    barrier = threading.Barrier(THREADS)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(1_000):
            cache.update(f"t{t} k{i}", "llm", gens("v"))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer, range(THREADS)))
    stats = cache.stats()
    assert stats.updates == THREADS * 1_000
    assert stats.evictions == THREADS * 1_000 - 10
    assert len(cache) == 10
