"""Accounting: what hits saved, on every backend; usage rewriting on hits."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration

from gencache import Savings
from tests.backends import Backend
from tests.chat_models import CountingChatModel
from tests.conftest import Factory, backends_with


def test_hits_save_calls_tokens_and_seconds(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.05)
    model.invoke("q")
    for _ in range(3):
        model.invoke("q")
    assert model.calls == 1
    saved = cache.stats().saved
    assert (saved.calls, saved.input_tokens, saved.output_tokens) == (3, 300, 60)
    assert saved.seconds > 0
    assert saved.money is None  # no price table
    assert set(cache.stats().by_model) == {"counting-model"}


def test_prices_give_money_per_model(make_cache: Factory) -> None:
    cache = make_cache(prices={"counting-model": (1.0, 4.0)})  # per million tokens
    model = CountingChatModel(cache=cache, delay=0.0)
    model.invoke("q")
    model.invoke("q")
    saved = cache.stats().by_model["counting-model"]
    assert saved.money == pytest.approx((100 * 1.0 + 20 * 4.0) / 1e6)
    assert cache.stats().saved.money == pytest.approx(saved.money)


@pytest.mark.parametrize("bad", [{"m": (1.0,)}, {"m": "cheap"}, [("m", (1, 2))]])
def test_prices_are_checked(make_cache: Factory, bad: object) -> None:
    with pytest.raises(TypeError, match="prices"):
        make_cache(prices=bad)


def test_zero_usage_on_hit_reports_billed_tokens_only(make_cache: Factory) -> None:
    cache = make_cache(zero_usage_on_hit=True)
    model = CountingChatModel(cache=cache, delay=0.0)
    with get_usage_metadata_callback() as usage:
        model.invoke("q")
        hit = model.invoke("q")
    totals = usage.usage_metadata["counting-model"]
    assert (totals["input_tokens"], totals["output_tokens"]) == (100, 20)
    assert isinstance(hit, AIMessage)
    assert hit.response_metadata["gencache"]["usage"]["input_tokens"] == 100


def test_without_zero_usage_a_hit_counts_as_billed(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    with get_usage_metadata_callback() as usage:
        model.invoke("q")
        model.invoke("q")
    assert usage.usage_metadata["counting-model"]["input_tokens"] == 200  # LangChain's way


def test_mark_hits(make_cache: Factory) -> None:
    cache = make_cache(mark_hits=True)
    model = CountingChatModel(cache=cache, delay=0.0)
    cold = model.invoke("q")
    warm = model.invoke("q")
    assert "gencache" not in cold.response_metadata
    mark = warm.response_metadata["gencache"]
    assert mark["hit"] is True
    assert mark["age_s"] >= 0
    assert mark["backend"]


def test_marks_and_zeroed_usage_do_not_change_the_next_turns_key(make_cache: Factory) -> None:
    cache = make_cache(mark_hits=True, zero_usage_on_hit=True)
    model = CountingChatModel(cache=cache, delay=0.0)

    def conversation() -> None:
        history: list[BaseMessage] = []
        for turn in range(3):
            history.append(HumanMessage(f"turn {turn}"))
            history.append(model.invoke(history))

    conversation()
    calls = model.calls
    conversation()  # every turn of the second run is a hit, marked history included
    assert model.calls == calls == 3


async def test_async_hits_are_accounted(make_cache: Factory) -> None:
    cache = make_cache()
    model = CountingChatModel(cache=cache, delay=0.0)
    await model.ainvoke("q")
    await asyncio.gather(*(model.ainvoke("q") for _ in range(4)))
    assert cache.stats().saved.calls == 4


def test_savings_add_up() -> None:
    total = Savings(1, 10, 2, 0.5, None) + Savings(2, 20, 4, 1.0, 0.25)
    assert total == Savings(3, 30, 6, 1.5, 0.25)


def test_savings_are_kept_for_every_process_that_uses_the_store(make_cache: Factory) -> None:
    cache = make_cache(prices={"counting-model": (1.0, 4.0)})
    model = CountingChatModel(cache=cache, delay=0.0)
    for _ in range(4):
        model.invoke("q")
    cache.stats()  # writes what is batched
    stored = cache.stored_savings()
    assert stored["counting-model"].calls == 3
    assert stored["counting-model"].input_tokens == 300
    assert stored["counting-model"].money == pytest.approx(3 * (100 + 80) / 1e6)


@pytest.mark.parametrize("backend", backends_with("shared"))
def test_close_writes_the_batched_savings(backend: Backend) -> None:
    # Savings are batched (256 hits or a second); close() writes them, rather than leaving
    # them to an exit hook that finds the connection closed or the server gone.
    cache = backend.make()
    model = CountingChatModel(cache=cache, delay=0.0)
    for _ in range(3):
        model.invoke("q")
    close = getattr(cache, "close")  # noqa: B009 - every shared backend has one
    close()
    assert backend.reopen is not None
    other = backend.reopen(cache)  # what another process sees
    assert other.stored_savings()["counting-model"].calls == 2
    other.clear()


def _answer(text: str, model: str, tokens: tuple[int, int]) -> list[ChatGeneration]:
    usage = {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)}
    message = AIMessage(text, usage_metadata=usage, response_metadata={"model_name": model})
    return [ChatGeneration(message=message)]


def test_savings_follow_the_entry_as_it_is_now(make_cache: Factory) -> None:
    """Many hits of several entries and models between two stats(); an entry rewritten
    with another answer saves what the new answer cost, from its next hit on."""
    cache = make_cache(prices={"model-a": (1.0, 2.0), "model-b": (10.0, 20.0)})
    cache.update("p", "llm-a", _answer("one", "model-a", (100, 10)))
    cache.update("q", "llm-b", _answer("two", "model-b", (7, 3)))
    for _ in range(5):
        assert cache.lookup("p", "llm-a") is not None
    for _ in range(2):
        assert cache.lookup("q", "llm-b") is not None
    by_model = cache.stats().by_model
    a, b = by_model["model-a"], by_model["model-b"]
    assert (a.calls, a.input_tokens, a.output_tokens) == (5, 500, 50)
    assert (b.calls, b.input_tokens, b.output_tokens) == (2, 14, 6)
    assert a.money == pytest.approx(5 * (100 * 1.0 + 10 * 2.0) / 1e6)
    assert b.money == pytest.approx(2 * (7 * 10.0 + 3 * 20.0) / 1e6)
    cache.update("p", "llm-a", _answer("one, again", "model-a", (40, 4)))
    assert cache.lookup("p", "llm-a") is not None
    a = cache.stats().by_model["model-a"]
    assert (a.calls, a.input_tokens, a.output_tokens) == (6, 540, 54)
    assert cache.stats().saved.calls == 8
