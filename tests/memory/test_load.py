"""InMemoryCache under sustained load: 8 threads, or 2,000 asyncio tasks, on one cache.

Builds on tests/concurrency/test_threads.py (8 x 5,000 operations with clears), with what
that test does not prove: exact counters (hits and misses equal to what the callers saw,
updates equal to the writes made), no torn value (each key has two values of two
generations, and a hit must be exactly one of them), a size bound checked by a monitor
thread at every snapshot, an index that agrees with ``len()`` after the run, and TTL under
a clock that a thread keeps moving. Each run prints its figures (``pytest -s``).

The full size (8 x 200,000) is marked ``slow`` and runs only when selected: ``-m slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.outputs import Generation

from gencache import InMemoryCache
from tests.helpers import FakeClock

pytestmark = pytest.mark.load

THREADS = 8
MAXSIZE = 100
TTL = 0.05  # fake seconds
TICK = 0.01  # fake seconds per step of the clock thread: an entry lives 5 steps
STEP = 100  # operations (all callers together) per step of the clock
# 250 keys: 200 prompts under "llm a", and 50 of them also under "llm b", so that the
# cache's index holds buckets (one prompt, several configurations) as well as slots.
KEYS = [(f"prompt {i}", "llm a") for i in range(200)] + [
    (f"prompt {i}", "llm b") for i in range(0, 200, 4)
]
# Two values per key, of two generations each: a hit must be exactly one of them.
VALUES = {
    key: tuple(
        [
            Generation(text=f"{key[0]}|{key[1]}|v{v}|g{g}", generation_info={"v": v, "g": g})
            for g in range(2)
        ]
        for v in range(2)
    )
    for key in KEYS
}
POLICIES = {
    "fifo": {"maxsize": MAXSIZE},
    "lru": {"maxsize": MAXSIZE, "policy": "lru"},
    "ttl": {"maxsize": MAXSIZE, "ttl": TTL},
}


@dataclass
class Tally:
    """What the callers did and saw, to compare with the cache's own counters."""

    lookups: int = 0
    hits: int = 0
    updates: int = 0
    wrong: list[Any] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.lookups += other.lookups
        self.hits += other.hits
        self.updates += other.updates
        self.wrong += other.wrong

    def saw(self, key: tuple[str, str], hit: list[Generation] | None) -> None:
        self.lookups += 1
        if hit is not None:
            self.hits += 1
            if hit not in VALUES[key]:
                self.wrong.append((key, hit))


def choose(rng: random.Random) -> tuple[tuple[str, str], list[Generation] | None]:
    """A key, and the value to write (40 %) or ``None`` for a lookup (60 %)."""
    key = KEYS[rng.randrange(len(KEYS))]
    return key, (VALUES[key][rng.randrange(2)] if rng.random() >= 0.6 else None)


def one_op(cache: InMemoryCache, rng: random.Random, tally: Tally) -> None:
    key, value = choose(rng)
    if value is None:
        tally.saw(key, cache.lookup(*key))
    else:
        cache.update(*key, value)
        tally.updates += 1


@dataclass
class Monitor:
    """A thread that snapshots the cache until stopped: size bound, monotonic counters."""

    cache: InMemoryCache
    snapshots: int = 0
    problems: list[str] = field(default_factory=list)
    _done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        last = self.cache.stats()
        maxsize = last.maxsize
        assert maxsize is not None
        while not self._done.is_set():
            now = self.cache.stats()
            if now.size > maxsize:
                self.problems.append(f"size {now.size} > {maxsize}")
            for name in ("hits", "misses", "updates", "evictions", "expirations"):
                if getattr(now, name) < getattr(last, name):
                    self.problems.append(f"{name} went down: {last} -> {now}")
            if len(self.cache) > maxsize:
                self.problems.append("len() > maxsize")
            last = now
            self.snapshots += 1

    def stop(self) -> None:
        self._done.set()


@dataclass
class Ticker:
    """A thread that moves a fake clock by one step per ``STEP`` operations done.

    Paced by the work done, not by wall time, so that the mix of expirations and
    evictions does not depend on how fast the machine is; it catches up in one jump
    when it has not had the GIL for a while.
    """

    clock: FakeClock
    tallies: list[Tally]
    _done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        steps = 0
        while not self._done.is_set():
            due = sum(t.lookups + t.updates for t in self.tallies) // STEP
            if due > steps:
                self.clock.advance(TICK * (due - steps))
                steps = due
            time.sleep(0.0002)

    def stop(self) -> None:
        self._done.set()


