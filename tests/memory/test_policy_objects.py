"""Replacement policies on the in-memory cache: names, and order across expiry and scopes.

Public API only: these are behaviours any backend with ``policy=`` could be held to.
"""

from __future__ import annotations

import pytest

from gencache import InMemoryCache, Policy, control
from tests.helpers import FakeClock, gens

L = "llm"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("fifo", Policy.FIFO), ("LRU", Policy.LRU), (Policy.LRU, Policy.LRU), (Policy.FIFO,) * 2],
)
def test_policy_accepts_names_and_members_and_reports_a_member(
    given: str | Policy, expected: Policy
) -> None:
    cache = InMemoryCache(policy=given)
    assert cache.policy is expected
    assert cache.policy.value == expected.value
    assert repr(cache) == f"InMemoryCache(maxsize=None, ttl=None, policy={expected.value!r})"


def test_fifo_order_survives_the_first_per_call_ttl() -> None:
    # The first write with a ttl of its own switches a FIFO cache built without ttl to an
    # order that can drop expired entries: the entries already there keep their order.
    cache = InMemoryCache(maxsize=4, timer=FakeClock())
    for key in "abc":
        cache.update(key, L, gens(key))
    with control(ttl=60):
        cache.update("d", L, gens("d"))
    cache.update("a", L, gens("a2"))  # a FIFO re-update keeps its place
    cache.update("e", L, gens("e"))  # evicts "a", the first written
    cache.update("f", L, gens("f"))  # then "b"
    assert [cache.lookup(k, L) is not None for k in "abcdef"] == [False] * 2 + [True] * 4
    assert cache.stats().evictions == 2


def test_lru_order_with_per_call_ttls() -> None:
    clock = FakeClock()
    cache = InMemoryCache(maxsize=3, policy="lru", timer=clock)
    cache.update("a", L, gens("a"))
    with control(ttl=5):
        cache.update("b", L, gens("b"))
    cache.update("c", L, gens("c"))
    assert cache.lookup("a", L) == gens("a")  # "b" is now the least recently used
    cache.update("d", L, gens("d"))
    assert cache.lookup("b", L) is None
    assert cache.stats().evictions == 1
    clock.advance(5)
    assert len(cache) == 3


@pytest.mark.parametrize("policy", ["fifo", "lru"])
def test_a_full_cache_drops_an_expired_per_call_entry_before_a_live_one(policy: str) -> None:
    clock = FakeClock()
    cache = InMemoryCache(maxsize=3, policy=policy, timer=clock)
    cache.update("a", L, gens("a"))
    with control(ttl=1):
        cache.update("brief", L, gens("brief"))
    cache.update("c", L, gens("c"))
    clock.advance(1)
    cache.update("d", L, gens("d"))
    assert [cache.lookup(k, L) is not None for k in ("a", "c", "d")] == [True, True, True]
    stats = cache.stats()
    assert (stats.evictions, stats.expirations, stats.size) == (0, 1, 3)


@pytest.mark.parametrize("policy", ["fifo", "lru"])
@pytest.mark.parametrize("ttl", [None, 100.0])
def test_clearing_a_scope_keeps_the_order_of_the_rest(policy: str, ttl: float | None) -> None:
    cache = InMemoryCache(maxsize=4, policy=policy, ttl=ttl, timer=FakeClock())
    cache.update("a", L, gens("a"))
    with control(scope="t"):
        cache.update("a", L, gens("t-a"))
        cache.update("b", L, gens("t-b"))
    cache.update("b", L, gens("b"))
    cache.clear(scope="t")
    assert len(cache) == 2
    for key in "cde":  # fills the two free places, then evicts "a", the oldest left
        cache.update(key, L, gens(key))
    assert [cache.lookup(k, L) is not None for k in "abcde"] == [False, True, True, True, True]
    stats = cache.stats()
    assert (stats.evictions, stats.size) == (1, 4)


def test_scopes_share_one_size_bound() -> None:
    cache = InMemoryCache(maxsize=2)
    cache.update("p", L, gens("global"))
    with control(scope="t"):
        cache.update("p", L, gens("t"))
        cache.update("q", L, gens("t-q"))  # evicts the unscoped "p", the oldest
        assert cache.lookup("p", L) == gens("t")
    assert cache.lookup("p", L) is None
    assert len(cache) == 2
    assert cache.stats().evictions == 1
