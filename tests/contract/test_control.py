"""Per-call control, scopes and admission: the same behaviour on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableParallel

from gencache import GenCache, complete_only, control
from tests.chat_models import CountingChatModel
from tests.conftest import Factory, backends_with
from tests.helpers import FakeClock, chat_gens, gens

P, L = "What is the capital of France?", "model='m' temperature=0"


def _eventually_missing(cache: GenCache, prompt: str, llm_string: str) -> bool:
    """Whether the entry is gone within a generous bound (a server expires it on its own)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cache.lookup(prompt, llm_string) is None:
            return True
        time.sleep(0.05)
    return False


def test_read_false_bypasses_the_lookup(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("stored"))
    with control(read=False):
        assert cache.lookup(P, L) is None
    assert cache.lookup(P, L) == gens("stored")
    stats = cache.stats()
    assert (stats.bypassed, stats.hits, stats.misses) == (1, 1, 0)


def test_write_false_stores_nothing(make_cache: Factory) -> None:
    cache = make_cache()
    with control(write=False):
        cache.update(P, L, gens("not stored"))
        assert cache.lookup(P, L) is None  # reads still work inside
    assert cache.lookup(P, L) is None
    assert len(cache) == 0
    assert cache.stats().skipped == 1


def test_inner_control_wins_and_unset_options_are_inherited(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("stored"))
    with control(read=False, write=False):
        with control(read=True):
            assert cache.lookup(P, L) == gens("stored")  # inner read=True wins
            cache.update(P, "other", gens("x"))  # write=False inherited
        assert cache.lookup(P, L) is None
    assert cache.lookup(P, "other") is None


async def test_control_applies_to_async_calls_and_tasks(make_cache: Factory) -> None:
    cache = make_cache()
    await cache.aupdate(P, L, gens("stored"))

    async def look() -> Sequence[Generation] | None:
        return await cache.alookup(P, L)

    with control(read=False):
        results = await asyncio.gather(*(look() for _ in range(5)))
    assert results == [None] * 5
    assert await look() == gens("stored")


@control(scope="decorated")
async def _scoped_update(cache: GenCache) -> None:
    await asyncio.sleep(0)
    await cache.aupdate(P, L, gens("in scope"))


async def test_decorator_applies_across_awaits(make_cache: Factory) -> None:
    cache = make_cache()
    await _scoped_update(cache)
    assert await cache.alookup(P, L) is None
    with control(scope="decorated"):
        assert await cache.alookup(P, L) == gens("in scope")


def test_scopes_isolate_entries(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("global"))
    with control(scope="tenant-a"):
        assert cache.lookup(P, L) is None
        cache.update(P, L, gens("a"))
    with control(scope="tenant-b"):
        cache.update(P, L, gens("b"))
        assert cache.lookup(P, L) == gens("b")
    with control(scope="tenant-a"):
        assert cache.lookup(P, L) == gens("a")
    assert cache.lookup(P, L) == gens("global")
    assert len(cache) == 3


def test_clear_with_a_scope_removes_exactly_that_scope(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("global"))
    for scope in ("tenant-a", "tenant-b"):
        with control(scope=scope):
            cache.update(P, L, gens(scope))
            cache.update(P + "?", L, gens(scope + "?"))
    cache.clear(scope="tenant-a")
    assert len(cache) == 3
    with control(scope="tenant-a"):
        assert cache.lookup(P, L) is None
        assert cache.lookup(P + "?", L) is None
    with control(scope="tenant-b"):
        assert cache.lookup(P, L) == gens("tenant-b")
    assert cache.lookup(P, L) == gens("global")
    cache.clear()
    assert len(cache) == 0


async def test_aclear_with_a_scope(make_cache: Factory) -> None:
    cache = make_cache()
    with control(scope="s"):
        await cache.aupdate(P, L, gens("s"))
    await cache.aupdate(P, L, gens("global"))
    await cache.aclear(scope="s")
    assert len(cache) == 1
    assert await cache.alookup(P, L) == gens("global")


@pytest.mark.parametrize("bad", [1, b"x", ["a"]])
def test_clear_refuses_a_scope_that_is_not_a_str(make_cache: Factory, bad: Any) -> None:
    cache = make_cache()
    cache.update(P, L, gens("kept"))
    with pytest.raises(TypeError, match="scope"):
        cache.clear(scope=bad)
    assert len(cache) == 1


