"""Many threads on one in-memory cache, each call under its own per-call options.

No exception, the size bound held at every moment, exact counters, and every hit the
value written for its own key and scope, while entries expire (per-call ttls on a cache
built without one: the first of them changes the cache's order under contention).
"""

from __future__ import annotations

import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from langchain_core.outputs import Generation

from gencache import InMemoryCache, control
from tests.helpers import gens

THREADS = 8
OPS = 3_000
PROMPTS = [f"prompt {i}" for i in range(60)]
SCOPES = [None, "tenant-a", "tenant-b"]


class Clock:
    """A clock any thread may move forward, never backward."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Tally:
    lookups: int = 0
    bypassed: int = 0
    writes: int = 0
    skipped: int = 0


def _value(prompt: str, scope: str | None) -> list[Generation]:
    return gens(f"{scope}|{prompt}")


def _hammer(cache: InMemoryCache, clock: Clock, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    for _ in range(OPS):
        prompt, scope = rng.choice(PROMPTS), rng.choice(SCOPES)
        roll = rng.random()
        if roll < 0.5:
            read = rng.random() > 0.1
            max_age = rng.choice([None, None, 0.05])
            with control(scope=scope, read=read, max_age=max_age):
                hit = cache.lookup(prompt, "llm")
            tally.lookups += 1
            tally.bypassed += not read
            assert hit is None or hit == _value(prompt, scope), (prompt, scope, hit)
        elif roll < 0.98:
            write = rng.random() > 0.1
            ttl = rng.choice([None, 0.01, 0.1])
            with control(scope=scope, write=write, ttl=ttl):
                cache.update(prompt, "llm", _value(prompt, scope))
            tally.writes += 1
            tally.skipped += not write
        elif roll < 0.99:
            cache.clear(scope=rng.choice(SCOPES))
        else:
            clock.tick(0.02)
    return tally


@pytest.mark.parametrize("policy", ["fifo", "lru"])
@pytest.mark.parametrize("ttl", [None, 0.05])
def test_threads_with_per_call_options(policy: str, ttl: float | None) -> None:
    clock = Clock()
    cache = InMemoryCache(maxsize=40, policy=policy, ttl=ttl, timer=clock)
    done = threading.Event()
    oversize: list[int] = []

    def monitor() -> None:
        while not done.is_set():
            if (size := cache.stats().size) > 40:
                oversize.append(size)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings
    watcher = threading.Thread(target=monitor)
    watcher.start()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(_hammer, cache, clock, seed) for seed in range(THREADS)]
            tallies = [f.result() for f in futures]  # re-raises any worker exception
    finally:
        done.set()
        watcher.join()
        sys.setswitchinterval(previous)
    assert oversize == []
    stats = cache.stats()
    lookups = sum(t.lookups for t in tallies)
    bypassed = sum(t.bypassed for t in tallies)
    writes = sum(t.writes for t in tallies)
    skipped = sum(t.skipped for t in tallies)
    assert (stats.bypassed, stats.hits + stats.misses) == (bypassed, lookups - bypassed)
    assert (stats.skipped, stats.updates) == (skipped, writes - skipped)
    assert stats.evictions >= 0
    assert stats.size == len(cache) <= 40
    clock.tick(1.0)  # every ttl has passed: what is left never expires
    left = [(p, s) for p in PROMPTS for s in SCOPES if _present(cache, p, s)]
    assert len(cache) == len(left)
    assert ttl is None or left == []


def _present(cache: InMemoryCache, prompt: str, scope: str | None) -> bool:
    with control(scope=scope):
        return cache.lookup(prompt, "llm") is not None
