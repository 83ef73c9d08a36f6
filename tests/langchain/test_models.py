"""End to end: real LangChain chat models and LLMs answered from each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from tests.conftest import Factory, backends_with


@pytest.fixture
def global_cache_reset() -> Iterator[None]:
    previous = get_llm_cache()
    yield
    set_llm_cache(previous)


def test_chat_model_second_call_is_answered_from_the_global_cache(
    make_cache: Factory, global_cache_reset: None
) -> None:
    cache = make_cache()
    set_llm_cache(cache)
    model = FakeListChatModel(responses=["first answer", "second answer"])
    first = model.invoke("Hello")
    second = model.invoke("Hello")
    assert first.content == second.content == "first answer"
    assert model.i == 1  # the model was called once
    assert cache.stats().hits == 1
    other = model.invoke("Another prompt")
    assert other.content == "second answer"


async def test_chat_model_async_with_cache_parameter(make_cache: Factory) -> None:
    cache = make_cache()
    model = FakeListChatModel(responses=["a", "b", "c"], cache=cache)
    assert (await model.ainvoke("q")).content == "a"
    assert (await model.ainvoke("q")).content == "a"
    assert (await model.ainvoke([HumanMessage("q")])).content == "a"
    assert (await model.ainvoke("r")).content == "b"
    assert cache.stats().hits == 2


def test_different_model_parameters_do_not_share_an_entry(make_cache: Factory) -> None:
    cache = make_cache()
    model = FakeListChatModel(responses=["one", "two", "three"], cache=cache)
    assert model.invoke("q").content == "one"
    assert model.invoke("q", stop=["\n"]).content == "two"
    assert model.invoke("q", stop=["\n"]).content == "two"
    other_model = FakeListChatModel(responses=["other"], cache=cache)  # other settings
    assert other_model.invoke("q").content == "other"
    assert len(cache) == 3


def test_generic_fake_chat_model_message_round_trips(make_cache: Factory) -> None:
    cache = make_cache()
    reply = AIMessage(
        content="The answer",
        tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "call_1", "type": "tool_call"}],
    )
    model = GenericFakeChatModel(messages=iter([reply]), cache=cache)
    first = model.invoke("Use the tool")
    second = model.invoke("Use the tool")  # the iterator is exhausted: must come from cache
    assert second.content == first.content == "The answer"
    assert second.tool_calls == first.tool_calls


def test_llm_second_call_is_answered_from_cache(make_cache: Factory) -> None:
    cache = make_cache()
    llm = FakeListLLM(responses=["alpha", "beta"], cache=cache)
    assert llm.invoke("x") == "alpha"
    assert llm.invoke("x") == "alpha"
    assert llm.invoke("y") == "beta"
    result = llm.generate(["x", "y", "x"])
    assert [g[0].text for g in result.generations] == ["alpha", "beta", "alpha"]


@pytest.mark.parametrize("make_cache", backends_with("maxsize"), indirect=True)
def test_batch_with_a_small_cache_and_threads_does_not_raise(make_cache: Factory) -> None:
    # batch() runs invoke() on a thread pool: LangChain's InMemoryCache can raise KeyError
    # here when two threads evict at once.
    cache = make_cache(maxsize=4)
    model = FakeListChatModel(responses=[f"r{i}" for i in range(10)], cache=cache)
    prompts = [f"prompt {i % 40}" for i in range(400)]
    for _ in range(3):
        results = model.batch(prompts, config={"max_concurrency": 8})
        assert len(results) == 400
    assert len(cache) <= 4
    stats = cache.stats()
    assert stats.lookups == 1_200