@pytest.mark.parametrize("make_cache", backends_with("timer"), indirect=True)
def test_per_call_ttl_overrides_the_cache_ttl(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(ttl=100, timer=clock)
    with control(ttl=10):
        cache.update(P, "short", gens("short"))
    cache.update(P, "long", gens("long"))
    clock.advance(11)
    assert cache.lookup(P, "short") is None
    assert cache.lookup(P, "long") == gens("long")
    clock.advance(90)
    assert cache.lookup(P, "long") is None


@pytest.mark.parametrize("make_cache", backends_with("timer"), indirect=True)
def test_per_call_ttl_on_a_cache_without_ttl(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(timer=clock)
    with control(ttl=5):
        cache.update(P, L, gens("brief"))
    cache.update(P, "kept", gens("kept"))
    clock.advance(4)
    assert cache.lookup(P, L) == gens("brief")
    clock.advance(2)
    assert cache.lookup(P, L) is None
    assert cache.lookup(P, "kept") == gens("kept")
    assert len(cache) == 1


def _per_call_ttl_on_a_server_that_expires_entries(make_cache: Factory) -> None:
    cache = make_cache(ttl=3_600)
    with control(ttl=0.2):
        cache.update(P, L, gens("brief"))
    cache.update(P, "kept", gens("kept"))
    assert _eventually_missing(cache, P, L)
    assert cache.lookup(P, "kept") == gens("kept")


# Only where a backend expires entries itself (Redis); without the redis extra the test is
# not collected at all, rather than skipped for an empty parameter list.
if backends_with("server_ttl"):
    test_per_call_ttl_on_a_server_that_expires_entries = pytest.mark.parametrize(
        "make_cache", backends_with("server_ttl"), indirect=True
    )(_per_call_ttl_on_a_server_that_expires_entries)


@pytest.mark.parametrize("make_cache", backends_with("timer"), indirect=True)
def test_max_age_refuses_older_entries_and_keeps_them(make_cache: Factory) -> None:
    clock = FakeClock()
    cache = make_cache(timer=clock)
    cache.update(P, L, gens("old"))
    clock.advance(30)
    with control(max_age=10):
        assert cache.lookup(P, L) is None
        cache.update(P, "fresh", gens("fresh"))
        clock.advance(5)
        assert cache.lookup(P, "fresh") == gens("fresh")
    assert cache.lookup(P, L) == gens("old")  # still stored, for callers without max_age
    assert len(cache) == 2


def test_max_age_on_every_backend(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, gens("stored"))
    with control(max_age=3_600):
        assert cache.lookup(P, L) == gens("stored")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": -1}, ValueError),
        ({"ttl": float("nan")}, ValueError),
        ({"ttl": "10"}, TypeError),
        ({"max_age": 0}, ValueError),
        ({"scope": 3}, TypeError),
        ({"read": 1}, TypeError),
        ({"write": None}, TypeError),
    ],
)
def test_control_arguments_are_checked_at_the_with(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        control(**options)


def test_admit_decides_what_is_stored(make_cache: Factory) -> None:
    seen: list[tuple[str, str, int]] = []

    def admit(prompt: str, llm_string: str, generations: Any) -> bool:
        seen.append((prompt, llm_string, len(generations)))
        return prompt != "refused"

    cache = make_cache(admit=admit)
    cache.update("refused", L, gens("no"))
    cache.update(P, L, gens("yes"))
    assert cache.lookup("refused", L) is None
    assert cache.lookup(P, L) == gens("yes")
    assert seen == [("refused", L, 1), (P, L, 1)]
    assert cache.stats().refused == 1


def test_an_admit_that_raises_never_fails_the_call(make_cache: Factory) -> None:
    def admit(prompt: str, llm_string: str, generations: Any) -> bool:
        raise RuntimeError("bug in the admission hook")

    cache = make_cache(admit=admit)
    cache.update(P, L, gens("x"))
    assert cache.lookup(P, L) is None
    assert cache.stats().refused == 1


def test_admit_must_be_callable(make_cache: Factory) -> None:
    with pytest.raises(TypeError, match="admit"):
        make_cache(admit="yes")


def _finished(text: str, reason: str) -> list[Generation]:
    message = AIMessage(content=text, response_metadata={"finish_reason": reason})
    return [ChatGeneration(message=message)]


def test_complete_only_refuses_truncated_filtered_and_empty_answers(make_cache: Factory) -> None:
    cache = make_cache(admit=complete_only)
    cache.update("ok", L, _finished("Paris.", "stop"))
    cache.update("cut", L, _finished("Par", "length"))
    cache.update("filtered", L, _finished("", "content_filter"))
    cache.update("empty", L, _finished("", "stop"))
    assert cache.lookup("ok", L) is not None
    for prompt in ("cut", "filtered", "empty"):
        assert cache.lookup(prompt, L) is None
    assert cache.stats().refused == 3


def test_an_empty_answer_is_never_stored(make_cache: Factory) -> None:
    cache = make_cache()
    cache.update(P, L, [])
    assert cache.lookup(P, L) is None
    assert len(cache) == 0
    assert cache.stats().skipped == 1


def test_canonical_keys_can_be_turned_off(make_cache: Factory) -> None:
    cache = make_cache(canonical_keys=False)
    cache.update(P, L, chat_gens("x"))
    assert cache.lookup(P, L) == chat_gens("x")


def test_max_age_in_real_time_on_every_backend(make_cache: Factory) -> None:
    # No fake clock: Redis keeps its own times. Polls until the entry is too old, with a
    # generous deadline; asserts only that it took at least the age asked for.
    cache = make_cache()
    written = time.monotonic()
    cache.update(P, L, gens("stored"))
    with control(max_age=3_600):
        assert cache.lookup(P, L) == gens("stored")
    deadline = written + 30
    with control(max_age=1):
        while cache.lookup(P, L) is not None:
            assert time.monotonic() < deadline, "never older than max_age=1"
            time.sleep(0.05)
    assert time.monotonic() - written >= 0.9  # never a miss before it was old enough
    assert cache.lookup(P, L) == gens("stored")  # still stored, for callers without max_age
    assert len(cache) == 1


def _prompts() -> list[str]:
    return [f"question {i}" for i in range(4)]


def test_scope_reaches_batch_worker_threads(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    with control(scope="a"):
        model.batch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 4
    with control(scope="b"):
        model.batch(_prompts())  # type: ignore[arg-type]  # scope a's entries: invisible
    assert model.calls == 8
    model.batch(_prompts())  # type: ignore[arg-type]  # nor outside any scope
    assert model.calls == 12
    with control(scope="a"):
        answers = model.batch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 12
    assert [a.content for a in answers] == [f"answer to {p}" for p in _prompts()]
    assert len(cache) == 12
    cache.clear(scope="a")
    with control(scope="a"):
        model.batch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 16


def test_scope_and_read_reach_the_branches_of_a_chain_run_with_a_runnable_config(
    make_cache: Factory,
) -> None:
    # A prompt template feeding two models in parallel (RunnableParallel runs its branches
    # in worker threads, with max_concurrency from the RunnableConfig): the options of the
    # enclosing control() reach both branches, sync and batched.
    cache = make_cache()
    left = CountingChatModel(cache=cache, delay=0.0)
    right = CountingChatModel(cache=cache, delay=0.0, model_name="other-model")  # own entries
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | RunnableParallel(
        left=left, right=right
    )
    config: RunnableConfig = {"tags": ["t"], "max_concurrency": 2}

    def calls() -> int:
        return left.calls + right.calls

    with control(scope="tenant-a"):
        chain.invoke({"q": "x"}, config=config)
        chain.batch([{"q": "y"}, {"q": "z"}], config=config)
    assert calls() == 6
    chain.invoke({"q": "x"}, config=config)  # outside the scope: its entries are not seen
    assert calls() == 8
    with control(scope="tenant-a"):
        out = chain.invoke({"q": "x"}, config=config)
        chain.batch([{"q": "y"}, {"q": "z"}], config=config)
        assert calls() == 8  # every branch hit, in the tenant's scope
        with control(read=False):
            chain.batch([{"q": "y"}, {"q": "z"}], config=config)
    assert calls() == 12  # read=False reached the worker threads: each branch paid
    assert out["left"].content == out["right"].content == "answer to x"


def test_write_false_reaches_batch_worker_threads(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    with control(write=False):
        model.batch(_prompts())  # type: ignore[arg-type]
    assert len(cache) == 0
    assert cache.stats().skipped == 4


async def test_read_false_reaches_abatch_tasks(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    await model.abatch(_prompts())  # type: ignore[arg-type]
    await model.abatch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 4
    with control(read=False):
        await model.abatch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 8  # every call went to the provider
    assert cache.stats().bypassed == 4
    await model.abatch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 8  # and outside, hits again


async def test_scope_reaches_abatch_tasks(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    with control(scope="a"):
        await model.abatch(_prompts())  # type: ignore[arg-type]
    with control(scope="b"):
        await model.abatch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 8
    with control(scope="a"):
        await model.abatch(_prompts())  # type: ignore[arg-type]
    assert model.calls == 8
