"""The behaviour every backend promises, written once and run against each of them."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation

from gencache import CacheStats, GenCache
from tests.conftest import Factory, backends_with
from tests.helpers import FakeClock, chat_gens, gens

P, L = "What is the capital of France?", "model='m' temperature=0"


def test_is_a_langchain_cache(make_cache: Factory) -> None:
    assert isinstance(make_cache(), BaseCache)


def test_miss_then_hit_returns_an_equal_list(make_cache: Factory) -> None:
    cache = make_cache()
    assert cache.lookup(P, L) is None
    value = chat_gens("Paris") + gens("also Paris")
    cache.update(P, L, value)
    hit = cache.lookup(P, L)
    assert isinstance(hit, list)  # LangChain treats any other sequence as a miss
    assert hit == value


def test_accepts_a_tuple_and_returns_a_list(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, tuple(gens("t")))
    assert cache.lookup(P, L) == gens("t")


def test_mutating_a_hit_does_not_change_the_cache(make_cache: Factory) -> None:
    cache = make_cache()
    value = gens("a", 2)
    cache.update(P, L, value)
    value.append(Generation(text="added to the caller's list"))
    hit = cache.lookup(P, L)
    assert hit is not None
    # In memory a hit is the entry's own read-only list; elsewhere a new list.
    changes: list[Callable[[list[Generation]], object]] = [
        lambda h: h.clear(),
        lambda h: h.append(Generation(text="x")),
        lambda h: h.__setitem__(0, Generation(text="x")),
        lambda h: h.__delitem__(0),
        lambda h: h.extend([Generation(text="x")]),
        lambda h: h.pop(),
        lambda h: h.sort(key=id),
        lambda h: h.reverse(),
        lambda h: h.__iadd__([Generation(text="x")]),
    ]
    for change in changes:
        hit = cache.lookup(P, L)
        assert hit is not None
        with contextlib.suppress(TypeError):
            change(hit)
        assert cache.lookup(P, L) == gens("a", 2)
    copied = list(hit)
    copied.append(Generation(text="mine"))
    assert cache.lookup(P, L) == gens("a", 2)


def test_key_is_the_pair_without_delimiter_collisions(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update("ab", "c", gens("first"))
    cache.update("a", "bc", gens("second"))
    cache.update("a\x00b", "c", gens("third"))
    assert cache.lookup("ab", "c") == gens("first")
    assert cache.lookup("a", "bc") == gens("second")
    assert cache.lookup("a\x00b", "c") == gens("third")
    assert cache.lookup("abc", "") is None
    assert cache.lookup(L, P) is None


def test_same_prompt_other_llm_string_is_another_entry(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, "model=a", gens("from a"))
    assert cache.lookup(P, "model=b") is None
    cache.update(P, "model=b", gens("from b"))
    assert cache.lookup(P, "model=a") == gens("from a")
    assert cache.lookup(P, "model=b") == gens("from b")


def test_update_replaces(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("old"))
    cache.update(P, L, gens("new"))
    assert cache.lookup(P, L) == gens("new")
    assert len(cache) == 1


def test_clear_removes_everything_and_ignores_kwargs(make_cache: Factory) -> None:
    cache = make_cache()
    for i in range(5):
        cache.update(f"p{i}", L, gens(str(i)))
    cache.clear(anything="ignored", llm_string=L)
    assert len(cache) == 0
    assert all(cache.lookup(f"p{i}", L) is None for i in range(5))
    cache.update(P, L, gens("after clear"))
    assert cache.lookup(P, L) == gens("after clear")


async def test_async_twins_give_the_same_results(make_cache: Factory) -> None:
    cache = make_cache()
    assert await cache.alookup(P, L) is None
    await cache.aupdate(P, L, gens("async"))
    assert await cache.alookup(P, L) == gens("async")
    assert cache.lookup(P, L) == gens("async")
    await cache.aclear(ignored=True)
    assert await cache.alookup(P, L) is None


async def test_many_concurrent_tasks(make_cache: Factory) -> None:
    cache = make_cache()

    async def worker(i: int) -> None:
        key = f"prompt {i % 50}"
        if await cache.alookup(key, L) is None:
            await cache.aupdate(key, L, gens(key))
        assert await cache.alookup(key, L) == gens(key)

    await asyncio.gather(*(worker(i) for i in range(1_000)))
    assert len(cache) == 50
    stats = cache.stats()
    assert stats.lookups == 2_000
    assert stats.hits + stats.misses == 2_000


def test_len_and_stats_count_calls(make_cache: Factory) -> None:
    cache = make_cache()
    assert cache.stats() == CacheStats(0, 0, 0, 0, 0, 0, cache.stats().maxsize)
    cache.lookup(P, L)
    cache.update(P, L, gens("x"))
    cache.lookup(P, L)
    cache.lookup(P, L)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.updates, stats.size) == (2, 1, 1, 1)
    assert math.isclose(stats.hit_rate, 2 / 3)
    assert len(cache) == 1
    with pytest.raises(AttributeError):
        stats.hits = 10  # type: ignore[misc]


def test_an_empty_cache_is_truthy(make_cache: Factory) -> None:
    assert bool(make_cache())


def test_unicode_nul_and_surrogates_are_distinct_keys(make_cache: Factory) -> None:
    cache = make_cache()
    prompts = ["é", "e\u0301", "\x00", "\ud800", "\udfff", "😀", "a" * 100_000]
    for i, p in enumerate(prompts):
        cache.update(p, L, gens(str(i)))
    for i, p in enumerate(prompts):
        assert cache.lookup(p, L) == gens(str(i))


@pytest.mark.parametrize(
    ("prompt", "llm_string"), [(None, L), (P, None), (b"bytes", L), (P, 3), (["list"], L)]
)
def test_non_string_key_parts_raise_type_error(
    make_cache: Factory, prompt: Any, llm_string: Any
) -> None:
    cache = make_cache()
    with pytest.raises(TypeError, match="must be a str"):
        cache.lookup(prompt, llm_string)
    with pytest.raises(TypeError, match="must be a str"):
        cache.update(prompt, llm_string, gens("x"))
    assert cache.stats().lookups == 0


@pytest.mark.parametrize(
    "bad", ["text", b"bytes", Generation(text="single"), [object()], ["str"], None, 42]
)
def test_return_val_must_be_a_sequence_of_generations(make_cache: Factory, bad: Any) -> None:
    cache = make_cache()
    with pytest.raises(TypeError, match="Generation"):
        cache.update(P, L, bad)
    assert cache.lookup(P, L) is None


# --- maxsize ------------------------------------------------------------------------------


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_full_cache_removes_the_oldest(make_cache: Factory) -> None:
    cache = make_cache(maxsize=3)
    for i in range(5):
        cache.update(f"p{i}", L, gens(str(i)))
    assert [cache.lookup(f"p{i}", L) is not None for i in range(5)] == [False, False] + [True] * 3
    assert len(cache) == 3
    assert cache.stats().evictions == 2


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_re_updating_a_key_in_a_full_cache_evicts_nothing(make_cache: Factory) -> None:
    # LangChain's InMemoryCache evicts the oldest entry here, although nothing is added.
    cache = make_cache(maxsize=3)
    for i in range(3):
        cache.update(f"p{i}", L, gens(str(i)))
    cache.update("p2", L, gens("new 2"))
    cache.update("p0", L, gens("new 0"))
    assert cache.lookup("p0", L) == gens("new 0")
    assert cache.lookup("p1", L) == gens("1")
    assert cache.lookup("p2", L) == gens("new 2")
    assert cache.stats().evictions == 0


@pytest.mark.parametrize("make_cache", backends_with("maxsize", "policy"), indirect=True)
@pytest.mark.parametrize("policy", ["fifo", "lru"])
def test_evicting_one_configuration_of_a_prompt_keeps_the_others(
    make_cache: Factory, policy: str
) -> None:
    # One prompt sent to three models, then two new prompts: the two oldest pairs go.
    cache = make_cache(maxsize=3, policy=policy)
    for model in "abc":
        cache.update(P, model, gens(model))
    cache.update("other prompt", "a", gens("other"))
    cache.update("a third prompt", "a", gens("third"))
    assert [cache.lookup(P, m) for m in "abc"] == [None, None, gens("c")]
    assert cache.lookup("other prompt", "a") == gens("other")
    assert cache.lookup("a third prompt", "a") == gens("third")
    assert len(cache) == 3
    assert cache.stats().evictions == 2


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_maxsize_one(make_cache: Factory) -> None:
    cache = make_cache(maxsize=1)
    cache.update("a", L, gens("a"))
    cache.update("b", L, gens("b"))
    assert cache.lookup("a", L) is None
    assert cache.lookup("b", L) == gens("b")


@pytest.mark.parametrize("make_cache", backends_with("maxsize", "policy"), indirect=True)
def test_fifo_re_update_keeps_its_place(make_cache: Factory) -> None:
    cache = make_cache(maxsize=2, policy="fifo")
    cache.update("a", L, gens("a"))
    cache.update("b", L, gens("b"))
    cache.lookup("a", L)
    cache.update("a", L, gens("a2"))
    cache.update("c", L, gens("c"))  # evicts "a": first written, as in LangChain
    assert cache.lookup("a", L) is None
    assert cache.lookup("b", L) == gens("b")


@pytest.mark.parametrize("make_cache", backends_with("maxsize", "policy"), indirect=True)
def test_lru_hit_refreshes_the_entry(make_cache: Factory) -> None:
    cache = make_cache(maxsize=2, policy="lru")
    cache.update("a", L, gens("a"))
    cache.update("b", L, gens("b"))
    assert cache.lookup("a", L) == gens("a")
    cache.update("c", L, gens("c"))  # evicts "b", the least recently used
    assert cache.lookup("b", L) is None
    assert cache.lookup("a", L) == gens("a")
    assert cache.lookup("c", L) == gens("c")


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
@pytest.mark.parametrize("bad", [0, -1])
def test_maxsize_must_be_positive(make_cache: Factory, bad: int) -> None:
    with pytest.raises(ValueError, match="maxsize must be greater than 0"):
        make_cache(maxsize=bad)


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
@pytest.mark.parametrize("bad", [True, False, 1.5, 10.0, "10", [3]])
def test_maxsize_must_be_an_int(make_cache: Factory, bad: Any) -> None:
    with pytest.raises(TypeError, match="maxsize must be an int"):
        make_cache(maxsize=bad)


@pytest.mark.parametrize("make_cache", backends_with("policy"), indirect=True)
@pytest.mark.parametrize("bad", ["lfu", "", None, 3])
def test_unknown_policy_lists_the_valid_ones(make_cache: Factory, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"valid policies are 'fifo', 'lru'"):
        make_cache(policy=bad)


# --- ttl ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_cache", backends_with("ttl", "timer"), indirect=True)
def test_entries_expire_after_ttl(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=10, timer=clock)
    cache.update(P, L, gens("fresh"))
    clock.advance(9.999)
    assert cache.lookup(P, L) == gens("fresh")
    clock.advance(0.001)
    assert cache.lookup(P, L) is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.expirations, stats.size) == (1, 1, 1, 0)


@pytest.mark.parametrize("make_cache", backends_with("ttl", "timer"), indirect=True)
def test_hits_do_not_extend_ttl_but_updates_do(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=10, timer=clock)
    cache.update("a", L, gens("a"))
    cache.update("b", L, gens("b"))
    clock.advance(6)
    assert cache.lookup("a", L) is not None
    cache.update("b", L, gens("b2"))
    clock.advance(6)
    assert cache.lookup("a", L) is None
    assert cache.lookup("b", L) == gens("b2")


@pytest.mark.parametrize("make_cache", backends_with("ttl", "timer"), indirect=True)
def test_expired_entries_are_purged_without_lookups(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=5, timer=clock)
    for i in range(100):
        cache.update(f"p{i}", L, gens(str(i)))
    clock.advance(5)
    assert len(cache) == 0
    assert cache.stats().expirations == 100


@pytest.mark.parametrize("make_cache", backends_with("ttl", "timer", "maxsize"), indirect=True)
def test_full_cache_drops_an_expired_entry_before_a_live_one(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=10, timer=clock, maxsize=3)
    cache.update("old", L, gens("old"))
    clock.advance(5)
    cache.update("b", L, gens("b"))
    cache.update("c", L, gens("c"))
    clock.advance(5)  # "old" has expired, "b" and "c" are live
    cache.update("d", L, gens("d"))
    assert [cache.lookup(k, L) is not None for k in "bcd"] == [True, True, True]
    stats = cache.stats()
    assert (stats.evictions, stats.expirations) == (0, 1)


@pytest.mark.parametrize("make_cache", backends_with("ttl", "policy", "timer"), indirect=True)
def test_ttl_is_independent_of_lru(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=10, policy="lru", timer=clock)
    cache.update(P, L, gens("x"))
    for _ in range(19):  # frequent hits up to 9.5 s do not keep the entry alive
        clock.advance(0.5)
        assert cache.lookup(P, L) == gens("x")
    clock.advance(0.5)
    assert cache.lookup(P, L) is None


@pytest.mark.parametrize("make_cache", backends_with("ttl"), indirect=True)
@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), -0.0])
def test_ttl_must_be_finite_and_positive(make_cache: Factory, bad: float) -> None:
    with pytest.raises(ValueError, match="ttl must be"):
        make_cache(ttl=bad)


@pytest.mark.parametrize("make_cache", backends_with("ttl"), indirect=True)
@pytest.mark.parametrize("bad", ["10", True, [1]])
def test_ttl_must_be_a_number(make_cache: Factory, bad: Any) -> None:
    with pytest.raises(TypeError, match="ttl must be"):
        make_cache(ttl=bad)


def test_constructor_is_keyword_only(make_cache: Factory) -> None:
    cache = make_cache()
    with pytest.raises(TypeError):
        type(cache)(10)  # type: ignore[call-arg]


def test_stats_snapshot_is_immutable_and_complete(make_cache: Factory) -> None:
    stats = make_cache().stats()
    assert isinstance(stats, CacheStats)
    assert stats.hit_rate == 0.0
    assert set(CacheStats.__dataclass_fields__) == {
        "hits",
        "misses",
        "updates",
        "evictions",
        "expirations",
        "size",
        "maxsize",
        "bypassed",
        "skipped",
        "refused",
        "coalesced",
        "saved",
        "by_model",
    }


def test_is_a_gencache(make_cache: Factory) -> None:
    assert isinstance(make_cache(), GenCache)
