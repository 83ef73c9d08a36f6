"""Per-call options, admission and canonical keys on the in-memory cache.

Public API only, so that each test could run on every backend (``tests/contract``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import Generation

from gencache import InMemoryCache, control
from tests.helpers import FakeClock, gens

P, L = "What is the capital of France?", "model='m' temperature=0"


def _history(reply_id: str, **metadata: Any) -> str:
    return dumps(
        [
            HumanMessage("What is the capital of France?"),
            AIMessage("Paris.", id=reply_id, response_metadata=metadata),
            HumanMessage("And of Italy?"),
        ]
    )


# -- ttl ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["fifo", "lru"])
def test_a_plain_re_update_drops_the_per_call_ttl(policy: str) -> None:
    clock = FakeClock()
    cache = InMemoryCache(policy=policy, timer=clock)
    with control(ttl=5):
        cache.update(P, L, gens("brief"))
    cache.update(P, L, gens("kept"))  # no ttl in force: never expires
    clock.advance(1_000)
    assert cache.lookup(P, L) == gens("kept")
    assert cache.stats().expirations == 0


def test_a_plain_re_update_goes_back_to_the_cache_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryCache(ttl=10, timer=clock)
    with control(ttl=1_000):
        cache.update(P, L, gens("long"))
    cache.update(P, L, gens("cache ttl"))
    clock.advance(9.9)
    assert cache.lookup(P, L) == gens("cache ttl")
    clock.advance(0.1)
    assert cache.lookup(P, L) is None


def test_a_per_call_ttl_may_be_longer_than_the_cache_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryCache(ttl=10, timer=clock)
    with control(ttl=100):
        cache.update(P, L, gens("long"))
    cache.update(P, "short", gens("short"))
    clock.advance(50)
    assert cache.lookup(P, L) == gens("long")
    assert cache.lookup(P, "short") is None


def test_per_call_expiry_is_purged_without_lookups() -> None:
    clock = FakeClock()
    cache = InMemoryCache(maxsize=10, timer=clock)
    for i in range(20):
        with control(ttl=1 + i % 4):
            cache.update(f"p{i}", L, gens(str(i)))
    cache.update("kept", L, gens("kept"))
    assert len(cache) == 10
    clock.advance(4)
    assert len(cache) == 1
    stats = cache.stats()
    assert (stats.expirations, stats.evictions, stats.updates) == (9, 11, 21)


async def test_per_call_ttl_applies_to_async_writes() -> None:
    clock = FakeClock()
    cache = InMemoryCache(timer=clock)
    with control(ttl=2):
        await cache.aupdate(P, L, gens("brief"))
    clock.advance(2)
    assert await cache.alookup(P, L) is None
    assert cache.stats().expirations == 1


# -- max_age ------------------------------------------------------------------------------


def test_max_age_boundary() -> None:
    clock = FakeClock()
    cache = InMemoryCache(timer=clock)
    cache.update(P, L, gens("x"))
    clock.advance(9.5)
    with control(max_age=10):
        assert cache.lookup(P, L) == gens("x")
    clock.advance(0.5)  # written exactly max_age ago: too old
    with control(max_age=10):
        assert cache.lookup(P, L) is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.expirations, stats.size) == (1, 1, 0, 1)


def test_max_age_counts_from_the_last_write() -> None:
    clock = FakeClock()
    cache = InMemoryCache(timer=clock)
    cache.update(P, L, gens("old"))
    clock.advance(30)
    cache.update(P, L, gens("rewritten"))
    clock.advance(5)
    with control(max_age=10):
        assert cache.lookup(P, L) == gens("rewritten")


def test_a_max_age_miss_does_not_refresh_an_lru_entry() -> None:
    clock = FakeClock()
    cache = InMemoryCache(maxsize=2, policy="lru", timer=clock)
    cache.update("a", L, gens("a"))
    clock.advance(10)
    cache.update("b", L, gens("b"))
    with control(max_age=5):
        assert cache.lookup("a", L) is None  # too old: a miss, not a use
    cache.update("c", L, gens("c"))  # so "a" is still the least recently used
    assert cache.lookup("a", L) is None
    assert cache.lookup("b", L) == gens("b")


# -- read and write -----------------------------------------------------------------------


def test_read_false_still_checks_the_key_and_leaves_lru_order_alone() -> None:
    cache = InMemoryCache(maxsize=2, policy="lru")
    cache.update("a", L, gens("a"))
    cache.update("b", L, gens("b"))
    with control(read=False):
        with pytest.raises(TypeError, match="must be a str"):
            cache.lookup(None, L)  # type: ignore[arg-type]
        assert cache.lookup("a", L) is None
    cache.update("c", L, gens("c"))  # "a" was not used: it leaves
    assert cache.lookup("a", L) is None
    stats = cache.stats()
    assert (stats.bypassed, stats.hits, stats.misses) == (1, 0, 1)


def test_write_false_still_checks_the_value_and_keeps_the_old_entry() -> None:
    cache = InMemoryCache()
    cache.update(P, L, gens("old"))
    with control(write=False):
        with pytest.raises(TypeError, match="Generation"):
            cache.update(P, L, "not generations")  # type: ignore[arg-type]
        cache.update(P, L, gens("new"))
    assert cache.lookup(P, L) == gens("old")
    stats = cache.stats()
    assert (stats.skipped, stats.updates) == (1, 1)


@pytest.mark.parametrize("empty", [[], ()])
def test_an_empty_answer_keeps_the_previous_one(empty: Any) -> None:
    cache = InMemoryCache()
    cache.update(P, L, gens("previous"))
    cache.update(P, L, empty)
    assert cache.lookup(P, L) == gens("previous")
    assert cache.stats().skipped == 1


# -- admission ----------------------------------------------------------------------------


def test_admit_sees_the_prompt_as_passed_and_only_answers_to_store() -> None:
    seen: list[str] = []

    def admit(prompt: str, llm_string: str, generations: Any) -> bool:
        seen.append(prompt)
        return True

    history = _history("run-1", model="m")
    cache = InMemoryCache(admit=admit)
    cache.update(history, L, gens("stored"))
    cache.update(P, L, [])  # skipped before admission
    with control(write=False):
        cache.update(P, L, gens("not written"))
    assert seen == [history]  # the prompt LangChain passed, not its canonical form
    stats = cache.stats()
    assert (stats.updates, stats.skipped, stats.refused) == (1, 2, 0)


def test_a_refused_answer_keeps_the_previous_one() -> None:
    cache = InMemoryCache(admit=lambda prompt, llm_string, generations: generations[0].text != "no")
    cache.update(P, L, gens("yes"))
    cache.update(P, L, gens("no"))
    assert cache.lookup(P, L) == gens("yes")
    assert cache.stats().refused == 1


def test_an_admit_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def admit(prompt: str, llm_string: str, generations: Any) -> bool:
        raise ValueError("bad hook")

    cache = InMemoryCache(admit=admit)
    with caplog.at_level(logging.WARNING, logger="gencache"):
        cache.update(P, L, gens("x"))
        cache.update(P, L, gens("x"))
    assert cache.lookup(P, L) is None
    assert cache.stats().refused == 2
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1  # rate-limited
    assert "ValueError" in messages[0]
    assert "bad hook" in messages[0]


# -- keys and scopes ----------------------------------------------------------------------


def test_a_history_that_differs_in_unsent_fields_hits() -> None:
    cache = InMemoryCache()
    cache.update(_history("run-1", model="m", ms=310), L, gens("Rome."))
    assert cache.lookup(_history("run-2", ms=290), L) == gens("Rome.")
    assert len(cache) == 1
    changed = _history("run-1", model="m", ms=310).replace("And of Italy?", "And of Spain?")
    assert cache.lookup(changed, L) is None


def test_canonical_keys_false_keys_byte_for_byte() -> None:
    cache = InMemoryCache(canonical_keys=False)
    cache.update(_history("run-1"), L, gens("Rome."))
    assert cache.lookup(_history("run-2"), L) is None
    assert cache.lookup(_history("run-1"), L) == gens("Rome.")


def test_canonical_keys_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="canonical_keys"):
        InMemoryCache(canonical_keys=1)  # type: ignore[arg-type]


def test_canonical_keys_inside_a_scope() -> None:
    cache = InMemoryCache()
    with control(scope="t"):
        cache.update(_history("run-1"), L, gens("Rome."))
        assert cache.lookup(_history("run-2"), L) == gens("Rome.")
    assert cache.lookup(_history("run-2"), L) is None
    assert cache.lookup(_history("run-1"), L) is None


@pytest.mark.parametrize("prompt", [("t", P), ("t", P, None), (P,)])
def test_a_tuple_prompt_never_reaches_a_scoped_entry(prompt: Any) -> None:
    cache = InMemoryCache()
    with control(scope="t"):
        cache.update(P, L, gens("scoped"))
    with pytest.raises(TypeError, match="prompt must be a str"):
        cache.lookup(prompt, L)
    with control(scope="t"), pytest.raises(TypeError, match="prompt must be a str"):
        cache.lookup(prompt, L)


def test_clear_refuses_an_empty_scope() -> None:
    cache = InMemoryCache()
    cache.update(P, L, gens("kept"))
    with pytest.raises(ValueError, match="scope"):
        cache.clear(scope="")
    cache.clear(scope=None, other="ignored")
    assert len(cache) == 0


def test_counters_stay_exact_across_scopes_expiry_and_eviction() -> None:
    clock = FakeClock()
    cache = InMemoryCache(maxsize=3, timer=clock)
    cache.update("a", L, gens("a"))
    with control(scope="t", ttl=1):
        cache.update("a", L, gens("t-a"))
        cache.update("b", L, gens("t-b"))
    cache.update("c", L, gens("c"))  # evicts "a"
    clock.advance(1)  # both of scope t expire
    cache.update("d", L, gens("d"))
    with control(scope="u"):
        cache.update("e", L, [Generation(text="e")])
    cache.clear(scope="u")
    stats = cache.stats()
    assert (stats.updates, stats.evictions, stats.expirations, stats.size) == (6, 1, 2, 2)
