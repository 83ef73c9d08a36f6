"""Hypothesis state machines: each cache against a plain reference model."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)
from langchain_core.caches import InMemoryCache as LangChainInMemoryCache
from langchain_core.outputs import Generation

from gencache import GenCache
from tests.conftest import BACKENDS, Backend
from tests.helpers import FakeClock

# Three prompts under two configurations each: pairs that share a prompt, as when one
# prompt goes to two models, exercise the in-memory index's buckets.
PAIRS = [(f"prompt {i % 3}", f"llm {i % 2}") for i in range(6)]
KEYS = st.sampled_from(PAIRS)


class Reference:
    """What a FIFO/LRU cache with TTL should do, in the plainest possible code."""

    def __init__(self, maxsize: int | None, ttl: float | None, policy: str) -> None:
        self.maxsize, self.ttl, self.lru = maxsize, ttl, policy == "lru"
        self.entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self.counts = {"hits": 0, "misses": 0, "updates": 0, "evictions": 0, "expirations": 0}

    def _expired(self, key: tuple[str, str], now: float) -> bool:
        return self.ttl is not None and now >= self.entries[key][1] + self.ttl

    def purge(self, now: float) -> None:
        for key in [k for k in self.entries if self._expired(k, now)]:
            del self.entries[key]
            self.counts["expirations"] += 1

    def lookup(self, key: tuple[str, str], now: float) -> str | None:
        if key in self.entries and self._expired(key, now):
            del self.entries[key]
            self.counts["expirations"] += 1
        if key not in self.entries:
            self.counts["misses"] += 1
            return None
        self.counts["hits"] += 1
        if self.lru:
            self.entries.move_to_end(key)
        return self.entries[key][0]

    def update(self, key: tuple[str, str], text: str, now: float) -> None:
        self.purge(now)
        if key in self.entries:
            self.entries[key] = (text, now)
            if self.lru:
                self.entries.move_to_end(key)
        else:
            if self.maxsize is not None and len(self.entries) >= self.maxsize:
                self.entries.popitem(last=False)
                self.counts["evictions"] += 1
            self.entries[key] = (text, now)
        self.counts["updates"] += 1


def machine_for(backend: Backend) -> type[RuleBasedStateMachine]:
    class CacheMachine(RuleBasedStateMachine):
        cache: GenCache
        model: Reference

        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.serial = 0

        @initialize(
            maxsize=st.integers(1, 4) | st.none(),
            ttl=st.none() | st.sampled_from([1.0, 2.5]),
            policy=st.sampled_from(["fifo", "lru"]),
        )
        def start(self, maxsize: int | None, ttl: float | None, policy: str) -> None:
            self.cache = backend.make(maxsize=maxsize, ttl=ttl, policy=policy, timer=self.clock)
            self.model = Reference(maxsize, ttl, policy)

        @rule(key=KEYS)
        def update(self, key: tuple[str, str]) -> None:
            self.serial += 1
            text = f"value {self.serial}"
            self.cache.update(*key, [Generation(text=text)])
            self.model.update(key, text, self.clock.now)

        @rule(key=KEYS)
        def lookup(self, key: tuple[str, str]) -> None:
            got = self.cache.lookup(*key)
            expected = self.model.lookup(key, self.clock.now)
            assert (None if got is None else got[0].text) == expected

        @rule()
        def lookup_every_pair(self) -> None:
            # Finds an entry that should be gone (evicted, expired, replaced) wherever
            # it is, not only when a random lookup happens to ask for it.
            for key in PAIRS:
                self.lookup(key)

        @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
        def advance(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @precondition(lambda self: self.serial % 7 == 6)
        @rule()
        def clear(self) -> None:
            self.cache.clear()
            self.model.entries.clear()

        # A rule, not an invariant: len() and stats() purge every expired entry, and
        # checking them after every step would hide bugs in the lazy expiry paths.
        @rule()
        def same_size_and_counts(self) -> None:
            self.model.purge(self.clock.now)
            stats = self.cache.stats()
            assert len(self.cache) == len(self.model.entries) == stats.size
            got = {k: getattr(stats, k) for k in self.model.counts}
            assert got == self.model.counts

        def teardown(self) -> None:
            if hasattr(self, "cache"):
                self.cache.clear()

    CacheMachine.__name__ = f"CacheMachine_{backend.name}"
    return CacheMachine


@pytest.mark.parametrize(
    "backend",
    [b for b in BACKENDS if {"maxsize", "ttl", "policy", "timer"} <= b.features],
    ids=lambda b: b.name,
)
def test_cache_matches_reference_model(backend: Backend) -> None:
    machine = machine_for(backend)
    machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
    machine.TestCase().runTest()


OPS = st.lists(st.tuples(st.sampled_from(["update", "lookup"]), st.integers(0, 7)), max_size=60)


@given(maxsize=st.none() | st.integers(1, 5), ops=OPS)
def test_default_memory_cache_matches_langchain(maxsize: int | None, ops: list[Any]) -> None:
    """Wherever LangChain's class is not wrong, ours gives the same results."""
    from gencache import InMemoryCache

    ours, theirs = InMemoryCache(maxsize=maxsize), LangChainInMemoryCache(maxsize=maxsize)
    for n, (op, i) in enumerate(ops):
        key = (f"p{i}", "llm")
        if op == "lookup":
            assert ours.lookup(*key) == theirs.lookup(*key)
        elif theirs.lookup(*key) is None or maxsize is None:
            # Skip re-updates of a present key when bounded: LangChain evicts wrongly there.
            value = [Generation(text=str(n))]
            ours.update(*key, value)
            theirs.update(*key, value)