@contextlib.contextmanager
def background(*targets: Monitor | Ticker) -> Iterator[None]:
    """Run each target's ``run`` in a thread for the duration of the block."""
    threads = [threading.Thread(target=t.run) for t in targets]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for target in targets:
            target.stop()
        for t in threads:
            t.join()


def make(policy: str) -> tuple[InMemoryCache, FakeClock]:
    clock = FakeClock()
    return InMemoryCache(timer=clock, **POLICIES[policy]), clock  # type: ignore[arg-type]


def check_after(cache: InMemoryCache, clock: FakeClock, policy: str, tally: Tally) -> None:
    """Counters equal what the callers saw; the index agrees with len(); TTL empties it."""
    assert tally.wrong == []
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (tally.hits, tally.lookups - tally.hits)
    assert stats.updates == tally.updates
    assert stats.evictions > 0
    size = len(cache)  # purges expired entries first; the clock stands still from here
    reachable = sum(cache.lookup(*key) is not None for key in KEYS)
    assert reachable == size <= stats.maxsize  # type: ignore[operator]
    if policy == "ttl":
        assert stats.expirations > 0
        clock.advance(TTL)
        assert len(cache) == 0
        assert all(cache.lookup(*key) is None for key in KEYS)
    else:  # far more than maxsize distinct keys were written: the cache is full
        assert size == stats.maxsize
        assert stats.expirations == 0


def run_threads(policy: str, ops_per_thread: int) -> None:
    cache, clock = make(policy)
    monitor = Monitor(cache)
    tallies = [Tally() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        try:
            for _ in range(ops_per_thread):
                one_op(cache, rng, tallies[n])
        except BaseException as exc:  # any exception reaching a caller fails the test
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    ticker = [Ticker(clock, tallies)] if policy == "ttl" else []
    start = time.perf_counter()
    with background(monitor, *ticker):
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - start
    assert errors == []
    assert monitor.problems == []
    assert monitor.snapshots > 0
    total = Tally()
    for tally in tallies:
        total.add(tally)
    assert total.lookups + total.updates == THREADS * ops_per_thread
    check_after(cache, clock, policy, total)
    stats = cache.stats()
    print(
        f"figures: memory {policy} {THREADS}x{ops_per_thread}: {elapsed:.2f} s, "
        f"{THREADS * ops_per_thread / elapsed:,.0f} ops/s, {monitor.snapshots} snapshots, "
        f"hits {stats.hits} misses {stats.misses} updates {stats.updates} "
        f"evictions {stats.evictions} expirations {stats.expirations}"
    )


@pytest.mark.parametrize("policy", list(POLICIES))
def test_threads_20k_operations_each(policy: str) -> None:
    run_threads(policy, 20_000)


@pytest.mark.slow
@pytest.mark.parametrize("policy", list(POLICIES))
def test_threads_200k_operations_each(policy: str) -> None:
    run_threads(policy, 200_000)


@pytest.mark.parametrize("policy", list(POLICIES))
async def test_2000_concurrent_tasks(policy: str) -> None:
    """2,000 tasks of 20 operations each, yielding to the loop between operations."""
    cache, clock = make(policy)
    monitor = Monitor(cache)
    tallies = [Tally() for _ in range(2_000)]
    go = asyncio.Event()

    async def task(n: int) -> None:
        rng = random.Random(n)
        await go.wait()  # every task exists before the first operation
        for _ in range(20):
            key, value = choose(rng)
            if value is None:
                tallies[n].saw(key, await cache.alookup(*key))
            else:
                await cache.aupdate(*key, value)
                tallies[n].updates += 1
            await asyncio.sleep(0)

    ticker = [Ticker(clock, tallies)] if policy == "ttl" else []
    start = time.perf_counter()
    with background(monitor, *ticker):
        tasks = [asyncio.create_task(task(n)) for n in range(2_000)]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    assert monitor.problems == []
    total = Tally()
    for tally in tallies:
        total.add(tally)
    assert total.lookups + total.updates == 40_000
    check_after(cache, clock, policy, total)
    stats = cache.stats()
    print(
        f"figures: memory asyncio {policy} 2000x20: {elapsed:.2f} s, "
        f"{40_000 / elapsed:,.0f} ops/s, hits {stats.hits} misses {stats.misses} "
        f"updates {stats.updates} evictions {stats.evictions} expirations {stats.expirations}"
    )
